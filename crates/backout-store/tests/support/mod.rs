//! Helpers of the store tests, shared by the story suite (`tests/stories.rs`) and each
//! backend's own test file (included there with `#[path]`), so a test run is built one way.
//! A folder, not a file, in `tests/`, so cargo does not make a test binary of it.

use backout_store::{ExecutorInfo, NewRun, RunKind, RunState};

/// A time far from zero, so that accidental seconds/milliseconds mix-ups show.
pub const T0: i64 = 1_732_000_000_000;

/// A running ad-hoc run of `steps`, created at [`T0`] by this process.
pub fn run(id: &str, steps: &[&str]) -> NewRun {
    NewRun {
        id: id.to_owned(),
        plan_hash: "hash".to_owned(),
        plan_source: "release: {}\n".to_owned(),
        kind: RunKind::Adhoc,
        release_id: None,
        environment: "staging".to_owned(),
        actor: "alice".to_owned(),
        state: RunState::Running,
        checkpoints: Vec::new(),
        executor: Some(ExecutorInfo {
            pid: std::process::id(),
            hostname: "localhost".to_owned(),
        }),
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        created_at_ms: T0,
    }
}
