//! The executor: runs a plan's procedure (or a workaround) as a DAG, as fast as `needs` allow,
//! bounded by `max_parallel`, recording every state change durably before anything depends on
//! it.
//!
//! Crash safety rests on one rule: a step is recorded `running` (attempt n) and committed before
//! its work starts, and recorded finished and committed before any dependant starts. After a
//! `kill -9`, [`Executor::resume`] therefore knows exactly which steps finished (never re-run),
//! which were running (re-run only when idempotent, otherwise `in_doubt` for a person), and kills
//! whatever processes the dead executor left (see `process::kill_leftovers`).
//!
//! The executor owns timeouts, retries, verification and cancellation; runners only run.

mod attention;
pub(crate) mod graph;
mod lease;
mod people;
mod progress;
mod resume;
mod step;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use backout_model::Plan;
use backout_model::plan::{Answer, Step};
use backout_store::{
    ExecutorInfo, Fence, NewEvent, NewRun, Run, RunKind, RunState, RunUpdate, StepRecord,
    StepState, Store, StoreError,
};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::env::{Redactor, Resolver};
use crate::errors::ExecError;
use crate::notify::{route, routed};
use crate::process;
use crate::runner::{self, Invocation};
pub use attention::{TAIL_LINES, executor_gone, executor_gone_at, output_tail};
use graph::Graph;
use lease::Held;
pub use lease::{LeaseSettings, run_lease_name};
pub use people::{StepTarget, abort, confirm, resolve, retry, skip, ways_forward};
pub use progress::{Progress, ProgressEvent};
use step::{Finished, execute_step};

/// How to start a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub kind: RunKind,
    pub environment: String,
    /// Checkpoints the forward deployment reached; `when_checkpoint` steps need theirs.
    pub checkpoints: Vec<String>,
    pub actor: String,
    pub release_id: Option<String>,
    /// Run this workaround's steps instead of the procedure.
    pub workaround: Option<String>,
    /// Keep polling for people (manual confirmations, in-doubt resolutions) instead of returning
    /// with the run `waiting`.
    pub wait_for_people: bool,
    /// Extra variables for every step (e.g. a rehearsal environment's overrides).
    pub extra_env: Vec<(String, String)>,
    /// The reason of a break-glass run (outside a release, in the environment the release
    /// targets): journaled and announced as `break_glass`.
    pub break_glass: Option<String>,
}

/// Where a run ended up when the executor returned.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub run: Run,
    pub steps: Vec<StepRecord>,
}

/// Runs procedures against a store.
pub struct Executor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    resolver: Arc<Resolver>,
    progress: Arc<dyn Progress>,
    /// How often the store is polled for confirmations, resolutions and aborts.
    poll: Duration,
    /// Runs are shared with other replicas: each is executed under its lease, fenced.
    lease: Option<LeaseSettings>,
    /// Becomes `true` when the executor is to start no more steps and return once the steps
    /// it has running finished ([`ExecError::Drained`]).
    drain: Option<watch::Receiver<bool>>,
}

