//! The watcher against a real SQLite store and real `command` sources: cadence per criterion,
//! batched journaling, other writers' events picked up from the journal, windows closing on
//! time with a notice first, and new releases found while watching all.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backout_core::clock::{Clock, SystemClock};
use backout_core::criteria::Verdict;
use backout_core::env::Resolver;
use backout_core::release::{self, StartRelease, WatchOptions, Watcher};
use backout_sqlite::SqliteStore;
use backout_store::{NewEvent, ReleaseState, Store};

fn plan(dir: &Path, every: &str, window: &str) -> String {
    plan_with(
        dir,
        every,
        window,
        "{ deciders: ops }",
        "{ performers: ops }",
    )
}

fn plan_with(
    dir: &Path,
    every: &str,
    window: &str,
    authorization: &str,
    execution: &str,
) -> String {
    let d = dir.display();
    format!(
        r#"version: 1
release: {{ service: demo, version: "2.0.0", rollback_to: "1.9.0", environment: test }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  rollback_when:
    - {{ id: errors, command: "cat {d}/errors", fails_if: "> 5", every: {every} }}
    - {{ id: slow, command: "true", every: 10m }}
window: {window}
authorization: {authorization}
execution: {execution}
procedure: {{ not_applicable: "t" }}
contingency: {{ not_applicable: "t" }}
workarounds: []
expected_duration: {{ not_applicable: "t" }}
communication: {{ not_applicable: "t" }}
testing: {{ not_applicable: "t" }}
"#
    )
}

async fn store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open_path(&dir.join("backout.db"))
            .await
            .expect("open store"),
    )
}

async fn start(store: &dyn Store, source: &str, at_ms: i64) -> String {
    release::start(
        store,
        &StartRelease {
            source,
            version: None,
            rollback_to: None,
            actor: "alice",
            at_ms,
        },
    )
    .await
    .expect("start")
    .id
}

fn options(all: bool) -> WatchOptions {
    WatchOptions {
        all,
        tail_every: Duration::from_millis(100),
        ..WatchOptions::default()
    }
}

async fn watcher(store: &Arc<dyn Store>, ids: &[String], options: WatchOptions) -> Watcher {
    Watcher::new(
        store.clone(),
        Arc::new(Resolver::from_env()),
        Arc::new(SystemClock),
        options,
        ids,
    )
    .await
    .expect("watcher")
}

