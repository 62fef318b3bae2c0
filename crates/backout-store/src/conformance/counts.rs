//! Conformance story about [`Store::counts`]: what `/metrics` reports is counted by the store
//! and agrees with the records.

use crate::conformance::{T0, new_run};
use crate::delivery::{DeliveryKind, NewDelivery};
use crate::errors::StoreError;
use crate::event::NewEvent;
use crate::release::NewRelease;
use crate::run::{RunState, RunUpdate};
use crate::store::Store;

const T: i64 = T0 + 70_000_000;
const PREFIXES: &[&str] = &["rolled back", "rollback unverified", "success"];

fn release(id: &str) -> NewRelease {
    NewRelease {
        id: id.to_owned(),
        plan_hash: "hash-counts".to_owned(),
        plan_source: "version: 1\n".to_owned(),
        service: "checkout".to_owned(),
        version: "3.0.0".to_owned(),
        rollback_to: "2.9.0".to_owned(),
        environment: "production".to_owned(),
        actor: "alice".to_owned(),
        opened_at_ms: T,
        closes_at_ms: None,
    }
}

fn get(map: &std::collections::BTreeMap<String, u64>, state: &str) -> u64 {
    map.get(state).copied().unwrap_or(0)
}

/// Runs and deliveries by state, open and closed releases, and closed releases by the prefix
/// of their close reason: each count moves by exactly what the story adds, and the counts agree
/// with listing every record.
pub async fn counts(store: &dyn Store) -> Result<(), StoreError> {
    let before = store.counts(PREFIXES).await?;
    assert_eq!(
        before.closed_by_reason.len(),
        PREFIXES.len(),
        "one count per prefix"
    );

    store
        .create_run(
            &new_run("run-counts-1", T, &["a"]),
            &NewEvent::new("run_started", "alice", T).deliveries(vec![NewDelivery::new(
                "ops",
                DeliveryKind::Slack,
                "run_started",
            )]),
        )
        .await?;
    store
        .create_run(
            &new_run("run-counts-2", T + 1, &["a"]),
            &NewEvent::new("run_started", "alice", T + 1),
        )
        .await?;
    store
        .update_run(
            &RunUpdate {
                run_id: "run-counts-2".to_owned(),
                state: RunState::Succeeded,
                executor: None,
                at_ms: T + 2,
            },
            &NewEvent::new("run_succeeded", "alice", T + 2),
        )
        .await?;
    for (id, reason) in [
        ("rel-counts-open", None),
        ("rel-counts-rolled", Some("rolled back: run r1 succeeded")),
        (
            "rel-counts-unverified",
            Some("rollback unverified: no hold"),
        ),
        ("rel-counts-success", Some("success: held 1h")),
        ("rel-counts-closed", Some("closed on time")),
    ] {
        store
            .create_release(&release(id), &NewEvent::new("release_started", "alice", T))
            .await?;
        if let Some(reason) = reason {
            store
                .close_release(
                    id,
                    T + 5,
                    reason,
                    &NewEvent::new("window_closed", "w", T + 5),
                )
                .await?;
        }
    }

    let after = store.counts(PREFIXES).await?;
    assert_eq!(
        get(&after.runs, "running"),
        get(&before.runs, "running") + 1
    );
    assert_eq!(
        get(&after.runs, "succeeded"),
        get(&before.runs, "succeeded") + 1
    );
    assert_eq!(
        get(&after.deliveries, "pending"),
        get(&before.deliveries, "pending") + 1
    );
    assert_eq!(after.open_releases, before.open_releases + 1);
    assert_eq!(after.closed_releases, before.closed_releases + 4);
    for (i, prefix) in PREFIXES.iter().enumerate() {
        assert_eq!(
            after.closed_by_reason[i],
            before.closed_by_reason[i] + 1,
            "closed releases whose reason starts with `{prefix}`"
        );
    }

    // The counts agree with the records themselves.
    let runs = store.list_runs(u32::MAX).await?;
    for state in RunState::ALL {
        let listed = runs.iter().filter(|r| r.state == *state).count() as u64;
        assert_eq!(
            get(&after.runs, state.as_str()),
            listed,
            "runs {}",
            state.as_str()
        );
    }
    let deliveries = store.list_deliveries(None, u32::MAX).await?;
    assert_eq!(
        after.deliveries.values().sum::<u64>(),
        deliveries.len() as u64,
        "every delivery is counted once"
    );
    let releases = store.list_releases(u32::MAX).await?;
    let open = releases.iter().filter(|r| r.close_reason.is_none()).count() as u64;
    assert_eq!(after.open_releases, open);
    assert_eq!(after.closed_releases, releases.len() as u64 - open);
    Ok(())
}
