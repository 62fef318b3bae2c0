//! Step runners: one small trait per way of doing a step's work. Runners only run; the executor
//! owns deadlines (passed in), retries, verification, journaling and cancellation.

mod command;
mod criterion;
pub mod http;
mod notify;
mod wait;

use std::sync::Arc;

use async_trait::async_trait;
use backout_model::Plan;
use backout_model::plan::{Action, Check, StepKind, Wait};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::env::Resolver;

pub use command::CommandRunner;
pub use criterion::CriterionRunner;
pub use http::{HttpCheckRunner, HttpRunner};
pub use notify::NotifyRunner;
pub use wait::WaitRunner;

/// What a runner gets for one attempt.
pub struct Invocation {
    /// Variables for the step (BACKOUT_*, outputs of earlier steps, the step's resolved `env`),
    /// on top of the executor's own environment.
    pub env: Vec<(String, String)>,
    pub deadline: Option<Instant>,
    /// Becomes `true` when the run is aborted.
    pub cancel: watch::Receiver<bool>,
    pub resolver: Arc<Resolver>,
    /// Told the process group of a command step right after the spawn, so it is recorded before
    /// anything can depend on finding it after a crash (`None` for preconditions and checks).
    pub spawned: Option<crate::process::SpawnHook>,
}

/// How one attempt ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub exit_status: Option<i32>,
    pub pgid: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// One line saying why it failed (or what it did), for status and reports.
    pub detail: String,
    pub timed_out: bool,
    pub cancelled: bool,
}

impl Outcome {
    pub fn failed(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            detail: detail.into(),
            ..Outcome::default()
        }
    }
}

/// Does the work of one step kind.
#[async_trait]
pub trait StepRunner: Send + Sync {
    async fn run(&self, invocation: Invocation) -> Outcome;
}

/// The runner for a step kind. Manual steps are not run by a runner: a person confirms them.
/// `plan` gives the criteria a `wait: { until }` step measures.
pub fn for_step(kind: &StepKind, plan: &Plan) -> Option<Box<dyn StepRunner>> {
    match kind {
        StepKind::Run(script) => Some(Box::new(CommandRunner::shell(script.clone()))),
        StepKind::Exec(argv) => Some(Box::new(CommandRunner::argv(argv.clone()))),
        StepKind::Http(request) => Some(Box::new(HttpRunner::new(request.clone()))),
        StepKind::Notify { channels, message } => Some(Box::new(NotifyRunner::new(
            channels.clone(),
            message.clone(),
        ))),
        StepKind::Wait(Wait::Until { criterion, timeout }) => {
            Some(match plan.criterion(criterion) {
                Some(c) => Box::new(CriterionRunner::wait(
                    c.clone(),
                    crate::criteria::sources::of_plan(plan),
                    timeout.map(|t| t.0),
                )),
                None => Box::new(WaitRunner::unsupported(
                    "the plan has no such criterion (lint reports it)",
                )),
            })
        }
        StepKind::Wait(wait) => Some(Box::new(WaitRunner::new(wait.clone()))),
        StepKind::Manual { .. } => None,
    }
}

/// The runner for a precondition.
pub fn for_action(action: &Action) -> Box<dyn StepRunner> {
    match action {
        Action::Run(script) => Box::new(CommandRunner::shell(script.clone())),
        Action::Exec(argv) => Box::new(CommandRunner::argv(argv.clone())),
        Action::Http(request) => Box::new(HttpRunner::new(request.clone())),
    }
}

/// The runner for a step's `verify`.
pub fn for_check(verify: &backout_model::plan::Verify, plan: &Plan) -> Box<dyn StepRunner> {
    match &verify.check {
        Check::Command(script) => Box::new(
            CommandRunner::shell(script.clone()).judged_by(verify.fails_if, verify.passes_if),
        ),
        Check::Http(check) => Box::new(HttpCheckRunner::new(
            check.clone(),
            verify.fails_if,
            verify.passes_if,
        )),
        Check::Prometheus(query) => Box::new(CriterionRunner::query(
            query.clone(),
            verify.fails_if,
            verify.passes_if,
            crate::criteria::sources::of_plan(plan),
        )),
        Check::Criterion(id) => match plan.criterion(id) {
            Some(c) => Box::new(CriterionRunner::once(
                c.clone(),
                crate::criteria::sources::of_plan(plan),
            )),
            None => Box::new(WaitRunner::unsupported(
                "the plan has no such criterion (lint reports it)",
            )),
        },
    }
}