async fn kinds(store: &dyn Store, release: &str) -> Vec<String> {
    store
        .release_events(release, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn measurements(store: &dyn Store, release: &str, criterion: &str) -> usize {
    store
        .release_events(release, 0, 10_000)
        .await
        .expect("events")
        .iter()
        .filter(|e| e.kind == "measurement" && e.payload["criterion"] == criterion)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_criterion_is_measured_at_its_own_cadence_across_releases() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "200ms", "{ closes_after: 1h }");
    let now = SystemClock.now_ms();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start(store.as_ref(), &source, now).await);
    }
    let mut watcher = watcher(&store, &ids, options(false)).await;
    assert_eq!(watcher.len(), 3);
    let mut rounds = 0;
    watcher
        .run(tokio::time::sleep(Duration::from_millis(1_100)), |round| {
            rounds += 1;
            assert_eq!(round.verdict(), Verdict::Healthy);
            ControlFlow::Continue(())
        })
        .await
        .expect("run");
    for id in &ids {
        let errors = measurements(store.as_ref(), id, "errors").await;
        assert!(
            (5..=7).contains(&errors),
            "every 200ms for 1.1s gives about 6 measurements, got {errors}"
        );
        assert_eq!(
            measurements(store.as_ref(), id, "slow").await,
            1,
            "`every: 10m` is measured once"
        );
    }
    assert!(rounds >= 15, "a round per release per batch: {rounds}");
    let verdicts = kinds(store.as_ref(), &ids[0])
        .await
        .iter()
        .filter(|k| *k == "verdict")
        .count();
    assert_eq!(verdicts, 1, "an unchanged verdict is journaled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_journaled_by_another_process_changes_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "1h", "{ closes_after: 1h }");
    let id = start(store.as_ref(), &source, SystemClock.now_ms()).await;
    let mut watcher = watcher(&store, std::slice::from_ref(&id), options(false)).await;
    let other = store.clone();
    let target = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        release::request(
            other.as_ref(),
            &target,
            "emails are empty",
            "bob",
            SystemClock.now_ms(),
        )
        .await
        .expect("request");
    });
    let started = std::time::Instant::now();
    let mut last = None;
    watcher
        .run(tokio::time::sleep(Duration::from_secs(10)), |round| {
            last = Some(round.verdict());
            if round.verdict() == Verdict::Healthy {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .await
        .expect("run");
    assert_eq!(last, Some(Verdict::RollbackRequired));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "seen at the next tail, not at the next measurement: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_gives_notice_then_closes_on_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "1h", "{ closes_after: 4h }");
    // Deployed 4h minus 1.5s ago: inside the 15-minute notice, closing in 1.5s.
    let opened = SystemClock.now_ms() - 4 * 3_600_000 + 1_500;
    let id = start(store.as_ref(), &source, opened).await;
    let mut watcher = watcher(&store, std::slice::from_ref(&id), options(false)).await;
    let mut verdicts = Vec::new();
    watcher
        .run(tokio::time::sleep(Duration::from_secs(10)), |round| {
            if round.verdict_changed {
                verdicts.push(round.verdict());
            }
            ControlFlow::Continue(())
        })
        .await
        .expect("the watch of one release ends when its window closed");
    assert_eq!(verdicts, vec![Verdict::Healthy, Verdict::Closed]);
    let kinds = kinds(store.as_ref(), &id).await;
    let closing = kinds.iter().position(|k| k == "window_closing");
    let closed = kinds.iter().position(|k| k == "window_closed");
    assert!(
        matches!((closing, closed), (Some(a), Some(b)) if a < b),
        "a notice, then the close: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "window_closing").count(), 1);
    let release = store.get_release(&id).await.expect("release");
    assert_eq!(release.state, ReleaseState::Closed);
    assert_eq!(
        release.close_reason.as_deref(),
        Some("closed on time (window.closes_after)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_all_picks_up_releases_that_start_later_and_trips_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(
        dir.path(),
        "100ms",
        "{ not_applicable: \"always possible\" }",
    );
    let first = start(store.as_ref(), &source, SystemClock.now_ms()).await;
    let mut watcher = watcher(&store, &[], options(true)).await;
    assert_eq!(watcher.len(), 1, "the open release is picked up");
    let other = store.clone();
    let later_source = source.clone();
    let errors = dir.path().join("errors");
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let id = start(other.as_ref(), &later_source, SystemClock.now_ms()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(errors, "9\n").expect("write");
        id
    });
    let mut tripped = std::collections::BTreeSet::new();
    watcher
        .run(tokio::time::sleep(Duration::from_secs(10)), |round| {
            if round.verdict() == Verdict::RollbackRequired {
                tripped.insert(round.tracker.release_id.clone());
            }
            if tripped.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .expect("run");
    let second = later.await.expect("join");
    assert_eq!(watcher.len(), 2);
    assert_eq!(tripped, [first, second].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_is_closed_by_a_checkpoint_from_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "100ms", "{ closes_after: 1h }");
    let id = start(store.as_ref(), &source, SystemClock.now_ms()).await;
    let mut watcher = watcher(&store, std::slice::from_ref(&id), options(false)).await;
    let other = store.clone();
    let target = id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other
            .close_release(
                &target,
                SystemClock.now_ms(),
                "point of no return",
                &NewEvent::new("window_closed", "deploy-bot", SystemClock.now_ms()),
            )
            .await
            .expect("close");
    });
    let mut last = None;
    watcher
        .run(tokio::time::sleep(Duration::from_secs(10)), |round| {
            last = Some(round.verdict());
            ControlFlow::Continue(())
        })
        .await
        .expect("the watch ends once the window is closed");
    assert_eq!(last, Some(Verdict::Closed));
    let before = measurements(store.as_ref(), &id, "errors").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        measurements(store.as_ref(), &id, "errors").await,
        before,
        "nothing is measured after the close"
    );
}

/// The kinds and actors of a release's decision events, in order.
async fn decision_story(store: &dyn Store, release: &str) -> Vec<(String, String)> {
    store
        .release_events(release, 0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "decision" | "decision_requested" | "escalated"
            )
        })
        .map(|e| {
            let reason = e.payload["reason"].as_str().unwrap_or("").to_string();
            (format!("{} {}", e.kind, reason).trim().to_string(), e.actor)
        })
        .collect()
}

