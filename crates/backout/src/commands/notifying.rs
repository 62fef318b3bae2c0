//! Every command that journals events also delivers the notifications they queued: a
//! dispatcher runs beside the command's work and, when the work ends, keeps sending what is due
//! for a few seconds. What it cannot send now (a receiver down, a retry not yet due) stays in
//! the outbox for the next process that works on the store (`watch`, `run`, `serve`); the
//! claims keep two processes from sending one notification at once.

use std::future::Future;
use std::sync::Arc;

use backout_core::clock::SystemClock;
use backout_core::env::Resolver;
use backout_core::notify::{DispatchOptions, Dispatcher};
use backout_store::{DeliveryState, Store};

use crate::output;

/// Runs `work` with a dispatcher delivering beside it; returns what `work` returned.
pub async fn notifying<T>(store: &Arc<dyn Store>, work: impl Future<Output = T>) -> T {
    let dispatcher = match Dispatcher::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(Resolver::from_env()),
        DispatchOptions::from_env(),
    ) {
        Ok(dispatcher) => dispatcher,
        Err(error) => {
            output::warn(&format!(
                "notifications are not sent by this process: {error}"
            ));
            return work.await;
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let delivering = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        dispatcher
            .run(stopped, |delivery| {
                if delivery.state == DeliveryState::Failed {
                    output::warn(&format!(
                        "notification `{}` to channel `{}` ({}) gave up: {}",
                        delivery.notify_event,
                        delivery.channel,
                        delivery.kind.as_str(),
                        delivery.last_error.as_deref().unwrap_or("no detail")
                    ));
                }
            })
            .await
    });
    let result = work.await;
    let _ = stop.send(());
    match delivering.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => output::warn(&format!(
            "notifications: {error}; what was not sent stays queued (`backout deliveries`)"
        )),
        Err(error) => output::warn(&format!("notifications stopped: {error}")),
    }
    result
}
