//! Rollbacks carried out by the server, in the background: those a performer starts through
//! the API, those approved automatically (`authorization.automatic`, executed as
//! `backout:automatic` like `watch --execute`), and those a previous server (or a crashed
//! CLI) left unfinished, which are resumed at start. Each goes through
//! `backout_core::release::carry_out` or `Executor::resume`, exactly as the CLI's.
//!
//! Several replicas may share one database: each run is executed under its lease `run:<id>`
//! (fenced, see `Executor::with_lease`), and every replica looks for unfinished runs whose
//! lease is free or expired ([`Rollbacks::take_over`]) and resumes them exactly as
//! `backout resume` would, so the runs of a replica that died go on elsewhere.
//!
//! Runs wait for people inside the server (`wait_for_people`): a manual step confirmed through
//! the API (or `backout confirm`) is picked up within the executor's poll. At shutdown the
//! executions are dropped as after a crash: their journal says where they were, and the next
//! server resumes them (a non-idempotent step that was running is then in doubt until a person
//! resolves it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::executor::{LeaseSettings, run_lease_name};
use backout_core::release::{self, decide};
use backout_core::{ExecError, Executor, Progress, ProgressEvent};
use backout_store::{Run, RunKind, RunState, Store};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

/// The actor of what the server does on its own (resuming runs, watching).
pub const SERVER_ACTOR: &str = "backout:serve";

/// Handle to the background executions. Cheap to clone.
#[derive(Clone)]
pub struct Rollbacks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    tasks: Mutex<JoinSet<()>>,
    /// Releases whose automatic rollback is being started, so two rounds start it once.
    automatic: Mutex<HashSet<String>>,
    /// How runs are shared with other replicas, once the server set it ([`Rollbacks::share`]).
    lease: OnceLock<LeaseSettings>,
    /// Runs this process is resuming: a later round of [`Rollbacks::take_over`] must not
    /// start a second executor of one (under this replica's lease it would get the same
    /// fencing token, so the store could not tell the two apart).
    resuming: Mutex<HashSet<String>>,
    /// Turns `true` at shutdown: executors start no more steps ([`Executor::with_drain`]).
    drain: watch::Sender<bool>,
}

/// Where a started run tells its id (or why it never started).
type Started = Arc<Mutex<Option<oneshot::Sender<Result<String, ExecError>>>>>;

impl Rollbacks {
    pub fn new(store: Arc<dyn Store>) -> Rollbacks {
        Rollbacks {
            inner: Arc::new(Inner {
                store,
                tasks: Mutex::new(JoinSet::new()),
                automatic: Mutex::new(HashSet::new()),
                lease: OnceLock::new(),
                resuming: Mutex::new(HashSet::new()),
                drain: watch::channel(false).0,
            }),
        }
    }

    /// Executes every run from now on under its lease with these settings (the server calls
    /// this once, before any run starts; later calls change nothing).
    pub fn share(&self, settings: LeaseSettings) {
        let _ = self.inner.lease.set(settings);
    }