impl Executor {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        resolver: Resolver,
        progress: Arc<dyn Progress>,
    ) -> Executor {
        process::become_subreaper();
        Executor {
            store,
            clock,
            resolver: Arc::new(resolver),
            progress,
            poll: Duration::from_millis(200),
            lease: None,
            drain: None,
        }
    }

    /// Where this executor reports progress (the verification after a rollback reports there
    /// too).
    pub fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }

    /// Drains on `drain`: once it turns `true`, no step starts (nor does a manual step begin
    /// to wait), the steps running finish and are journaled, and the executor returns
    /// [`ExecError::Drained`] with the run unfinished, so whoever resumes it has nothing in
    /// doubt. A server shutting down uses this before it hands its leases over.
    pub fn with_drain(mut self, drain: watch::Receiver<bool>) -> Executor {
        self.drain = Some(drain);
        self
    }

    /// Executes every run under its lease `run:<id>` (taken before the run's first write,
    /// renewed by a heartbeat, released when the executor returns), and every write of the run
    /// carries the lease's fence: once another replica took the run over, this executor writes
    /// nothing more, starts no step, and stops the steps it had running. A run whose lease
    /// another live replica holds is refused by [`Executor::resume`]; the process check of a
    /// resume (a live executor on this machine) is then left to the lease.
    pub fn with_lease(mut self, settings: LeaseSettings) -> Executor {
        self.lease = Some(settings);
        self
    }

    /// Takes the lease of `run_id` when runs are shared; `Refused` when another replica
    /// holds it.
    async fn take_lease(&self, run_id: &str) -> Result<Option<Held>, ExecError> {
        let Some(settings) = &self.lease else {
            return Ok(None);
        };
        match Held::take(&self.store, &self.clock, settings, run_id).await? {
            Some(held) => Ok(Some(held)),
            None => Err(ExecError::Refused(format!(
                "run `{run_id}` is being executed elsewhere (the lease `{}` is held); it is taken over only once that lease expires",
                run_lease_name(run_id)
            ))),
        }
    }

    /// Starts a new run of `source` (the plan's text). Preconditions run first; a failing one
    /// refuses the run and nothing else runs.
    pub async fn start(&self, source: &str, options: &RunOptions) -> Result<RunSummary, ExecError> {
        let linted = backout_model::lint(source);
        let errors = linted.errors();
        let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
            return Err(ExecError::Refused(format!(
                "the plan has {errors} error(s); run `backout lint` on it first"
            )));
        };
        // A rehearsal notifies only its environment's channels, never production's.
        let plan = crate::rehearsal::for_run(plan, options.kind, &options.environment);
        let steps = steps_to_run(&plan, options.workaround.as_deref())?;
        let now = self.clock.now_ms();
        let run_id = backout_store::new_run_id(now);
        let held = self.take_lease(&run_id).await?;
        let fence = held.as_ref().map(Held::fence);
        let new_run = NewRun {
            id: run_id.clone(),
            plan_hash: hash,
            plan_source: source.to_string(),
            kind: if options.workaround.is_some() {
                RunKind::Workaround
            } else {
                options.kind
            },
            release_id: options.release_id.clone(),
            environment: options.environment.clone(),
            actor: options.actor.clone(),
            state: RunState::Running,
            checkpoints: options.checkpoints.clone(),
            executor: Some(me()),
            steps: steps.iter().map(|s| s.id.clone()).collect(),
            created_at_ms: now,
        };
        let mut payload = json!({
            "workaround": options.workaround,
            "checkpoints": options.checkpoints,
            "environment": options.environment,
        });
        // Which replica executes the run, when runs are shared (its lease's owner).
        if let Some(settings) = &self.lease {
            payload["replica"] = json!(settings.owner);
        }
        let mut started = NewEvent::new("run_started", &options.actor, now)
            .run(&run_id)
            .payload(payload)
            .fenced(fence.clone());
        // A release's run is part of the release's story (`report REL`, its decisions).
        started.release_id.clone_from(&options.release_id);
        self.store
            .create_run(&new_run, &routed(&plan, started))
            .await?;
        if let Some(reason) = &options.break_glass {
            let event = NewEvent::new("break_glass", &options.actor, now)
                .run(&run_id)
                .payload(json!({
                    "reason": reason,
                    "environment": options.environment,
                    "workaround": options.workaround,
                }))
                .fenced(fence.clone());
            self.store.append_event(&routed(&plan, event)).await?;
        }
        self.progress.event(&ProgressEvent::RunStarted {
            run_id: run_id.clone(),
            steps: steps.len(),
            resumed: false,
        });

        let context = self.context(&plan, source, &run_id, options, fence.clone());
        if options.workaround.is_none()
            && let Answer::Given(procedure) = &plan.procedure
        {
            for pre in &procedure.preconditions {
                let inv = context.invocation(None, 1, pre.timeout.map(|t| t.0), &BTreeMap::new());
                let outcome = runner::for_action(&pre.action).run(inv).await;
                if !outcome.ok {
                    let detail = context.redactor.redact(&format!(
                        "{}: {}",
                        outcome.detail,
                        outcome.stderr.trim()
                    ));
                    self.progress.event(&ProgressEvent::PreconditionFailed {
                        id: pre.id.clone(),
                        detail: detail.clone(),
                    });
                    let now = self.clock.now_ms();
                    let event = NewEvent::new("run_refused", &options.actor, now)
                        .run(&run_id)
                        .payload(json!({ "precondition": pre.id, "detail": detail }))
                        .fenced(fence.clone());
                    self.store
                        .update_run(
                            &RunUpdate {
                                run_id: run_id.clone(),
                                state: RunState::Refused,
                                executor: None,
                                at_ms: now,
                            },
                            &event,
                        )
                        .await?;
                    if let Some(held) = held {
                        held.release().await;
                    }
                    return self.summary(&run_id).await;
                }
            }
        }
        let graph = Graph::new(&plan, steps);
        self.drive_held(
            context,
            graph,
            &options.actor,
            options.wait_for_people,
            held,
        )
        .await
    }

    fn context(
        &self,
        plan: &Plan,
        source: &str,
        run_id: &str,
        options: &RunOptions,
        fence: Option<Fence>,
    ) -> Arc<Context> {
        let mut resolver = (*self.resolver).clone();
        resolver.extend(options.extra_env.iter().cloned());
        // A rehearsal reaches its environment's hosts (`testing.overrides.<env>.urls`).
        if options.kind == RunKind::Rehearsal {
            resolver.rewrite_urls(crate::rehearsal::url_rewrites(plan, &options.environment));
        }
        // Of backout's own environment, steps get only what the plan names (env.rs).
        let resolver = resolver.passing(plan.pass_env());
        let mut base = resolver.passed_env(&crate::env::references(source));
        base.extend([
            ("BACKOUT_RUN_ID".to_string(), run_id.to_string()),
            ("BACKOUT_SERVICE".to_string(), plan.release.service.clone()),
            (
                "BACKOUT_RELEASE_VERSION".to_string(),
                plan.release.version.clone(),
            ),
            (
                "BACKOUT_ROLLBACK_TO".to_string(),
                plan.release.rollback_to.clone(),
            ),
            (
                "BACKOUT_ENVIRONMENT".to_string(),
                options.environment.clone(),
            ),
        ]);
        base.extend(options.extra_env.iter().cloned());
        Arc::new(Context {
            run_id: run_id.to_string(),
            plan: Arc::new(crate::rehearsal::for_run(
                plan.clone(),
                options.kind,
                &options.environment,
            )),
            overrides: options.extra_env.clone(),
            redactor: Redactor::new(source, &resolver),
            resolver: Arc::new(resolver),
            base_env: base,
            checkpoints: options.checkpoints.clone(),
            cancel: watch::channel(false).0,
            fence,
        })
    }

    async fn summary(&self, run_id: &str) -> Result<RunSummary, ExecError> {
        Ok(RunSummary {
            run: self.store.get_run(run_id).await?,
            steps: self.store.list_steps(run_id).await?,
        })
    }

    /// [`Executor::drive`] under the run's lease (when shared): released when the executor
    /// returns, unless it was lost (then it is the new holder's).
    async fn drive_held(
        &self,
        context: Arc<Context>,
        graph: Graph,
        actor: &str,
        wait_for_people: bool,
        held: Option<Held>,
    ) -> Result<RunSummary, ExecError> {
        let lost = held.as_ref().map(|h| h.lost.clone());
        let result = self
            .drive(context.clone(), graph, actor, wait_for_people, lost)
            .await;
        if let Some(held) = held
            && !is_fenced(&result)
        {
            held.release().await;
        }
        result
    }

    /// The scheduling loop ([`Executor::schedule`]). When the run's lease is lost (a write
    /// refused as fenced, or the heartbeat found another holder), nothing more is written or
    /// started: the steps in flight are cancelled, which ends their process groups, and their
    /// outcomes are dropped (the new holder decides about them).
    async fn drive(
        &self,
        context: Arc<Context>,
        graph: Graph,
        actor: &str,
        wait_for_people: bool,
        lost: Option<watch::Receiver<bool>>,
    ) -> Result<RunSummary, ExecError> {
        let mut tasks: JoinSet<Result<Finished, ExecError>> = JoinSet::new();
        let result = self
            .schedule(&context, graph, actor, wait_for_people, lost, &mut tasks)
            .await;
        if is_fenced(&result) {
            context.cancel.send_replace(true);
            while tasks.join_next().await.is_some() {}
        }
        result
    }

    /// The scheduling loop: commit what finished together with what it unblocks, start it, and
    /// wait for the next step to finish or for the poll tick, until nothing can make progress.
    ///
    /// One transaction holds the finished steps' final records and the `running` records of the
    /// steps they unblock, so a chain pays one durable commit per step and a layer of parallel
    /// steps one commit to start them all. Nothing starts before its `running` record is
    /// committed, and nothing depends on a step before its final record is.
    async fn schedule(
        &self,
        context: &Arc<Context>,
        mut graph: Graph,
        actor: &str,
        wait_for_people: bool,
        mut lost: Option<watch::Receiver<bool>>,
        tasks: &mut JoinSet<Result<Finished, ExecError>>,
    ) -> Result<RunSummary, ExecError> {
        let run_id = context.run_id.clone();
        graph.load(&self.store.list_steps(&run_id).await?);
        let mut finished: Vec<Finished> = Vec::new();
        let mut running = 0usize;
        let mut aborted = false;
        let mut drain = self.drain.clone();
        // Reminders sent (by count) and escalations made, per waiting manual step.
        let mut reminded: HashMap<String, (u64, bool)> = HashMap::new();
        loop {
            let draining = drain.as_ref().is_some_and(|d| *d.borrow());
            let now = self.clock.now_ms();
            let mut batch: Vec<(StepRecord, NewEvent)> = Vec::new();
            let mut after_commit: Vec<ProgressEvent> = Vec::new();
            for done in finished.drain(..) {
                if let Some(index) = graph.index(&done.record.step_id) {
                    graph.set(index, done.record.clone());
                }
                after_commit.push(done.progress);
                batch.push((done.record, done.event));
            }
            let mut starts: Vec<(Step, StepRecord)> = Vec::new();
            // Skipped steps can unblock others at once: repeat until nothing new is ready.
            loop {
                let ready = if aborted || draining {
                    Vec::new()
                } else {
                    graph.ready(running + starts.len())
                };
                if ready.is_empty() {
                    break;
                }
                for index in ready {
                    let step = graph.nodes[index].step.clone();
                    let mut record = graph.record(index, &run_id, now);
                    record.updated_at_ms = now;
                    if let Some(checkpoint) = &step.when_checkpoint
                        && !context.checkpoints.contains(checkpoint)
                    {
                        record.state = StepState::Skipped;
                        record.note = Some(format!(
                            "checkpoint `{checkpoint}` was not reached, so there is nothing to undo"
                        ));
                        after_commit.push(ProgressEvent::StepFinished {
                            step: step.id.clone(),
                            state: StepState::Skipped,
                            detail: record.note.clone().unwrap_or_default(),
                            elapsed_ms: 0,
                            expected_ms: None,
                            counted: None,
                        });
                        batch.push((
                            record.clone(),
                            NewEvent::new("step_skipped", actor, now)
                                .run(&run_id)
                                .step(&step.id),
                        ));
                        graph.set(index, record);
                    } else if let backout_model::plan::StepKind::Manual { by, instructions } =
                        &step.kind
                    {
                        record.state = StepState::WaitingManual;
                        // A manual step's time runs from here to the confirmation.
                        record.started_at_ms = Some(now);
                        let event = NewEvent::new("manual_step_waiting", actor, now)
                            .run(&run_id)
                            .step(&step.id)
                            .payload(json!({ "by": by, "instructions": instructions }));
                        after_commit.push(ProgressEvent::StepWaiting {
                            step: step.id.clone(),
                            by: by.clone(),
                            instructions: instructions.clone(),
                        });
                        batch.push((record.clone(), event));
                        graph.set(index, record);
                    } else {
                        record.state = StepState::Running;
                        record.attempt += 1;
                        record.started_at_ms = Some(now);
                        record.finished_at_ms = None;
                        record.note = None;
                        let event = NewEvent::new("step_started", actor, now)
                            .run(&run_id)
                            .step(&step.id)
                            .payload(json!({ "attempt": record.attempt }));
                        after_commit.push(ProgressEvent::StepStarted {
                            step: step.id.clone(),
                            attempt: record.attempt,
                            expected_ms: step.expected.map(|e| e.as_millis()),
                        });
                        batch.push((record.clone(), event));
                        graph.mark_running(index);
                        starts.push((step, record));
                    }
                }
            }
            if !batch.is_empty() {
                // Notifications (a step failed, a manual step waits, a notify step's message)
                // commit with the events that cause them.
                for (_, event) in &mut batch {
                    event.deliveries = route(&context.plan, event);
                    event.fence.clone_from(&context.fence);
                }
                // Durable before anything it describes happens or is depended on.
                self.store.record_steps(&batch).await?;
            }
            // Number the finished steps as they are announced: n of the run's steps now.
            let (finished_now, total) = graph.counted();
            let finishing = after_commit
                .iter()
                .filter(|e| matches!(e, ProgressEvent::StepFinished { .. }))
                .count();
            let mut n = finished_now.saturating_sub(finishing);
            for event in &mut after_commit {
                if let ProgressEvent::StepFinished { counted, .. } = event {
                    n += 1;
                    *counted = Some((n, total));
                }
            }
            for event in &after_commit {
                self.progress.event(event);
            }
            for (step, record) in starts {
                running += 1;
                let outputs = graph.outputs_env();
                let (store, clock, context, actor) = (
                    self.store.clone(),
                    self.clock.clone(),
                    context.clone(),
                    actor.to_string(),
                );
                let progress = self.progress.clone();
                tasks.spawn(async move {
                    execute_step(
                        store, clock, progress, context, step, record, outputs, actor,
                    )
                    .await
                });
            }

            let waiting = graph.waiting_for_people();
            if draining && running == 0 && !aborted {
                return Err(ExecError::Drained(run_id));
            }
            if running == 0
                && (graph.ready(0).is_empty() || aborted)
                && (waiting.is_empty() || !wait_for_people || aborted)
            {
                break;
            }
            let tick = tokio::time::sleep(self.poll);
            let lease_lost = async {
                match lost.as_mut() {
                    Some(lost) => {
                        if lost.wait_for(|l| *l).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let drain_asked = async {
                match drain.as_mut() {
                    Some(drain) if !draining => {
                        if drain.wait_for(|d| *d).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                () = drain_asked => {}
                () = lease_lost => {
                    let fence = context.fence.clone().unwrap_or_else(|| Fence {
                        lease: run_lease_name(&run_id),
                        token: 0,
                    });
                    return Err(ExecError::Store(StoreError::fenced(&fence)));
                }
                Some(joined) = tasks.join_next(), if running > 0 => {
                    running -= 1;
                    finished.push(joined.map_err(|e| ExecError::Refused(format!("a step task failed: {e}")))??);
                    // Others that finished meanwhile share the next commit.
                    while let Some(joined) = tasks.try_join_next() {
                        running -= 1;
                        finished.push(joined.map_err(|e| ExecError::Refused(format!("a step task failed: {e}")))??);
                    }
                }
                () = tick => {
                    self.remind(context, &graph, actor, &mut reminded).await?;
                    // People act through the store: confirmations, resolutions, aborts.
                    let run = self.store.get_run(&run_id).await?;
                    if run.state == RunState::Aborted && !aborted {
                        aborted = true;
                        context.cancel.send_replace(true);
                    }
                    if !waiting.is_empty() {
                        let records = self.store.list_steps(&run_id).await?;
                        graph.load(&records);
                        // Tell the watchers about the steps people settled.
                        for record in records.iter().filter(|r| waiting.contains(&r.step_id)) {
                            let still_asks = graph.index(&record.step_id).is_some_and(|i| graph.asks(i));
                            if !matches!(record.state, StepState::WaitingManual | StepState::InDoubt) && !still_asks {
                                self.progress.event(&ProgressEvent::StepFinished {
                                    step: record.step_id.clone(),
                                    state: record.state,
                                    detail: record.note.clone().unwrap_or_default(),
                                    elapsed_ms: record
                                        .finished_at_ms
                                        .zip(record.started_at_ms)
                                        .map_or(0, |(f, s)| u64::try_from(f - s).unwrap_or(0)),
                                    expected_ms: graph.expected_ms(&record.step_id),
                                    counted: Some(graph.counted()),
                                });
                            }
                        }
                    }
                }
            }
        }
        let now = self.clock.now_ms();
        let current = self.store.get_run(&run_id).await?;
        let state = if current.state == RunState::Aborted {
            RunState::Aborted
        } else {
            graph.verdict()
        };
        if state != current.state || state == RunState::Waiting {
            let kind = match state {
                RunState::Succeeded => "run_succeeded",
                RunState::Failed => "run_failed",
                RunState::Waiting => "run_waiting",
                RunState::Aborted => "run_aborted",
                RunState::Running | RunState::Refused => "run_stopped",
            };
            let payload = json!({ "waiting_for": graph.waiting_for_people() });
            let executor = if state == RunState::Waiting {
                None
            } else {
                current.executor.clone()
            };
            self.store
                .update_run(
                    &RunUpdate {
                        run_id: run_id.clone(),
                        state,
                        executor,
                        at_ms: now,
                    },
                    &routed(
                        &context.plan,
                        NewEvent::new(kind, actor, now)
                            .run(&run_id)
                            .payload(payload)
                            .fenced(context.fence.clone()),
                    ),
                )
                .await?;
        }
        self.progress.event(&ProgressEvent::RunFinished {
            run_id: run_id.clone(),
            state,
        });
        self.summary(&run_id).await
    }
}

/// What every step of one run shares.
struct Context {
    run_id: String,
    /// The plan being executed (its channels route the run's notifications).
    plan: Arc<Plan>,
    resolver: Arc<Resolver>,
    redactor: Redactor,
    base_env: Vec<(String, String)>,
    /// A rehearsal environment's `env` (`RunOptions::extra_env`): applied after a step's own
    /// `env`, so a step can never point a rehearsal at production.
    overrides: Vec<(String, String)>,
    checkpoints: Vec<String>,
    cancel: watch::Sender<bool>,
    /// The run's lease when runs are shared: every write of the run carries it.
    fence: Option<Fence>,
}

impl Context {
    fn invocation(
        &self,
        step: Option<&Step>,
        attempt: u32,
        timeout: Option<Duration>,
        outputs: &BTreeMap<String, String>,
    ) -> Invocation {
        let mut env = self.base_env.clone();
        env.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(step) = step {
            env.push(("BACKOUT_STEP_ID".into(), step.id.clone()));
            env.push(("BACKOUT_ATTEMPT".into(), attempt.to_string()));
        }
        Invocation {
            env,
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
            cancel: self.cancel.subscribe(),
            resolver: self.resolver.clone(),
            spawned: None,
        }
    }
}

/// The steps a run executes: a workaround's, or the procedure's.
pub fn steps_to_run(plan: &Plan, workaround: Option<&str>) -> Result<Vec<Step>, ExecError> {
    match workaround {
        Some(id) => {
            let workarounds = plan
                .workarounds
                .given()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let found = workarounds.iter().find(|w| w.id == id).ok_or_else(|| {
                let known: Vec<&str> = workarounds.iter().map(|w| w.id.as_str()).collect();
                ExecError::Refused(format!(
                    "the plan has no workaround `{id}` (it has: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
            if found.steps.is_empty() {
                return Err(ExecError::Refused(format!(
                    "workaround `{id}` has no steps to run: {}",
                    found.description
                )));
            }
            Ok(found.steps.clone())
        }
        None => match &plan.procedure {
            Answer::Given(p) => Ok(p.steps.clone()),
            Answer::NotApplicable(reason) => Err(ExecError::Refused(format!(
                "this plan has no procedure ({reason}); run one of its workarounds with --workaround"
            ))),
        },
    }
}

/// A step of the procedure, a contingency or a workaround, by id.
fn find_step<'a>(plan: &'a Plan, id: &str) -> Option<&'a Step> {
    plan.all_steps().find(|s| s.id == id)
}

fn me() -> ExecutorInfo {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    ExecutorInfo {
        pid: std::process::id(),
        hostname,
    }
}

/// Whether the run's lease was lost: another replica owns the run now.
fn is_fenced<T>(result: &Result<T, ExecError>) -> bool {
    matches!(result, Err(ExecError::Store(StoreError::Fenced { .. })))
}

/// Whether a pid is a backout process (pids are reused; a stranger is not our executor).
fn is_backout(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim().starts_with("backout"))
}
