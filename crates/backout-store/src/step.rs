//! Step records: the durable state of one step of one run (its attempt, process group, exit
//! status, outputs and captured output). The executor owns the transitions; the store only keeps
//! what it is given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

text_enum! {
    /// State of one step of a run.
    pub enum StepState ("step state") {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Not run: its checkpoint was not reached, or a dependency failed with `on_failure: continue`.
        Skipped = "skipped",
        /// A manual step waits for `backout confirm`.
        WaitingManual = "waiting_manual",
        /// Was running when its executor died and is not idempotent: a person must `resolve` it.
        InDoubt = "in_doubt",
        Aborted = "aborted",
    }
}

impl StepState {
    /// Whether the step will not change again without a person (`resolve … retry`).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepState::Succeeded | StepState::Failed | StepState::Skipped | StepState::Aborted
        )
    }
}

/// The whole state of one step of a run. [`crate::Store::record_step`] replaces the stored
/// record with this one (it does not merge fields), so the executor always writes what it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run_id: String,
    pub step_id: String,
    pub state: StepState,
    /// 0 before the first start, then 1, 2, … for each (re)try.
    pub attempt: u32,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub exit_status: Option<i32>,
    /// Process group of the running attempt, so leftovers of a crashed executor can be killed.
    pub pgid: Option<i32>,
    /// Free text: a skip reason, who confirmed a manual step, how an in-doubt step was resolved.
    pub note: Option<String>,
    /// Named values captured from stdout (`outputs:` in the plan).
    pub outputs: BTreeMap<String, String>,
    /// Captured output, already capped and redacted by the executor.
    pub stdout: String,
    pub stderr: String,
    pub updated_at_ms: i64,
}

impl StepRecord {
    /// A step that has not started.
    pub fn pending(run_id: impl Into<String>, step_id: impl Into<String>, at_ms: i64) -> Self {
        StepRecord {
            run_id: run_id.into(),
            step_id: step_id.into(),
            state: StepState::Pending,
            attempt: 0,
            started_at_ms: None,
            finished_at_ms: None,
            exit_status: None,
            pgid: None,
            note: None,
            outputs: BTreeMap::new(),
            stdout: String::new(),
            stderr: String::new(),
            updated_at_ms: at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in StepState::ALL {
            assert_eq!(state.as_str().parse::<StepState>(), Ok(*state));
            let json = serde_json::to_value(state).expect("serializes");
            assert_eq!(json, serde_json::Value::from(state.as_str()));
        }
        assert_eq!(StepState::WaitingManual.as_str(), "waiting_manual");
        assert_eq!(StepState::InDoubt.as_str(), "in_doubt");
    }
}
