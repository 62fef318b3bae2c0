//! A verdict's deliveries: routed by the plan, retried with backoff on 5xx, given up at once on a
//! 4xx or a variable that is not set.

use std::sync::Arc;

use backout_core::env::Resolver;
use backout_core::notify::event_id;
use backout_core::release;
use backout_store::{AttemptOutcome, DeliveryKind, DeliveryState};
use backout_testkit::{Answer, HttpSink, install_crypto};
use serde_json::Value;

use crate::fixture::{Fixture, T, TestClock, deliveries_of, rollback_required};

#[tokio::test]
async fn a_verdict_is_routed_retried_with_backoff_and_delivered_once_per_key() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = HttpSink::answering(Answer::status(200))
        .first([Answer::status(503), Answer::status(503)])
        .start();
    let release = fixture.start_release().await;
    let verdict = rollback_required(&fixture, &release).await;

    // Routing: the plan's `notify.rollback_required: [ops, page]`, committed with the verdict.
    let queued = deliveries_of(fixture.store.as_ref(), &release.id).await;
    let routed: Vec<(&str, DeliveryKind, &str, u64)> = queued
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.kind,
                d.notify_event.as_str(),
                d.event_seq,
            )
        })
        .collect();
    assert_eq!(
        routed,
        [
            (
                "ops",
                DeliveryKind::Webhook,
                "rollback_required",
                verdict.seq
            ),
            (
                "page",
                DeliveryKind::Command,
                "rollback_required",
                verdict.seq
            ),
        ]
    );

    let clock = TestClock::at(T + 2_000);
    let dispatcher =
        fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |_| {});
    let first = dispatcher.dispatch_due().await.expect("round 1");
    assert_eq!(first.len(), 2, "{first:#?}");
    let (ops, page) = (&first[0], &first[1]);
    assert_eq!(ops.state, DeliveryState::Pending);
    assert_eq!(ops.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        ops.next_attempt_at_ms,
        Some(T + 3_000),
        "1 s after the first failure"
    );
    assert_eq!(page.state, DeliveryState::Delivered, "{page:#?}");

    // Nothing is sent before its time; then 2 s after the second failure; then delivered.
    clock.set(T + 2_999);
    assert!(dispatcher.dispatch_due().await.expect("early").is_empty());
    clock.set(T + 3_000);
    let second = dispatcher.dispatch_due().await.expect("round 2");
    assert_eq!(second[0].next_attempt_at_ms, Some(T + 5_000));
    clock.set(T + 4_999);
    assert!(dispatcher.dispatch_due().await.expect("early").is_empty());
    clock.set(T + 5_000);
    let third = dispatcher.dispatch_due().await.expect("round 3");
    assert_eq!(third[0].state, DeliveryState::Delivered);
    clock.set(T + 60_000);
    assert!(dispatcher.dispatch_due().await.expect("done").is_empty());

    let ops = fixture.store.get_delivery(ops.id).await.expect("ops");
    let attempts: Vec<(i64, AttemptOutcome, &str)> = ops
        .attempts
        .iter()
        .map(|a| (a.at_ms, a.outcome, a.detail.as_str()))
        .collect();
    assert_eq!(
        attempts,
        [
            (T + 2_000, AttemptOutcome::Retry, "HTTP 503"),
            (T + 3_000, AttemptOutcome::Retry, "HTTP 503"),
            (T + 5_000, AttemptOutcome::Delivered, "HTTP 200"),
        ]
    );
    assert_eq!(ops.delivered_at_ms, Some(T + 5_000));
    assert!(ops.attempts.iter().all(|a| a.by == dispatcher.claimant()));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "three attempts, one delivery");
    let key = event_id(&verdict);
    assert_eq!(key, format!("evt-{}-{}", verdict.seq, &verdict.hash[..12]));
    assert!(
        requests.iter().all(|r| r.key() == key),
        "the same Idempotency-Key every time"
    );
    let body = requests[2].json();
    assert_eq!(body["event"], "rollback_required");
    assert_eq!(body["event_id"], key.as_str());
    assert_eq!(
        body["at"], "2026-11-26T18:04:06Z",
        "the time of the request"
    );
    assert_eq!(body["release"]["id"], release.id.as_str());
    assert_eq!(body["release"]["version"], "2.4.0");
    assert_eq!(
        body["release"]["window"]["after_close"],
        "ship a hotfix instead"
    );
    assert_eq!(body["verdict"]["verdict"], "rollback_required");
    assert_eq!(body["verdict"]["requested"]["by"], "alice");
    assert_eq!(
        body["verdict"]["requested"]["reason"],
        "customers report failed payments"
    );
    assert_eq!(body["deciders"], serde_json::json!(["alice", "bob"]));
    assert_eq!(
        body["summary"],
        "checkout 2.4.0 in production: rollback required (requested by alice)"
    );

    // The command channel ran in the plan's directory with the notice on standard input.
    let paged: Value = serde_json::from_slice(
        &std::fs::read(fixture.dir.path().join("paged.json")).expect("the command wrote"),
    )
    .expect("JSON");
    assert_eq!(paged["event_id"], key.as_str());
}

#[tokio::test]
async fn a_client_error_or_a_missing_variable_gives_up_at_once() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = HttpSink::answering(Answer::status(200))
        .first([Answer::status(400)])
        .start();
    let release = fixture.start_release().await;
    rollback_required(&fixture, &release).await;
    // The window closes on time: `window_closed` goes to a channel whose URL is not set.
    let closes = release.closes_at_ms.expect("a window");
    release::check(
        fixture.store.as_ref(),
        &release.id,
        Arc::new(Resolver::from_env()),
        "backout:check",
        closes,
        false,
    )
    .await
    .expect("check at the close");

    let clock = TestClock::at(closes);
    let dispatcher =
        fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |_| {});
    let settled = dispatcher.dispatch_due().await.expect("round");
    let by_channel = |name: &str| {
        settled
            .iter()
            .find(|d| d.channel == name)
            .unwrap_or_else(|| panic!("a delivery to {name}: {settled:#?}"))
    };
    let ops = by_channel("ops");
    assert_eq!(ops.state, DeliveryState::Failed);
    assert_eq!(ops.attempts.len(), 1);
    assert_eq!(ops.attempts[0].outcome, AttemptOutcome::GaveUp);
    assert!(
        ops.last_error.as_deref().unwrap().starts_with("HTTP 400"),
        "{ops:#?}"
    );
    let broken = by_channel("broken");
    assert_eq!(broken.notify_event, "window_closed");
    assert_eq!(broken.state, DeliveryState::Failed);
    assert_eq!(
        broken.last_error.as_deref(),
        Some(
            "channel `broken`: environment variable `UNSET_HOOK` is not set (the plan references it as ${UNSET_HOOK})"
        )
    );
    assert_eq!(receiver.requests().len(), 1, "the 400 was not retried");
    clock.set(closes + 24 * 3_600_000);
    assert!(dispatcher.dispatch_due().await.expect("round").is_empty());
}
