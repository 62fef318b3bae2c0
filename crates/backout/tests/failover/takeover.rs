//! A run taken over by the other replica: after a SIGKILL (finished once, every notification
//! once), after a SIGSTOP past the lease (the paused replica's writes are fenced), and after a
//! SIGTERM (the lease handed over at once, nothing requeued).

use std::time::{Duration, Instant};

use backout_store::{Event, RunState, StepState, Store};

use crate::setup::*;
use crate::support::server::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_run_is_finished_by_the_other_once() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    let mut replicas = [setup.replica(&[]), setup.replica(&[])];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[0], &plan(&receiver.url, 10))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    // What was notified so far went out (the kill while sending is the next test's story).
    setup.all_delivered(&logs).await;
    let holder = setup.holder(&run).await;
    let index = index_of(&replicas, &holder);
    let killed_at = Instant::now();
    let killed_ms = now_ms();
    replicas[index].kill_9();
    let logs = || replicas[1 - index].log();

    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    let failover = resumed.at_ms - killed_ms;
    println!(
        "failover (SIGKILL → run_resumed by the other replica): {failover} ms, observed after {:?}",
        killed_at.elapsed()
    );
    assert!(
        failover <= i64::try_from((LEASE_TTL * 4).as_millis()).expect("ms"),
        "took {failover} ms with a {LEASE_TTL:?} lease"
    );
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);
    // The release is watched by the survivor now (its lease moved too).
    let survivor = replicas[1 - index].pid();
    let start = Instant::now();
    loop {
        let leases = setup.store.leases("release:").await.expect("leases");
        if leases.len() == 1 && leases[0].is_held(now_ms()) && pid_in(&leases[0].owner) == survivor
        {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the release's lease never moved to the survivor: {leases:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `first` had finished: never again. `slow` was running and is idempotent: run again.
    // `last` ran once, under the new replica.
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    let steps = setup.store.list_steps(&run).await.expect("steps");
    let attempts: Vec<(String, StepState, u32)> = steps
        .iter()
        .map(|s| (s.step_id.clone(), s.state, s.attempt))
        .collect();
    assert_eq!(
        attempts,
        [
            ("first".to_string(), StepState::Succeeded, 1),
            ("slow".to_string(), StepState::Succeeded, 2),
            ("last".to_string(), StepState::Succeeded, 1),
        ]
    );

    // The release hears how its rollback ended from the replica that finished it, once.
    let events = setup.release_settled(&run, &logs).await;
    let ends: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == "execution_finished")
        .collect();
    assert_eq!(ends.len(), 1, "one execution_finished: {events:#?}");
    assert_eq!(ends[0].payload["run_id"], run.as_str());
    assert_eq!(ends[0].payload["state"], "succeeded");

    // Every notification was delivered, each idempotency key reached the webhook once.
    let delivered = setup.all_delivered(&logs).await;
    let seen = seen_by(&receiver);
    let mut keys: Vec<&str> = seen.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), seen.len(), "a key was sent twice: {seen:#?}");
    assert_eq!(seen.len(), delivered, "{seen:#?}");
    let mut events: Vec<&str> = seen.iter().map(|s| s.event.as_str()).collect();
    events.sort_unstable();
    assert_eq!(
        events,
        ["completed", "rollback_required", "started"],
        "{seen:#?}"
    );
    let verify = backout_store::verify_store(&setup.store, 500)
        .await
        .expect("read");
    assert!(verify.is_ok(), "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_cannot_write_over_the_one_that_took_its_run_over() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    let replicas = [setup.replica(&[]), setup.replica(&[])];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[1], &plan(&receiver.url, 10))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    let holder = setup.holder(&run).await;
    let paused = index_of(&replicas, &holder);
    let stopped_ms = now_ms();
    replicas[paused].signal("-STOP");

    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    println!(
        "failover (SIGSTOP → run_resumed by the other replica): {} ms",
        resumed.at_ms - stopped_ms
    );
    replicas[paused].signal("-CONT");
    // Once awake, the paused replica finds its lease lost (or a write refused) and stops.
    let start = Instant::now();
    while !replicas[paused]
        .log()
        .contains("taken over by another replica")
    {
        assert!(
            start.elapsed() < PATIENCE,
            "the paused replica did not notice it lost the run:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);

    let events = setup
        .store
        .run_events(&run, 0, 10_000)
        .await
        .expect("events");
    // The takeover starts with the steps it requeued (or put in doubt), then `run_resumed`.
    let mut takeover = resumed.seq;
    while events.iter().any(|e| {
        e.seq == takeover - 1 && matches!(e.kind.as_str(), "step_requeued" | "step_in_doubt")
    }) {
        takeover -= 1;
    }
    let before_takeover = takeover - 1;
    // After the takeover, `slow`'s story is the new replica's alone: requeued (it is
    // idempotent) and run once more; nothing of the paused replica's attempt 1.
    assert_eq!(
        step_story(&events, "slow", before_takeover),
        [
            "step_requeued null",
            "step_started 2",
            "step_process 2",
            "step_succeeded 2"
        ],
        "{events:#?}"
    );
    assert_eq!(
        step_story(&events, "last", before_takeover),
        ["step_started 1", "step_process 1", "step_succeeded 1"]
    );
    assert!(step_story(&events, "first", before_takeover).is_empty());
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    // The run was resumed once: the paused replica did not take it back.
    assert_eq!(
        events.iter().filter(|e| e.kind == "run_resumed").count(),
        1,
        "{events:#?}"
    );
    // The release records one end of its rollback, by the replica that finished it, and the
    // paused one did not call it abandoned (which would let a performer execute it again).
    let events = setup.release_settled(&run, &logs).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "execution_finished").count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"execution_abandoned"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_by_sigterm_hands_its_run_over_at_once() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    // A long lease: a takeover well before it expires shows the lease was given up.
    let long = [("BACKOUT_LEASE_TTL", "30s")];
    let replicas = [setup.replica(&long), setup.replica(&long)];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[0], &plan(&receiver.url, 4))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    let holder = setup.holder(&run).await;
    let index = index_of(&replicas, &holder);
    let stopped_ms = now_ms();
    replicas[index].signal("-TERM");
    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    let handover = resumed.at_ms - stopped_ms;
    println!("handover (SIGTERM → run_resumed by the other replica): {handover} ms");
    // Without the lease given up, the takeover would wait for its expiry: 20 to 30 s.
    assert!(
        handover < 20_000,
        "took {handover} ms: the lease was not given up"
    );
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    // The stopping replica drained: `slow`, running at the SIGTERM, finished there and was
    // journaled; then its executor gave the run's lease up, so the takeover did not wait for
    // the lease to expire and had nothing to requeue or put in doubt.
    let log = replicas[index].log();
    assert!(
        log.contains("draining") && log.contains("was handed over unfinished"),
        "{log}"
    );
    let events = setup
        .store
        .run_events(&run, 0, 10_000)
        .await
        .expect("events");
    assert_eq!(
        step_story(&events, "slow", 0),
        ["step_started 1", "step_process 1", "step_succeeded 1"],
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind.as_str(), "step_requeued" | "step_in_doubt")),
        "{events:#?}"
    );
}
