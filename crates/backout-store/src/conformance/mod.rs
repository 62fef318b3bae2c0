//! Store conformance suite: stories every backend runs against itself (atuin's `db_story.rs`
//! style), so SQLite and PostgreSQL keep exactly the same contract (see [`crate::Store`]).
//!
//! Each story is a public async function that panics on a broken expectation and returns the
//! store's own errors as `Err`. Stories only add records with their own ids and make assertions
//! relative to what was there before, so they may share one store ([`run_all`]) or each get a
//! fresh one. [`tampering_is_detected`] needs a backend hook that edits stored rows behind the
//! store's back, and breaks the chain for good: run it on a store of its own.
//!
//! A backend's test file looks like:
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conformance() {
//!     let store: Arc<dyn Store> = Arc::new(open_fresh_store().await);
//!     backout_store::conformance::run_all(store).await.unwrap();
//! }
//! ```

mod counts;
mod deliveries;
mod evidence;
mod journal;
mod leases;
mod releases;
mod runs;
mod steps;
mod tokens;

use std::sync::Arc;

use serde_json::json;

use crate::errors::{Entity, StoreError};
use crate::run::{ExecutorInfo, NewRun, RunKind, RunState};
use crate::store::Store;

pub use counts::counts;
pub use deliveries::deliveries;
pub use evidence::evidence_story;
pub use journal::{
    chain_verifies, concurrent_appends, events_are_ordered_and_gap_free,
    failed_writes_append_nothing, tampering_is_detected,
};
pub use leases::{concurrent_lease_takers, fenced_writes, leases};
pub use releases::{releases, watcher_reads};
pub use runs::{missing_records_are_not_found, run_updates, runs_newest_first, runs_round_trip};
pub use steps::{step_batches, steps_round_trip};
pub use tokens::tokens;

/// How [`tampering_is_detected`] asks the backend to corrupt its journal, bypassing the store
/// (and any append-only guard the backend has, as an attacker with file access would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tampering {
    /// Change the stored payload of event `seq` (to `{"tampered":true}`), leaving its hash.
    EditPayload { seq: u64 },
    /// Delete event `seq`.
    Delete { seq: u64 },
}

/// Runs every story except [`tampering_is_detected`] on one store, then verifies the whole chain.
pub async fn run_all(store: Arc<dyn Store>) -> Result<(), StoreError> {
    runs_round_trip(store.as_ref()).await?;
    run_updates(store.as_ref()).await?;
    runs_newest_first(store.as_ref()).await?;
    steps_round_trip(store.as_ref()).await?;
    step_batches(store.as_ref()).await?;
    releases(store.as_ref()).await?;
    watcher_reads(store.as_ref()).await?;
    deliveries(store.as_ref()).await?;
    counts(store.as_ref()).await?;
    evidence_story(store.as_ref()).await?;
    tokens(store.as_ref()).await?;
    leases(store.as_ref()).await?;
    fenced_writes(store.as_ref()).await?;
    concurrent_lease_takers(Arc::clone(&store)).await?;
    events_are_ordered_and_gap_free(store.as_ref()).await?;
    failed_writes_append_nothing(store.as_ref()).await?;
    missing_records_are_not_found(store.as_ref()).await?;
    concurrent_appends(Arc::clone(&store)).await?;
    chain_verifies(store.as_ref()).await?;
    Ok(())
}

/// A time far from zero so that accidental seconds/milliseconds mix-ups show.
pub(crate) const T0: i64 = 1_732_000_000_000;

/// A run with every field set to something distinctive.
pub(crate) fn new_run(id: &str, created_at_ms: i64, steps: &[&str]) -> NewRun {
    NewRun {
        id: id.to_owned(),
        plan_hash: format!("blake3:{id}-hash"),
        plan_source: format!(
            "# plan for {id}\nrelease:\n  service: checkout\n  note: \"ünïcödé ✓\"\n"
        ),
        kind: RunKind::Release,
        release_id: Some(format!("rel-{id}")),
        environment: "production".to_owned(),
        actor: "alice".to_owned(),
        state: RunState::Running,
        checkpoints: vec!["expand-migration".to_owned(), "deploy".to_owned()],
        executor: Some(ExecutorInfo {
            pid: 4242,
            hostname: "runner-1.example".to_owned(),
        }),
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        created_at_ms,
    }
}

/// An event payload exercising the JSON shapes the chain must reproduce exactly.
pub(crate) fn rich_payload(n: u64) -> serde_json::Value {
    json!({
        "zeta": n,
        "alpha": {"nested": [1, 2.5, -0.125, null, true, "x"], "b": {}, "a": []},
        "big": u64::MAX,
        "small": i64::MIN,
        "float": 0.1,
        "text": "quote \" backslash \\ newline \n tab \t ünïcödé 🦀",
    })
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected_entity: Entity,
    expected_id: &str,
) {
    match result {
        Err(StoreError::NotFound { entity, id }) => {
            assert_eq!(entity, expected_entity, "wrong entity in NotFound");
            assert_eq!(id, expected_id, "wrong id in NotFound");
        }
        other => panic!("expected NotFound for {expected_entity} `{expected_id}`, got {other:?}"),
    }
}

/// The highest seq in the journal, 0 when empty.
pub(crate) async fn last_seq(store: &dyn Store) -> Result<u64, StoreError> {
    Ok(store.last_event().await?.map_or(0, |e| e.seq))
}
