//! At least once, never lost: a dispatcher that dies between the commit and the send leaves its
//! claim to expire and another sends with the same key; two dispatchers on one file share the
//! work without sending anything twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use backout_core::clock::Clock;
use backout_core::notify::{Dispatcher, event_id};
use backout_sqlite::SqliteStore;
use backout_store::{Delivery, DeliveryState, NewEvent, Store};
use backout_testkit::{Answer, HttpSink, Request, install_crypto};

use crate::fixture::{Fixture, PLAN, T, TestClock, deliveries_of, rollback_required};

#[tokio::test]
async fn a_crash_between_the_commit_and_the_send_loses_nothing() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = HttpSink::answering(Answer::status(200))
        .first([Answer::hang()])
        .start();
    let release = fixture.start_release().await;
    // The verdict and its deliveries are committed; the process "dies" before any dispatcher
    // ran: only the file is left.
    let verdict = rollback_required(&fixture, &release).await;
    let Fixture { dir, store } = fixture;
    drop(store);
    let fixture = Fixture {
        store: Arc::new(
            SqliteStore::open_path(&dir.path().join("backout.db"))
                .await
                .expect("reopen"),
        ),
        dir,
    };

    // The restarted process's dispatcher claims the webhook and sends it; the receiver never
    // answers, and the process dies again mid-send (its task is aborted, nothing is recorded).
    let clock = TestClock::at(T + 10_000);
    let lease = Duration::from_secs(60);
    let first = fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |o| {
        o.lease = lease;
        o.delivery.timeout = Duration::from_secs(30);
    });
    let crashed = tokio::spawn(async move { first.dispatch_due().await });
    receiver.arrived(1, Duration::from_secs(10)).await;
    crashed.abort();
    assert!(crashed.await.expect_err("aborted").is_cancelled());

    let ops = deliveries_of(fixture.store.as_ref(), &release.id)
        .await
        .into_iter()
        .find(|d| d.channel == "ops")
        .expect("the ops delivery");
    assert_eq!(ops.state, DeliveryState::Pending);
    assert!(
        ops.attempts.is_empty(),
        "the crashed attempt recorded nothing"
    );
    assert_eq!(ops.claimed_until_ms, Some(T + 10_000 + 60_000));

    // Another process on the same file: nothing to do while the dead claim runs, then it
    // delivers, with the same key.
    let other_store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_path(&fixture.db())
            .await
            .expect("open again"),
    );
    let second = fixture.dispatcher(other_store, clock.clone(), &receiver.url, |_| {});
    clock.set(T + 10_000 + 59_999);
    assert!(
        second.dispatch_due().await.expect("round").is_empty(),
        "a live claim keeps others off"
    );
    clock.set(T + 10_000 + 60_000);
    let settled = second.dispatch_due().await.expect("round");
    let ops = settled
        .iter()
        .find(|d| d.channel == "ops")
        .expect("the expired claim was taken over");
    assert_eq!(ops.state, DeliveryState::Delivered);
    assert_eq!(ops.attempts.len(), 1);
    assert_eq!(ops.attempts[0].by, second.claimant());
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        2,
        "at least once: sent again after the crash"
    );
    let key = event_id(&verdict);
    assert_eq!(requests[0].key(), key);
    assert_eq!(
        requests[1].key(),
        key,
        "with the same key, so the receiver drops it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_file_send_each_delivery_once() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = HttpSink::start(Answer {
        delay: Duration::from_millis(50),
        ..Answer::status(200)
    });
    let release = fixture.start_release().await;
    let plan = backout_model::lint(PLAN).plan.expect("lints");
    let events: Vec<NewEvent> = (0..24)
        .map(|i| {
            backout_core::notify::routed(
                &plan,
                NewEvent::new("verdict", "backout:watch", T + i)
                    .release(&release.id)
                    .payload(serde_json::json!({
                        "verdict": "rollback_required",
                        "evidence": { "requested": false, "criteria": [] },
                    })),
            )
        })
        .collect();
    fixture.store.append_events(&events).await.expect("append");

    let clock: Arc<dyn Clock> = TestClock::at(T + 1_000);
    let other: Arc<dyn Store> = Arc::new(
        SqliteStore::open_path(&fixture.db())
            .await
            .expect("second handle"),
    );
    let a = fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |o| {
        o.concurrency = 3;
    });
    let b = fixture.dispatcher(other, clock.clone(), &receiver.url, |o| o.concurrency = 3);
    let drive = |d: Dispatcher| async move {
        let mut sent = Vec::new();
        loop {
            let round = d.dispatch_due().await.expect("round");
            if round.is_empty() {
                return sent;
            }
            sent.extend(round.into_iter().map(|d| d.id));
        }
    };
    let (from_a, from_b) = tokio::join!(tokio::spawn(drive(a)), tokio::spawn(drive(b)));
    let (from_a, from_b) = (from_a.expect("a"), from_b.expect("b"));
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both took a share"
    );
    let all: BTreeSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(
        all.len(),
        from_a.len() + from_b.len(),
        "no delivery sent by both"
    );

    let listed = deliveries_of(fixture.store.as_ref(), &release.id).await;
    let ops: Vec<&Delivery> = listed.iter().filter(|d| d.channel == "ops").collect();
    assert_eq!(ops.len(), 24);
    assert!(
        ops.iter()
            .all(|d| d.state == DeliveryState::Delivered && d.attempts.len() == 1)
    );
    let keys: Vec<String> = receiver.requests().iter().map(Request::key).collect();
    assert_eq!(keys.len(), 24, "one request per delivery");
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        24,
        "one key per event"
    );
}