async fn watch_for(store: &Arc<dyn Store>, id: &str, options: WatchOptions, how_long: Duration) {
    let mut watcher = watcher(store, &[id.to_string()], options).await;
    watcher
        .run(tokio::time::sleep(how_long), |_| ControlFlow::Continue(()))
        .await
        .expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_criterion_approves_with_no_person() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "9\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan_with(
        dir.path(),
        "100ms",
        "{ closes_after: 1h }",
        "{ deciders: ops, automatic: [errors] }",
        "{ performers: ops }",
    );
    let id = start(store.as_ref(), &source, SystemClock.now_ms()).await;
    watch_for(&store, &id, options(false), Duration::from_millis(600)).await;
    let story = decision_story(store.as_ref(), &id).await;
    assert_eq!(story.len(), 1, "{story:?}");
    assert_eq!(story[0].1, "backout:automatic");
    assert!(
        story[0]
            .0
            .starts_with("decision authorization.automatic: errors (9 is above 5)"),
        "{story:?}"
    );
    let cleared = release::decide::clear_execution(
        store.as_ref(),
        &id,
        release::decide::AUTOMATIC,
        SystemClock.now_ms(),
    )
    .await;
    assert!(
        cleared.is_ok(),
        "the watcher may start it: {:?}",
        cleared.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deciders_are_asked_once_and_the_fallback_after_its_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "9\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan_with(
        dir.path(),
        "100ms",
        "{ closes_after: 1h }",
        "{ deciders: ops, fallback: { after: 400ms, deciders: ops } }",
        "{ performers: ops, start_within: 300ms }",
    );
    let id = start(store.as_ref(), &source, SystemClock.now_ms()).await;
    watch_for(&store, &id, options(false), Duration::from_millis(900)).await;
    let story = decision_story(store.as_ref(), &id).await;
    assert_eq!(
        story,
        vec![
            ("decision_requested".to_string(), "backout".to_string()),
            ("escalated no_decision".to_string(), "backout".to_string()),
        ],
        "asked once, escalated once at fallback.after"
    );
    release::decide::decide(
        store.as_ref(),
        &release::decide::Decide {
            release_id: &id,
            actor: "a@example.com",
            choice: release::decide::Choice::Approve,
            reason: "errors",
            override_window: false,
            now_ms: SystemClock.now_ms(),
        },
    )
    .await
    .expect("approve");
    watch_for(&store, &id, options(false), Duration::from_millis(700)).await;
    let story = decision_story(store.as_ref(), &id).await;
    assert_eq!(
        story.last(),
        Some(&("escalated start_within".to_string(), "backout".to_string())),
        "approved but not started within 300ms: {story:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_the_concurrency_waits_its_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "1h", "{ closes_after: 1h }");
    let now = SystemClock.now_ms();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(start(store.as_ref(), &source, now).await);
    }
    let options = WatchOptions {
        concurrency: 1,
        ..options(false)
    };
    let mut watcher = watcher(&store, &ids, options).await;
    watcher
        .run(tokio::time::sleep(Duration::from_millis(1_500)), |_| {
            ControlFlow::Continue(())
        })
        .await
        .expect("run");
    for id in &ids {
        assert_eq!(measurements(store.as_ref(), id, "errors").await, 1);
        assert_eq!(measurements(store.as_ref(), id, "slow").await, 1);
    }
}

/// Shared watching: when another replica takes one release's lease over, the watcher's next
/// write of that release is refused by its fencing token; it stops watching that release and
/// goes on with the others, without an error and without a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_release_s_lease_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let store = store(dir.path()).await;
    let source = plan(dir.path(), "100ms", "{ closes_after: 1h }");
    let now = SystemClock.now_ms();
    let lost = start(store.as_ref(), &source, now).await;
    let kept = start(store.as_ref(), &source, now).await;
    // A long lease: no heartbeat during the test, so the refused write is what notices.
    let ttl = Duration::from_secs(60);
    let mut watcher = watcher(
        &store,
        &[],
        WatchOptions {
            lease: Some(backout_core::executor::LeaseSettings {
                owner: "here".into(),
                ttl,
            }),
            ..options(true)
        },
    )
    .await;
    assert_eq!(watcher.len(), 2);
    let thief = store.clone();
    let name = format!("release:{lost}");
    let stolen = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Another replica, whose clock says the lease expired.
        let later = SystemClock.now_ms() + 2 * 60_000;
        let lease = thief
            .acquire_lease(&name, "there", later, 60_000)
            .await
            .expect("acquire")
            .expect("an expired lease is taken over");
        (
            lease,
            thief.last_event().await.expect("last").map_or(0, |e| e.seq),
        )
    });
    watcher
        .run(tokio::time::sleep(Duration::from_millis(1_500)), |_| {
            ControlFlow::Continue(())
        })
        .await
        .expect("the watcher goes on");
    let (lease, stolen_at) = stolen.await.expect("stolen");
    assert_eq!(lease.owner, "there");
    let after = |events: Vec<backout_store::Event>| {
        events
            .into_iter()
            .filter(|e| e.seq > stolen_at && e.kind == "measurement")
            .count()
    };
    let lost_after = after(
        store
            .release_events(&lost, 0, 10_000)
            .await
            .expect("events"),
    );
    let kept_after = after(
        store
            .release_events(&kept, 0, 10_000)
            .await
            .expect("events"),
    );
    assert_eq!(
        lost_after, 0,
        "nothing written for the release another replica owns"
    );
    assert!(
        kept_after >= 5,
        "the other release is still measured every 100ms: {kept_after} in about 1s"
    );
}