    /// An executor of this server's runs: under leases when they are shared.
    fn executor(inner: &Inner, progress: Arc<RunLog>) -> Executor {
        let executor = Executor::new(
            inner.store.clone(),
            Arc::new(SystemClock),
            Resolver::from_env(),
            progress,
        )
        .with_drain(inner.drain.subscribe());
        match inner.lease.get() {
            Some(settings) => executor.with_lease(settings.clone()),
            None => executor,
        }
    }

    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            // Reap what finished, so the set holds only live executions.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(work);
        }
    }

    /// Carries out a cleared rollback as `actor` in the background; returns its run id once
    /// the run exists (or the error that kept it from starting).
    pub async fn start(
        &self,
        cleared: decide::Cleared,
        actor: String,
    ) -> Result<String, ExecError> {
        let (send, receive) = oneshot::channel();
        let started: Started = Arc::new(Mutex::new(Some(send)));
        let inner = self.inner.clone();
        let progress = Arc::new(RunLog {
            started: started.clone(),
        });
        self.spawn(async move {
            let result = carry_out(&inner, &cleared, &actor, progress).await;
            if let Err(error) = result {
                let waiting = started.lock().ok().and_then(|mut s| s.take());
                match waiting {
                    Some(send) => {
                        let _ = send.send(Err(error));
                    }
                    None if matches!(error, ExecError::Drained(_)) => {
                        tracing::info!(release = %cleared.release.id, "{error}")
                    }
                    None => {
                        tracing::error!(release = %cleared.release.id, %error, "rollback failed")
                    }
                }
            }
        });
        receive.await.unwrap_or_else(|_| {
            Err(ExecError::Refused(
                "the server is shutting down; try again on the next one".into(),
            ))
        })
    }

    /// The watcher saw a rollback approved by `authorization.automatic` that nobody started:
    /// it is carried out as `backout:automatic`.
    pub fn automatic(&self, release_id: &str) {
        let fresh = self
            .inner
            .automatic
            .lock()
            .is_ok_and(|mut set| set.insert(release_id.to_string()));
        if !fresh {
            return;
        }
        let store = self.inner.store.clone();
        let inner = self.inner.clone();
        let release_id = release_id.to_string();
        self.spawn(async move {
            let cleared = decide::clear_execution(
                store.as_ref(),
                &release_id,
                decide::AUTOMATIC,
                SystemClock.now_ms(),
            )
            .await;
            match cleared {
                Ok(cleared) => {
                    tracing::info!(release = %release_id, "executing the automatically approved rollback as {}", decide::AUTOMATIC);
                    let progress = Arc::new(RunLog {
                        started: Arc::new(Mutex::new(None)),
                    });
                    match carry_out(&inner, &cleared, decide::AUTOMATIC, progress).await {
                        Ok(()) => {}
                        Err(error @ ExecError::Drained(_)) => {
                            tracing::info!(release = %release_id, "{error}")
                        }
                        Err(error) => {
                            tracing::error!(release = %release_id, %error, "automatic rollback failed")
                        }
                    }
                }
                // Someone started it meanwhile, or the window closed: the message says which.
                Err(ExecError::Refused(why)) => {
                    tracing::info!(release = %release_id, "automatic rollback not started: {why}")
                }
                Err(error) => {
                    tracing::error!(release = %release_id, %error, "automatic rollback failed")
                }
            }
            if let Ok(mut set) = inner.automatic.lock() {
                set.remove(&release_id);
            }
        });
    }

    /// Resumes the release runs nobody executes any more, so work journaled before a restart
    /// or by a replica that died continues here; returns their ids. A run qualifies when it is
    /// unfinished (running, or waiting for a person) and either its lease `run:<id>` is
    /// released or expired (the replica executing it stopped), or it never had one and its
    /// executor was a process on this machine that is gone (a previous server, a crashed CLI).
    /// Each is resumed as `backout resume` would; of several replicas trying at once, the one
    /// that takes the lease resumes it.
    pub async fn take_over(&self) -> Result<Vec<String>, ExecError> {
        let store = &self.inner.store;
        let runs = store.list_runs(1000).await?;
        let unfinished: Vec<Run> = runs
            .into_iter()
            .filter(|run| {
                run.kind == RunKind::Release
                    && matches!(run.state, RunState::Running | RunState::Waiting)
            })
            .collect();
        if unfinished.is_empty() {
            return Ok(Vec::new());
        }
        let leases: HashMap<String, backout_store::Lease> = store
            .leases("run:")
            .await?
            .into_iter()
            .map(|lease| (lease.name.clone(), lease))
            .collect();
        let now = SystemClock.now_ms();
        let host = hostname();
        let ours = self.inner.lease.get().map(|l| l.owner.as_str());
        let mut resumed = Vec::new();
        for run in unfinished {
            let free = match leases.get(&run_lease_name(&run.id)) {
                // Ours is being executed here (its heartbeat may just be late): taking it
                // again would fence our own executor off.
                Some(lease) if Some(lease.owner.as_str()) == ours => false,
                Some(lease) => !lease.is_held(now),
                None => left_by_a_dead_local_process(&run, &host),
            };
            let fresh = free
                && self
                    .inner
                    .resuming
                    .lock()
                    .is_ok_and(|mut set| set.insert(run.id.clone()));
            if !fresh {
                continue;
            }
            let inner = self.inner.clone();
            let run_id = run.id.clone();
            resumed.push(run.id);
            self.spawn(async move {
                let _resuming = Resuming {
                    inner: inner.clone(),
                    run_id: run_id.clone(),
                };
                let progress = Arc::new(RunLog {
                    started: Arc::new(Mutex::new(None)),
                });
                let executor = Self::executor(&inner, progress);
                match executor.resume(&run_id, SERVER_ACTOR, true).await {
                    Ok(summary) => {
                        tracing::info!(run = %run_id, state = %summary.run.state, "resumed run ended");
                        // The release hears how its rollback ended, and it is verified, as when
                        // the run had not changed hands.
                        let concluded = release::conclude_resumed(
                            &inner.store,
                            &summary,
                            SERVER_ACTOR,
                            Arc::new(Resolver::from_env()),
                            &SystemClock,
                            executor.progress(),
                        )
                        .await;
                        match concluded {
                            Ok(Some(verified)) => {
                                tracing::info!(run = %run_id, ?verified, "resumed rollback verified")
                            }
                            Ok(None) => {}
                            Err(error) => {
                                tracing::error!(run = %run_id, %error, "the resumed rollback could not be concluded")
                            }
                        }
                    }
                    // Another replica took it first, or a live process holds it.
                    Err(ExecError::Refused(why)) => {
                        tracing::info!(run = %run_id, "not resumed: {why}")
                    }
                    Err(ExecError::Store(backout_store::StoreError::Fenced { .. })) => {
                        tracing::warn!(run = %run_id, "another replica took this run over; stopped working on it")
                    }
                    Err(error @ ExecError::Drained(_)) => tracing::info!(run = %run_id, "{error}"),
                    Err(error) => tracing::error!(run = %run_id, %error, "resuming failed"),
                }
            });
        }
        Ok(resumed)
    }

    /// Drains, then stops: executors start no more steps, and the steps they have running
    /// may finish and be journaled for up to `grace`, so the replica that takes a run over has
    /// nothing in doubt. What is still going after `grace` is stopped as a crash would stop it
    /// (the journal keeps where it was; a non-idempotent step that was running is then in
    /// doubt for whoever resumes it).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.drain.send_replace(true);
        let tasks = match self.inner.tasks.lock() {
            Ok(mut tasks) => Some(std::mem::take(&mut *tasks)),
            Err(_) => None,
        };
        let Some(mut tasks) = tasks else {
            return;
        };
        let live = tasks.len();
        if live == 0 {
            return;
        }
        tracing::info!(
            executions = live,
            "draining: no step starts any more; waiting up to {grace:?} for the running ones"
        );
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                executions = tasks.len(),
                "steps still running after {grace:?}; stopping them (whoever resumes their runs decides about them)"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!(
            "executions handed over; another replica or the next start resumes their runs"
        );
    }
}

