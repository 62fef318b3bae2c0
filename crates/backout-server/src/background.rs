//! The server's background work: the criteria watcher of every open release (and each that
//! starts), which hands automatically approved rollbacks to [`crate::rollbacks`], and the
//! notification dispatcher. Both restart after a store failure and stop on shutdown.
//!
//! Replicas on one database share the releases through leases (the watcher watches those
//! whose lease it holds) and the runs ([`take_over_runs`] resumes those whose lease expired);
//! the dispatcher needs no lease, as it claims each delivery for a while. At shutdown the
//! leases are given up ([`release_leases`]) so another replica takes over at once.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use backout_core::clock::SystemClock;
use backout_core::env::Resolver;
use backout_core::executor::LeaseSettings;
use backout_core::notify::{DispatchOptions, Dispatcher};
use backout_core::release::{WatchOptions, Watcher, decide};
use backout_store::{DeliveryState, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rollbacks::SERVER_ACTOR;
use crate::state::{AppState, stopped};

/// How long to wait before starting a failed loop again.
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// The running background tasks.
pub struct Background {
    watcher: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
    /// Scheduled rehearsals (`testing.schedule`, `renew_before`): [`crate::drills`].
    rehearsals: JoinHandle<()>,
}

impl Background {
    /// Waits for both loops to stop (after the stop signal).
    pub async fn join(self) {
        let _ = self.watcher.await;
        let _ = self.dispatcher.await;
        let _ = self.rehearsals.await;
    }
}

pub fn spawn(
    state: AppState,
    leases: LeaseSettings,
    stopping: watch::Receiver<bool>,
) -> Background {
    Background {
        watcher: tokio::spawn(watch_all(state.clone(), leases.clone(), stopping.clone())),
        rehearsals: tokio::spawn(crate::drills::rehearse_on_schedule(
            state.clone(),
            leases,
            stopping.clone(),
        )),
        dispatcher: tokio::spawn(dispatch(state, stopping)),
    }
}

/// Waits `RESTART_AFTER`, or less if the server stops; `true` when it stops.
async fn pause(stopping: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = stopped(stopping.clone()) => true,
        () = tokio::time::sleep(RESTART_AFTER) => *stopping.borrow(),
    }
}

/// Every `every` (a third of the lease time), resumes the runs nobody executes any more
/// (their replica died, or a previous server left them) until the server stops.
pub async fn take_over_runs(state: AppState, every: Duration, stopping: watch::Receiver<bool>) {
    let every = every.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = stopped(stopping.clone()) => return,
            () = tokio::time::sleep(every) => {}
        }
        match state.rollbacks.take_over().await {
            Ok(runs) if !runs.is_empty() => {
                tracing::info!(runs = ?runs, "taking over runs nobody executes any more");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not look for runs to take over"),
        }
    }
}

/// Gives up every lease `owner` holds (graceful shutdown), so other replicas take the
/// releases and runs over at once. A lease that cannot be given up expires on its own.
pub async fn release_leases(store: &dyn Store, owner: &str) {
    let held = match store.leases("").await {
        Ok(leases) => leases,
        Err(error) => {
            tracing::warn!(%error, "could not list the leases to give them up; they expire on their own");
            return;
        }
    };
    let mine: Vec<_> = held.into_iter().filter(|l| l.owner == owner).collect();
    for lease in &mine {
        if let Err(error) = store.release_lease(lease).await {
            tracing::warn!(lease = %lease.name, %error, "could not give the lease up; it expires on its own");
        }
    }
    if !mine.is_empty() {
        tracing::info!(
            leases = mine.len(),
            "gave up the leases held, for another replica to take over"
        );
    }
}

async fn watch_all(state: AppState, leases: LeaseSettings, stopping: watch::Receiver<bool>) {
    loop {
        if *stopping.borrow() {
            return;
        }
        let options = WatchOptions {
            actor: SERVER_ACTOR.to_string(),
            all: true,
            lease: Some(leases.clone()),
            // The server runs no command and honours no automatic approval of a plan nobody
            // accepted (`backout accept`).
            require_accepted: true,
            ..WatchOptions::default()
        };
        let result = async {
            let mut watcher = Watcher::new(
                state.store.clone(),
                Arc::new(Resolver::from_env()),
                Arc::new(SystemClock),
                options,
                &[],
            )
            .await?;
            tracing::info!(
                releases = watcher.len(),
                "watching the open releases whose lease this replica holds"
            );
            watcher
                .run(stopped(stopping.clone()), |round| {
                    let id = &round.tracker.release_id;
                    let verdict = round.verdict();
                    if round.verdict_changed {
                        tracing::info!(release = %id, verdict = ?verdict, "verdict");
                    }
                    if let Ok(mut verdicts) = state.verdicts.lock() {
                        verdicts.insert(id.clone(), verdict);
                    }
                    // As `watch --execute`: a rollback approved by `authorization.automatic`
                    // runs with no person, as `backout:automatic`.
                    let d = round.decisions;
                    if d.approved_at_ms.is_some()
                        && d.approved_by(decide::AUTOMATIC)
                        && d.executions.is_empty()
                    {
                        state.rollbacks.automatic(id);
                    }
                    ControlFlow::Continue(())
                })
                .await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(%error, "the watcher stopped; starting it again in 5 s");
                if pause(&stopping).await {
                    return;
                }
            }
        }
    }
}

async fn dispatch(state: AppState, stopping: watch::Receiver<bool>) {
    loop {
        if *stopping.borrow() {
            return;
        }
        let result = async {
            let mut options = DispatchOptions::from_env()?;
            if let Some(url) = &state.public_url {
                options.public_url = Some(url.clone());
            }
            // At shutdown, what is due now goes out; the rest waits for the next process.
            options.drain = Duration::from_secs(5);
            // A plan nobody accepted runs no command here, not even a channel's.
            options.commands_need_acceptance = true;
            let dispatcher = Dispatcher::new(
                state.store.clone(),
                Arc::new(SystemClock),
                Arc::new(Resolver::from_env()),
                options,
            )?;
            dispatcher
                .run(stopped(stopping.clone()), |delivery| {
                    if delivery.state == DeliveryState::Failed {
                        tracing::warn!(
                            delivery = delivery.id,
                            channel = %delivery.channel,
                            event = %delivery.notify_event,
                            error = delivery.last_error.as_deref().unwrap_or("no detail"),
                            "notification gave up"
                        );
                    } else {
                        tracing::debug!(delivery = delivery.id, state = %delivery.state, "notification attempt");
                    }
                })
                .await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(%error, "the dispatcher stopped; starting it again in 5 s");
                if pause(&stopping).await {
                    return;
                }
            }
        }
    }
}
