//! Errors of the operations. Expected refusals (a run that cannot start or resume) are their own
//! kinds so the binary maps them to exit codes in one place.

use backout_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The store failed; nothing more was done.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The plan stored with the run no longer lints (it cannot change, so this is corruption).
    #[error("the plan of run `{run_id}` does not lint: {message}")]
    InvalidPlan { run_id: String, message: String },
    /// A request that names something the plan does not have (an undeclared checkpoint).
    #[error("{0}")]
    Usage(String),
    /// A request that cannot be honoured: unknown workaround or step, a run already finished,
    /// a run another live executor holds, a step in the wrong state.
    #[error("{0}")]
    Refused(String),
    /// The executor was asked to stop starting steps (its server shuts down) and every step it
    /// had running has finished and is journaled: the run is unfinished, not failed, and its
    /// next executor (another replica, a restart) goes on from there with nothing in doubt.
    #[error("run `{0}` was handed over unfinished: this executor stops (its server shuts down)")]
    Drained(String),
}
