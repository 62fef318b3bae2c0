//! `check` replays a release from its newest `criteria_snapshot`, not from its first event: the
//! state it reaches must be exactly the state of a full replay, and the events it reads must not
//! grow with the release's history. Real SQLite store, the reference plan, injected time.

use std::sync::Arc;

use backout_core::criteria::{Observation, Series};
use backout_core::release::{self, StartRelease};
use backout_core::release::{SNAPSHOT_AFTER, SNAPSHOT_KIND, Tracker};
use backout_sqlite::SqliteStore;
use backout_store::{NewEvent, Store};

const T0: i64 = 1_795_700_000_000;
const MINUTE: i64 = 60_000;

/// A fresh store with the reference plan's release started at T0.
async fn started() -> (SqliteStore, String) {
    let store = SqliteStore::open_in_memory().await.expect("store");
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/plans/valid/checkout.yaml"),
    )
    .expect("the reference plan");
    let start = StartRelease {
        source: &source,
        version: None,
        rollback_to: None,
        actor: "alice@example.com",
        at_ms: T0,
    };
    let id = release::start(&store, &start).await.expect("start").id;
    (store, id)
}

/// A value for the error-rate criterion (fails above 0.02, passes at or below 0.005).
fn value(v: f64) -> Observation {
    Observation::Values {
        series: vec![Series {
            labels: vec![],
            value: v,
            baseline: None,
        }],
    }
}

/// One `check` round as `release::check::check` does it, with the observations given instead of
/// measured: replay, snapshot when the replay was long, measure, conclude, journal.
async fn round(store: &dyn Store, id: &str, at_ms: i64, observations: &[Observation]) -> Tracker {
    let release = store.get_release(id).await.expect("release");
    let plan = Arc::new(Tracker::plan_of(&release).expect("plan"));
    let mut tracker = Tracker::replay(store, &release, plan)
        .await
        .expect("replay");
    let mut events: Vec<NewEvent> = tracker
        .snapshot_if_long("checker", at_ms)
        .into_iter()
        .collect();
    for (i, observation) in observations.iter().enumerate() {
        events.push(tracker.measured(i, observation.clone(), at_ms, "checker"));
    }
    events.extend(tracker.conclude(at_ms, "checker").events);
    store.append_events(&events).await.expect("journal");
    tracker
}

/// The state every event of the release leads to, from the first one (no snapshot).
async fn full_replay(store: &dyn Store, id: &str) -> Tracker {
    let release = store.get_release(id).await.expect("release");
    let plan = Arc::new(Tracker::plan_of(&release).expect("plan"));
    let mut tracker = Tracker::new(&release, plan);
    release::for_each_event(store, id, |e| tracker.apply(e))
        .await
        .expect("events");
    tracker
}

#[tokio::test]
async fn a_replay_from_the_newest_snapshot_reaches_the_state_of_a_full_replay() {
    let (store, id) = started().await;
    // 90 rounds after the 5-minute delay, four criteria each: error rate passing, failing once
    // (below trips_after 2) and erring; latency failing twice in a row (below trips_after 3). After every round, the replay from the newest snapshot must equal
    // the full replay: a snapshot taken mid-streak carries its counters over.
    let mut at = T0 + 6 * MINUTE;
    for n in 0..90 {
        let error_rate = match n % 7 {
            2 => value(0.05),
            4 | 5 => Observation::Error {
                message: "connection refused".into(),
            },
            _ => value(0.001),
        };
        let latency = if n % 11 < 2 { value(0.8) } else { value(0.2) };
        // The alert fires throughout and the health endpoint never answers: their counters
        // grow every round, so a snapshot that lost one cannot go unnoticed.
        let firing = Observation::Judged {
            failing: true,
            detail: "CheckoutPaymentsFailing firing".into(),
        };
        let down = Observation::Error {
            message: "connection refused".into(),
        };
        round(&store, &id, at, &[error_rate, latency, firing, down]).await;
        let release = store.get_release(&id).await.expect("release");
        let plan = Arc::new(Tracker::plan_of(&release).expect("plan"));
        let replayed = Tracker::replay(&store, &release, plan)
            .await
            .expect("replay");
        let full = full_replay(&store, &id).await;
        assert_eq!(replayed.states(), full.states(), "after round {n}");
        at += MINUTE;
    }
    let snapshots = store
        .last_release_event(&id, SNAPSHOT_KIND)
        .await
        .expect("read")
        .expect("a long journal has a snapshot");
    let events = store.release_events(&id, 0, 10_000).await.expect("events");
    assert!(
        events.iter().filter(|e| e.kind == SNAPSHOT_KIND).count() >= 3,
        "a snapshot about every {SNAPSHOT_AFTER} events: {} events",
        events.len()
    );

    let release = store.get_release(&id).await.expect("release");
    let plan = Arc::new(Tracker::plan_of(&release).expect("plan"));
    let from_snapshot = Tracker::replay(&store, &release, plan)
        .await
        .expect("replay");
    let full = full_replay(&store, &id).await;
    assert_eq!(from_snapshot.states(), full.states());
    assert_eq!(from_snapshot.verdict(at), full.verdict(at));
    assert_eq!(from_snapshot.evidence(), full.evidence());
    let after_snapshot = events.iter().filter(|e| e.seq > snapshots.seq).count();
    assert!(
        after_snapshot < SNAPSHOT_AFTER + 8,
        "the tail replayed is short ({after_snapshot} events after the newest snapshot of {})",
        events.len()
    );
}

#[tokio::test]
async fn a_snapshot_of_other_criteria_is_ignored_and_the_replay_starts_from_the_beginning() {
    let (store, id) = started().await;
    let at = T0 + 6 * MINUTE;
    round(&store, &id, at, &[value(0.05)]).await;
    round(&store, &id, at + MINUTE, &[value(0.05)]).await;
    // A forged or foreign snapshot claiming everything passed, through the newest event.
    let through = store.last_event().await.expect("read").expect("some").seq;
    store
        .append_event(
            &NewEvent::new(SNAPSHOT_KIND, "mallory", at + 2 * MINUTE)
                .payload(serde_json::json!({
                    "through_seq": through,
                    "criteria": [["other-criterion", {
                        "status": "passing", "consecutive_failures": 0, "consecutive_errors": 0,
                        "passing_since_ms": null, "last_reason": null, "last_measured_ms": null
                    }]],
                    "requested": false, "last_verdict": null, "closing_noticed": false,
                    "closed": false, "succeeded": false, "close_reason": null
                }))
                .release(&id),
        )
        .await
        .expect("journal");
    let release = store.get_release(&id).await.expect("release");
    let plan = Arc::new(Tracker::plan_of(&release).expect("plan"));
    let tracker = Tracker::replay(&store, &release, plan)
        .await
        .expect("replay");
    assert_eq!(
        tracker.states()[0].status.as_str(),
        "tripped",
        "two failing error-rate measurements trip it (trips_after 2), whatever the snapshot says"
    );
}
