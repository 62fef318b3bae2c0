//! Run records: one execution of a plan's procedure (for a release, ad hoc, a rehearsal or a
//! workaround), its lifecycle state and who is executing it. Step states live in `step.rs`.

use serde::{Deserialize, Serialize};

text_enum! {
    /// Why a run exists.
    pub enum RunKind ("run kind") {
        /// `backout run PLAN`: a drill or an emergency without a release.
        Adhoc = "adhoc",
        /// `backout execute REL`: the approved backout of a release.
        Release = "release",
        /// `backout rehearse`: a test run whose success becomes evidence.
        Rehearsal = "rehearsal",
        /// `backout run PLAN --workaround ID`.
        Workaround = "workaround",
    }
}

text_enum! {
    /// Lifecycle state of a run.
    pub enum RunState ("run state") {
        /// An executor is (or was, if it crashed) driving the steps.
        Running = "running",
        /// Waiting for a person: a manual step, or an in-doubt step to resolve.
        Waiting = "waiting",
        Succeeded = "succeeded",
        Failed = "failed",
        Aborted = "aborted",
        /// Never started: a precondition failed, the window was closed, or authorization was missing.
        Refused = "refused",
    }
}

impl RunState {
    /// Whether the run is over; a terminal state sets the run's `finished_at_ms`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Aborted | RunState::Refused
        )
    }
}

/// The process that executes a run, so that a later `resume` can tell whether it is still alive
/// (same host and the pid exists) or crashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    pub pid: u32,
    pub hostname: String,
}

/// A run to create. The caller chooses the id (see [`crate::new_run_id`]) so it can be printed or
/// logged before the run is stored and so tests are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    pub id: String,
    /// Canonical content hash of the plan (computed by `backout-model`).
    pub plan_hash: String,
    /// The plan's YAML as read, so a run resumes with the same plan even if the file changed.
    pub plan_source: String,
    pub kind: RunKind,
    pub release_id: Option<String>,
    pub environment: String,
    /// Who started the run.
    pub actor: String,
    /// Usually [`RunState::Running`]; [`RunState::Refused`] records a run that never started.
    pub state: RunState,
    /// The release's checkpoints reached when the run started, a snapshot that decides
    /// `when_checkpoint` steps for the whole run, including after a resume.
    pub checkpoints: Vec<String>,
    pub executor: Option<ExecutorInfo>,
    /// Step ids of the procedure, in plan order; each gets a `pending` record in the same
    /// transaction as the run.
    pub steps: Vec<String>,
    pub created_at_ms: i64,
}

/// A change of a run's state, written together with its event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunUpdate {
    pub run_id: String,
    pub state: RunState,
    /// `Some` replaces the executor (a resume by another process); `None` keeps the current one.
    pub executor: Option<ExecutorInfo>,
    /// Becomes `updated_at_ms`, and `finished_at_ms` when `state` is terminal (else that is cleared).
    pub at_ms: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub plan_hash: String,
    pub plan_source: String,
    pub kind: RunKind,
    pub release_id: Option<String>,
    pub environment: String,
    pub actor: String,
    pub state: RunState,
    pub checkpoints: Vec<String>,
    pub executor: Option<ExecutorInfo>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl Run {
    /// The record a backend must return right after storing `new`.
    pub fn from_new(new: &NewRun) -> Run {
        Run {
            id: new.id.clone(),
            plan_hash: new.plan_hash.clone(),
            plan_source: new.plan_source.clone(),
            kind: new.kind,
            release_id: new.release_id.clone(),
            environment: new.environment.clone(),
            actor: new.actor.clone(),
            state: new.state,
            checkpoints: new.checkpoints.clone(),
            executor: new.executor.clone(),
            created_at_ms: new.created_at_ms,
            updated_at_ms: new.created_at_ms,
            finished_at_ms: new.state.is_terminal().then_some(new.created_at_ms),
        }
    }

    /// Applies `update` the way every backend must.
    pub fn apply(&mut self, update: &RunUpdate) {
        self.state = update.state;
        if let Some(executor) = &update.executor {
            self.executor = Some(executor.clone());
        }
        self.updated_at_ms = update.at_ms;
        self.finished_at_ms = update.state.is_terminal().then_some(update.at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for kind in RunKind::ALL {
            assert_eq!(kind.as_str().parse::<RunKind>(), Ok(*kind));
            let json = serde_json::to_string(kind).expect("serializes");
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(
                serde_json::from_str::<RunKind>(&json).expect("parses"),
                *kind
            );
        }
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(*state));
        }
        let error = "sleeping".parse::<RunState>().expect_err("unknown name");
        assert_eq!(error.to_string(), "unknown run state `sleeping`");
    }

    #[test]
    fn terminal_states_set_finished_at() {
        let terminal: Vec<_> = RunState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(terminal, ["succeeded", "failed", "aborted", "refused"]);
    }
}
