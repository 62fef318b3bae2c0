//! What an executor tells the terminals, logs and servers that follow a run.

use backout_store::{RunState, StepState};

/// Live progress for terminals and logs. Called from the executor's tasks; must not block.
pub trait Progress: Send + Sync {
    fn event(&self, event: &ProgressEvent);
}

/// What progress reporters are told.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    RunStarted {
        run_id: String,
        steps: usize,
        resumed: bool,
    },
    PreconditionFailed {
        id: String,
        detail: String,
    },
    StepStarted {
        step: String,
        attempt: u32,
        expected_ms: Option<u64>,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        detail: String,
    },
    StepFinished {
        step: String,
        state: StepState,
        detail: String,
        elapsed_ms: u64,
        expected_ms: Option<u64>,
        /// Steps finished so far and steps in the run now (a contingency branch adds to it;
        /// after a resume it counts what finished before), when the executor knows.
        #[serde(skip_serializing_if = "Option::is_none")]
        counted: Option<(usize, usize)>,
    },
    StepWaiting {
        step: String,
        by: String,
        instructions: String,
    },
    StepInDoubt {
        step: String,
    },
    RunFinished {
        run_id: String,
        state: RunState,
    },
    /// A measurement of `procedure.verify_after` after the rollback ran: what it found and how
    /// long the checks have held so far against the hold.
    Verification {
        criterion: String,
        class: String,
        reason: String,
        held_ms: u64,
        hold_ms: u64,
    },
}
