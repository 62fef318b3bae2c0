//! What every outbox story starts from: the plan, a store in a temporary directory, a clock the
//! test moves, a dispatcher on them, and a release whose rollback was requested.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use backout_core::clock::Clock;
use backout_core::env::Resolver;
use backout_core::notify::{DispatchOptions, Dispatcher};
use backout_core::release::{self, StartRelease};
use backout_core::{Progress, ProgressEvent};
use backout_sqlite::SqliteStore;
use backout_store::{Delivery, Release, Store};

/// 2026-11-26T18:04:05Z.
pub const T: i64 = 1_795_716_245_000;

pub const PLAN: &str = r#"
version: 1
release:
  service: checkout
  version: "2.4.0"
  rollback_to: "2.3.9"
  environment: production
owners:
  deployment_engineer: de@example.com
people:
  deciders: [alice, bob]
  performers: [carol]
criteria:
  rollback_when:
    - id: error-rate
      title: Error rate of /pay
      command: "true"
      every: 1m
window:
  opens: deploy
  closes_after: 4h
  after_close: ship a hotfix instead
authorization:
  deciders: deciders
  quorum: 1
execution:
  performers: performers
  start_within: 5m
procedure:
  steps:
    - id: announce
      title: Tell ops the backout starts
      notify: [ops, mail]
      message: "Rolling checkout back to 2.3.9"
      expected: 1s
    - id: flip
      needs: [announce]
      run: "exit 3"
      expected: 1s
      idempotent: true
contingency:
  not_applicable: "nothing to fall back on"
workarounds:
  not_applicable: "no alternative"
expected_duration: 5s
communication:
  channels:
    ops: { webhook: "${OPS_HOOK}" }
    mail: { email: [oncall@example.com] }
    broken: { webhook: "${UNSET_HOOK}" }
    page: { command: "cat > paged.json" }
  notify:
    rollback_required: [ops, page]
    started: [ops]
    step_failed: [ops]
    failed: [ops, mail]
    window_closed: [broken]
  templates:
    failed: "FAILED {{ run.id }} after {{ run.duration }}"
testing:
  rehearse_in: staging
  max_age: 30d
"#;

/// A clock the test moves.
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A SQLite file in a temporary directory (the plan's directory too: command channels run there).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_path(&dir.path().join("backout.db"))
            .await
            .expect("open store");
        Fixture {
            dir,
            store: Arc::new(store),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("backout.db")
    }

    pub async fn start_release(&self) -> Release {
        release::start(
            self.store.as_ref(),
            &StartRelease {
                source: PLAN,
                version: None,
                rollback_to: None,
                actor: "deploy-bot",
                at_ms: T,
            },
        )
        .await
        .expect("the release starts")
    }

    pub fn dispatcher(
        &self,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hook: &str,
        tune: impl FnOnce(&mut DispatchOptions),
    ) -> Dispatcher {
        let resolver = Resolver::from_vars([("OPS_HOOK".to_string(), hook.to_string())]);
        let hash = backout_model::lint(PLAN).hash.expect("hashed");
        let mut options = DispatchOptions::default().plan_dir(hash, self.dir.path());
        options.delivery.timeout = Duration::from_secs(5);
        tune(&mut options);
        Dispatcher::new(store, clock, Arc::new(resolver), options).expect("a valid configuration")
    }
}

/// A person requests a rollback (the request announces `rollback_required`, with its
/// deliveries) and `check` journals the verdict (not announced again); returns the event that
/// carries the deliveries.
pub async fn rollback_required(fixture: &Fixture, release: &Release) -> backout_store::Event {
    release::request(
        fixture.store.as_ref(),
        &release.id,
        "customers report failed payments",
        "alice",
        T + 1_000,
    )
    .await
    .expect("the request is journaled");
    let report = release::check(
        fixture.store.as_ref(),
        &release.id,
        Arc::new(Resolver::from_env()),
        "backout:check",
        T + 2_000,
        false,
    )
    .await
    .expect("check");
    assert_eq!(
        serde_json::to_value(report.verdict).unwrap(),
        "rollback_required"
    );
    let events = fixture
        .store
        .release_events(&release.id, 0, 100)
        .await
        .expect("events");
    assert!(
        events.iter().any(|e| e.kind == "verdict"),
        "the verdict is journaled"
    );
    events
        .into_iter()
        .rfind(|e| e.kind == "rollback_requested")
        .expect("the request event")
}

pub async fn deliveries_of(store: &dyn Store, release_id: &str) -> Vec<Delivery> {
    let mut listed = store
        .list_deliveries(Some(release_id), 100)
        .await
        .expect("list");
    listed.reverse();
    listed
}

/// Progress nobody reads: the tests look at the store.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: &ProgressEvent) {}
}
