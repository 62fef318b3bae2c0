//! Conformance story about the notification outbox: deliveries are committed with their event
//! (all or nothing), become due, are claimed under a lease that expires, record every attempt,
//! and list per release.

use crate::conformance::{T0, assert_not_found, last_seq, new_run};
use crate::delivery::{
    AttemptOutcome, Delivery, DeliveryKind, DeliveryNext, DeliveryState, NewAttempt, NewDelivery,
};
use crate::errors::{Entity, StoreError};
use crate::event::NewEvent;
use crate::release::NewRelease;
use crate::store::Store;

/// A time of its own, so the due times of this story do not mix with other stories' events.
const T: i64 = T0 + 50_000_000;
const LEASE: i64 = 30_000;

fn release(id: &str) -> NewRelease {
    NewRelease {
        id: id.to_owned(),
        plan_hash: "hash-outbox".to_owned(),
        plan_source: "version: 1\n".to_owned(),
        service: "checkout".to_owned(),
        version: "2.4.0".to_owned(),
        rollback_to: "2.3.9".to_owned(),
        environment: "production".to_owned(),
        actor: "alice".to_owned(),
        opened_at_ms: T,
        closes_at_ms: None,
    }
}

fn to(channel: &str, kind: DeliveryKind, event: &str) -> NewDelivery {
    NewDelivery::new(channel, kind, event)
}

