//! Every command that journals events also delivers the notifications they queued: a
//! dispatcher runs beside the command's work and, when the work ends, keeps retrying what this
//! command queued for a bounded grace (`BACKOUT_DELIVERY_GRACE`, default 30s; `0s` turns it
//! off), so a `run` whose webhook answers 503 twice still delivers its `completed` before it
//! exits. What is still pending then is named on standard error with the way to send it
//! (`backout deliveries --send`, the next command on the store, or `serve`); the claims keep two
//! processes from sending one notification at once.
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
use backout_store::{Delivery, DeliveryState, Store};
use tokio::sync::watch;

use crate::output;

/// How often a command looks for due notifications before it has built its dispatcher.
const POLL: Duration = Duration::from_millis(500);

/// How often the grace after the work looks again for what became due.
const GRACE_POLL: Duration = Duration::from_millis(200);

/// However short the grace, what is due when the work ends is sent for up to this long.
const DRAIN: Duration = Duration::from_secs(15);

/// The grace when `BACKOUT_DELIVERY_GRACE` is not set.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How many recent deliveries are looked at for the ones this command queued.
const RECENT: u32 = 500;

/// Runs `work` with notifications delivered beside it; returns what `work` returned. After the
/// work, what it queued is retried for the grace, and what is still pending is named.
pub async fn notifying<T>(store: &Arc<dyn Store>, work: impl Future<Output = T>) -> T {
    // Deliveries of events journaled from now on are this command's to see through.
    let since = match store.last_event().await {
        Ok(last) => last.map_or(0, |e| e.seq),
        // The work will report the store's trouble; nothing of ours is known to be queued.
        Err(_) => u64::MAX,
    };
    notifying_since(store, since, work).await
}

/// [`notifying`] that sees through every pending delivery (`deliveries --send`), not only
/// those of events journaled by the command.
pub async fn sending_all(store: &Arc<dyn Store>) {
    notifying_since(store, 0, async {}).await;
}

async fn notifying_since<T>(
    store: &Arc<dyn Store>,
    since: u64,
    work: impl Future<Output = T>,
) -> T {
    let (stop, stopped) = watch::channel(false);
    let delivering = tokio::spawn(deliver(store.clone(), since, stopped));
    let result = work.await;
    let _ = stop.send(true);
    match delivering.await {
        Ok(Ok(pending)) => warn_pending(&pending),
        Ok(Err(error)) => output::warn(&format!(
            "notifications: {error}; what was not sent stays queued (`backout deliveries`)"
        )),
        Err(error) => output::warn(&format!("notifications stopped: {error}")),
    }
    result
}

/// `BACKOUT_DELIVERY_GRACE`: how long a command keeps retrying its notifications after its
/// work; a value that does not parse is said and the default used.
fn grace() -> Duration {
    let Ok(text) = std::env::var("BACKOUT_DELIVERY_GRACE") else {
        return DEFAULT_GRACE;
    };
    if text.trim().is_empty() {
        return DEFAULT_GRACE;
    }
    match backout_model::Duration::parse(text.trim()) {
        Some(d) => d.0,
        None => {
            output::warn(&format!(
                "BACKOUT_DELIVERY_GRACE=`{text}` is not a duration like 30s or 2m; using 30s"
            ));
            DEFAULT_GRACE
        }
    }
}

/// The pending deliveries of events after `since`.
async fn pending_since(store: &dyn Store, since: u64) -> Result<Vec<Delivery>, ExecError> {
    let mut pending: Vec<Delivery> = store
        .list_deliveries(None, RECENT)
        .await?
        .into_iter()
        .filter(|d| d.event_seq > since && d.state == DeliveryState::Pending)
        .collect();
    pending.reverse();
    Ok(pending)
}

/// Waits until something is due (or the work ended with nothing of its own pending), then
/// dispatches until told to stop, then for the grace while the command's own deliveries are
/// pending. Returns those still pending at the end.
async fn deliver(
    store: Arc<dyn Store>,
    since: u64,
    mut stopped: watch::Receiver<bool>,
) -> Result<Vec<Delivery>, ExecError> {
    loop {
        let due = !store
            .due_deliveries(SystemClock.now_ms(), 1)
            .await?
            .is_empty();
        if due {
            break;
        }
        if *stopped.borrow() {
            if pending_since(store.as_ref(), since).await?.is_empty() {
                return Ok(Vec::new());
            }
            break;
        }
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(Resolver::from_env()),
        DispatchOptions::from_env()?,
    )?;
    let poll = DispatchOptions::default().poll;
    // Beside the work: every round, never interrupted (a dropped round leaves claims behind).
    while !*stopped.borrow() {
        let round = dispatcher.dispatch_due().await?;
        round.iter().for_each(report);
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
    // After the work: what is due now is sent (for at most DRAIN, as before there was a
    // grace), and the command's own deliveries are retried as they fall due, for the grace.
    let started = tokio::time::Instant::now();
    let deadline = started + grace();
    loop {
        let round = dispatcher.dispatch_due().await?;
        round.iter().for_each(report);
        if !round.is_empty() && started.elapsed() < DRAIN {
            continue;
        }
        let pending = pending_since(store.as_ref(), since).await?;
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(pending);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(pending),
            () = tokio::time::sleep(GRACE_POLL) => {}
        }
    }
}

/// Says loudly when a delivery was given up.
fn report(delivery: &Delivery) {
    if delivery.state == DeliveryState::Failed {
        output::warn(&format!(
            "notification `{}` to channel `{}` ({}) gave up: {}",
            delivery.notify_event,
            delivery.channel,
            delivery.kind.as_str(),
            delivery.last_error.as_deref().unwrap_or("no detail")
        ));
    }
}

/// Names what this command queued and could not deliver, and how to send it.
fn warn_pending(pending: &[Delivery]) {
    if pending.is_empty() {
        return;
    }
    let mut lines = vec![format!(
        "{} notification(s) not delivered yet (still retrying):",
        pending.len()
    )];
    for d in pending {
        lines.push(format!(
            "  `{}` to channel `{}` ({}), {} attempt(s){}",
            d.notify_event,
            d.channel,
            d.kind.as_str(),
            d.attempts.len(),
            d.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        ));
    }
    lines.push(
        "send them with `backout deliveries --send` (or any later backout command on this store, or `backout serve`); without a server, run that from cron or a systemd timer (see the README)".into(),
    );
    output::warn(&lines.join("\n"));
}
