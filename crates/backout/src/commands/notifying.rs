//! Every command that journals events also delivers the notifications they queued: a
//! dispatcher runs beside the command's work and, when the work ends, keeps sending what is due
//! for a few seconds. What it cannot send now (a receiver down, a retry not yet due) stays in
//! the outbox for the next process that works on the store (`watch`, `run`, `serve`); the
//! claims keep two processes from sending one notification at once.
//!
//! The dispatcher (an HTTP client, TLS roots, SMTP settings) is only built once something is
//! due: most commands queue nothing, and they should not pay for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backout_core::ExecError;
use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::notify::{DispatchOptions, Dispatcher};
use backout_store::{DeliveryState, Store};
use tokio::sync::watch;

use crate::output;

/// How often a command looks for due notifications before it has built its dispatcher.
const POLL: Duration = Duration::from_millis(500);

/// Runs `work` with notifications delivered beside it; returns what `work` returned.
pub async fn notifying<T>(store: &Arc<dyn Store>, work: impl Future<Output = T>) -> T {
    let (stop, stopped) = watch::channel(false);
    let delivering = tokio::spawn(deliver(store.clone(), stopped));
    let result = work.await;
    let _ = stop.send(true);
    match delivering.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => output::warn(&format!(
            "notifications: {error}; what was not sent stays queued (`backout deliveries`)"
        )),
        Err(error) => output::warn(&format!("notifications stopped: {error}")),
    }
    result
}

/// Waits until something is due (or the work ended with nothing due), then dispatches until
/// told to stop, and drains.
async fn deliver(
    store: Arc<dyn Store>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), ExecError> {
    loop {
        let due = !store
            .due_deliveries(SystemClock.now_ms(), 1)
            .await?
            .is_empty();
        if due {
            break;
        }
        if *stopped.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
    let dispatcher = Dispatcher::new(
        store,
        Arc::new(SystemClock),
        Arc::new(Resolver::from_env()),
        DispatchOptions::from_env()?,
    )?;
    let stop = async move {
        while !*stopped.borrow() {
            if stopped.changed().await.is_err() {
                return;
            }
        }
    };
    dispatcher
        .run(stop, |delivery| {
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
}