fn attempt(by: &str, at_ms: i64, detail: &str) -> NewAttempt {
    NewAttempt {
        at_ms,
        by: by.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Deliveries of `release_id`, oldest first.
async fn of_release(store: &dyn Store, release_id: &str) -> Result<Vec<Delivery>, StoreError> {
    let mut listed = store.list_deliveries(Some(release_id), 1000).await?;
    listed.reverse();
    Ok(listed)
}

fn ids(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.id).collect()
}

/// The outbox: deliveries commit with their event and never without it; the release of a
/// run's event is found from the run; due deliveries are claimed under a lease that keeps
/// other claimants off until it expires; every attempt is recorded, a retry reschedules, a
/// delivery is final, a late attempt of an expired claim neither reschedules nor fails what
/// another claimant now holds.
pub async fn deliveries(store: &dyn Store) -> Result<(), StoreError> {
    let rel = "rel-conf-outbox";
    let started = store
        .create_release(
            &release(rel),
            &NewEvent::new("release_started", "alice", T).deliveries(vec![to(
                "status-page",
                DeliveryKind::Webhook,
                "started",
            )]),
        )
        .await?;
    let verdict = store
        .append_event(
            &NewEvent::new("verdict", "backout:watch", T + 10)
                .release(rel)
                .deliveries(vec![
                    to("ops", DeliveryKind::Slack, "rollback_required"),
                    to("pager", DeliveryKind::Command, "rollback_required"),
                ]),
        )
        .await?;
    let mut run = new_run("run-conf-outbox", T + 20, &["drain"]);
    run.release_id = Some(rel.to_owned());
    let run_started = store
        .create_run(
            &run,
            &NewEvent::new("run_started", "bob", T + 20).deliveries(vec![to(
                "management",
                DeliveryKind::Email,
                "started",
            )]),
        )
        .await?;

    let listed = of_release(store, rel).await?;
    assert_eq!(
        listed.len(),
        4,
        "every delivery is listed with its release: {listed:#?}"
    );
    let [first, slack, pager, email] = [&listed[0], &listed[1], &listed[2], &listed[3]];
    assert!(
        first.id < slack.id && slack.id < pager.id && pager.id < email.id,
        "ids increase in the order deliveries were written"
    );
    assert_eq!(first.event_seq, started.seq);
    assert_eq!(
        (
            first.channel.as_str(),
            first.kind,
            first.notify_event.as_str()
        ),
        ("status-page", DeliveryKind::Webhook, "started")
    );
    assert_eq!(
        (slack.event_seq, pager.event_seq),
        (verdict.seq, verdict.seq)
    );
    assert_eq!(
        (slack.channel.as_str(), slack.kind),
        ("ops", DeliveryKind::Slack)
    );
    assert_eq!(email.event_seq, run_started.seq);
    assert_eq!(email.run_id.as_deref(), Some("run-conf-outbox"));
    assert_eq!(
        email.release_id.as_deref(),
        Some(rel),
        "a run's event is delivered under the run's release"
    );
    for d in &listed {
        assert_eq!(d.state, DeliveryState::Pending);
        assert!(d.attempts.is_empty());
        assert_eq!(d.claimed_by, None);
        assert_eq!(d.last_error, None);
        assert_eq!(d.delivered_at_ms, None);
    }
    assert_eq!(slack.created_at_ms, T + 10, "created at the event's time");
    assert_eq!(slack.next_attempt_at_ms, Some(T + 10), "and due at once");
    assert_eq!(store.get_delivery(slack.id).await?, *slack);

    // All or nothing: a failed write leaves neither its events nor their deliveries.
    let seq_before = last_seq(store).await?;
    let failed = store
        .append_events(&[
            NewEvent::new("verdict", "backout:watch", T + 30)
                .release(rel)
                .deliveries(vec![to("ops", DeliveryKind::Slack, "inconclusive")]),
            NewEvent::new("note", "mallory", T + 30)
                .run("run-conf-missing")
                .deliveries(vec![to("ops", DeliveryKind::Slack, "failed")]),
        ])
        .await;
    assert_not_found(failed, Entity::Run, "run-conf-missing");
    let twice = store
        .append_event(
            &NewEvent::new("verdict", "backout:watch", T + 30)
                .release(rel)
                .deliveries(vec![
                    to("ops", DeliveryKind::Slack, "inconclusive"),
                    to("ops", DeliveryKind::Slack, "inconclusive"),
                ]),
        )
        .await;
    assert!(
        matches!(twice, Err(StoreError::Invalid { .. })),
        "one channel twice for one event is refused: {twice:?}"
    );
    assert_eq!(last_seq(store).await?, seq_before, "nothing was appended");
    assert_eq!(
        ids(&of_release(store, rel).await?),
        ids(&listed),
        "no delivery was left behind"
    );

    // Due: nothing before its time; in order of due time.
    let mine = |ds: Vec<Delivery>| -> Vec<u64> {
        ds.into_iter()
            .filter(|d| d.release_id.as_deref() == Some(rel))
            .map(|d| d.id)
            .collect()
    };
    assert!(mine(store.due_deliveries(T - 1, 1000).await?).is_empty());
    assert_eq!(
        mine(store.due_deliveries(T + 10, 1000).await?),
        [first.id, slack.id, pager.id]
    );

    // Claims: one claimant holds a delivery until its lease expires.
    let claimed = store.claim_deliveries("a", T + 15, LEASE, 1000).await?;
    assert_eq!(mine(claimed.clone()), [first.id, slack.id, pager.id]);
    let held = claimed
        .iter()
        .find(|d| d.id == slack.id)
        .expect("the slack delivery was claimed");
    assert_eq!(held.claimed_by.as_deref(), Some("a"));
    assert_eq!(held.claimed_until_ms, Some(T + 15 + LEASE));
    assert_eq!(
        mine(store.claim_deliveries("b", T + 25, LEASE, 1000).await?),
        [email.id],
        "b gets only what a does not hold"
    );
    assert!(mine(store.due_deliveries(T + 100, 1000).await?).is_empty());
    assert!(mine(store.claim_deliveries("c", T + 100, LEASE, 1000).await?).is_empty());

    // Giving up is final.
    let failed = store
        .record_delivery_attempt(
            pager.id,
            &attempt("a", T + 300, "exit 127: command not found"),
            DeliveryNext::GaveUp,
        )
        .await?;
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.next_attempt_at_ms, None);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("exit 127: command not found")
    );

    // A failed attempt reschedules and lets go of the claim.
    let retried = store
        .record_delivery_attempt(
            slack.id,
            &attempt("a", T + 200, "HTTP 503"),
            DeliveryNext::Retry { at_ms: T + 1_200 },
        )
        .await?;
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.next_attempt_at_ms, Some(T + 1_200));
    assert_eq!((retried.claimed_by, retried.claimed_until_ms), (None, None));
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(retried.attempts.len(), 1);
    assert_eq!(retried.attempts[0].outcome, AttemptOutcome::Retry);
    assert_eq!(retried.attempts[0].by, "a");
    assert_eq!(store.get_delivery(slack.id).await?.attempts.len(), 1);
    assert!(mine(store.claim_deliveries("c", T + 1_199, LEASE, 1000).await?).is_empty());
    let reclaimed = store.claim_deliveries("c", T + 1_200, LEASE, 1000).await?;
    assert_eq!(mine(reclaimed), [slack.id]);

    // c dies holding it. Until its lease ends nobody else sends it; then d may.
    let expires = T + 1_200 + LEASE;
    assert!(
        !mine(
            store
                .claim_deliveries("d", expires - 1, LEASE, 1000)
                .await?
        )
        .contains(&slack.id)
    );
    let taken = store.claim_deliveries("d", expires, LEASE, 1000).await?;
    assert!(
        mine(taken).contains(&slack.id),
        "an expired claim is claimed again"
    );
    // c's late failure is on record but changes nothing d holds.
    let late = store
        .record_delivery_attempt(
            slack.id,
            &attempt("c", expires + 5, "timed out"),
            DeliveryNext::GaveUp,
        )
        .await?;
    assert_eq!(late.state, DeliveryState::Pending);
    assert_eq!(late.claimed_by.as_deref(), Some("d"));
    assert_eq!(late.attempts.len(), 2);
    let delivered = store
        .record_delivery_attempt(
            slack.id,
            &attempt("d", expires + 10, "HTTP 200"),
            DeliveryNext::Delivered,
        )
        .await?;
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(delivered.delivered_at_ms, Some(expires + 10));
    assert_eq!(delivered.next_attempt_at_ms, None);
    assert_eq!(delivered.claimed_by, None);
    let outcomes: Vec<AttemptOutcome> = delivered.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::Retry,
            AttemptOutcome::GaveUp,
            AttemptOutcome::Delivered
        ]
    );
    assert_eq!(store.get_delivery(slack.id).await?, delivered);
    // Delivered is final: a duplicate send is recorded, and changes nothing else.
    let duplicate = store
        .record_delivery_attempt(
            slack.id,
            &attempt("a", expires + 20, "HTTP 500"),
            DeliveryNext::Retry {
                at_ms: expires + 1_000,
            },
        )
        .await?;
    assert_eq!(duplicate.state, DeliveryState::Delivered);
    assert_eq!(duplicate.next_attempt_at_ms, None);
    assert_eq!(duplicate.attempts.len(), 4);

    let later = expires + 10 * LEASE;
    let still_due = mine(store.due_deliveries(later, 1000).await?);
    assert!(!still_due.contains(&pager.id) && !still_due.contains(&slack.id));
    assert!(
        still_due.contains(&first.id) && still_due.contains(&email.id),
        "expired claims make the others due again: {still_due:?}"
    );

    // Listing: newest first, limited, per release or all; unknown ids are NotFound.
    let newest = store.list_deliveries(Some(rel), 2).await?;
    assert_eq!(ids(&newest), [email.id, pager.id]);
    let all = store.list_deliveries(None, 1000).await?;
    assert!(ids(&listed).iter().all(|id| ids(&all).contains(id)));
    assert_not_found(
        store.list_deliveries(Some("rel-conf-nope"), 10).await,
        Entity::Release,
        "rel-conf-nope",
    );
    assert_not_found(
        store.get_delivery(u64::MAX / 2).await,
        Entity::Delivery,
        &(u64::MAX / 2).to_string(),
    );
    assert_not_found(
        store
            .record_delivery_attempt(
                u64::MAX / 2,
                &attempt("a", T, "HTTP 200"),
                DeliveryNext::Delivered,
            )
            .await,
        Entity::Delivery,
        &(u64::MAX / 2).to_string(),
    );
    Ok(())
}