/// Takes a run off [`Inner::resuming`] when its resuming task ends (or is aborted).
struct Resuming {
    inner: Arc<Inner>,
    run_id: String,
}

impl Drop for Resuming {
    fn drop(&mut self) {
        if let Ok(mut set) = self.inner.resuming.lock() {
            set.remove(&self.run_id);
        }
    }
}

/// Whether a run that never had a lease was left by a process of this machine that is gone
/// (or waits for a person with no executor): a live process, or one on another machine, may
/// still be executing it (`backout execute` in a terminal), so it is left alone.
fn left_by_a_dead_local_process(run: &Run, host: &str) -> bool {
    match &run.executor {
        None => true,
        Some(executor) if executor.hostname != host => false,
        Some(executor) => {
            !backout_core::process::is_alive(executor.pid)
                || !std::fs::read_to_string(format!("/proc/{}/comm", executor.pid))
                    .is_ok_and(|comm| comm.trim().starts_with("backout"))
        }
    }
}

/// Runs a cleared rollback to its end, logging how it went.
async fn carry_out(
    inner: &Inner,
    cleared: &decide::Cleared,
    actor: &str,
    progress: Arc<RunLog>,
) -> Result<(), ExecError> {
    let store = &inner.store;
    let executor = Rollbacks::executor(inner, progress);
    let rollback = release::carry_out(
        store,
        &executor,
        cleared,
        actor,
        true,
        Arc::new(Resolver::from_env()),
        &SystemClock,
    )
    .await?;
    let run = &rollback.summary.run;
    match &rollback.verified {
        Some(release::Verified::Failed(why)) => tracing::warn!(
            release = %cleared.release.id, run = %run.id,
            "the rollback ran but did not verify: {why}"
        ),
        verified => tracing::info!(
            release = %cleared.release.id, run = %run.id, state = %run.state,
            verified = matches!(verified, Some(release::Verified::Held)),
            "rollback ended"
        ),
    }
    Ok(())
}

/// Progress of a run in the server's log; tells the starter the run's id.
struct RunLog {
    started: Started,
}

impl Progress for RunLog {
    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::RunStarted {
                run_id, resumed, ..
            } => {
                tracing::info!(run = %run_id, resumed, "run started");
                if let Some(send) = self.started.lock().ok().and_then(|mut s| s.take()) {
                    let _ = send.send(Ok(run_id.clone()));
                }
            }
            ProgressEvent::StepFinished { step, state, .. } => {
                tracing::info!(step = %step, state = %state, "step finished")
            }
            ProgressEvent::StepWaiting { step, by, .. } => {
                tracing::info!(step = %step, by = %by, "manual step waits for a person")
            }
            ProgressEvent::StepInDoubt { step } => {
                tracing::warn!(step = %step, "step in doubt until a person resolves it")
            }
            ProgressEvent::PreconditionFailed { id, detail } => {
                tracing::warn!(precondition = %id, %detail, "precondition failed; nothing ran")
            }
            ProgressEvent::RunFinished { run_id, state } => {
                tracing::info!(run = %run_id, state = %state, "run finished")
            }
            ProgressEvent::StepStarted { .. }
            | ProgressEvent::StepRetrying { .. }
            | ProgressEvent::Verification { .. } => {
                tracing::debug!(?event, "progress")
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
