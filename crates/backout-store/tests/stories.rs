//! The store story suite, run against both backends (atuin's `db_story.rs` style): every
//! conformance story on a fresh store, all of them on one, tampering with the journal behind
//! the store's back, and the stories the SQL backends share (reopening keeps everything, a
//! failed append rolls back its record change, the journal's append-only guard). What differs
//! per backend (opening, raw SQL behind the store, its guard and trigger syntax) is the small
//! [`Backend`] trait; each backend's own file (`backout-sqlite/tests/sqlite_store.rs`,
//! `backout-postgres/tests/postgres_store.rs`) keeps only what that backend alone has.
//! PostgreSQL stories need the server of `backout_postgres::testing` (127.0.0.1:5432 here).

use std::path::PathBuf;
use std::sync::Arc;

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_sqlite::SqliteStore;
use backout_store::conformance::{self, Tampering};
use backout_store::{
    NewEvent, RunState, RunUpdate, StepRecord, StepState, Store, StoreError, verify_store,
};
use sqlx::{Connection, Executor};

mod support;

use support::{T0, run};

/// What a story needs of a backend beyond the [`Store`] trait.
trait Backend: Sized {
    type Store: Store + Clone + 'static;

    /// A store on a database of its own.
    async fn fresh() -> Self;

    fn store(&self) -> &Self::Store;

    /// Closes the store and opens the same database again.
    async fn reopen(&self) -> Self::Store;

    /// Runs `sql` behind the store's back, as someone with the file or the owner's rights;
    /// the error's text when it fails.
    async fn raw(&self, sql: &str) -> Result<(), String>;

    /// Statements that make every insert of an event of kind `boom` fail.
    const FAIL_BOOM: &'static [&'static str];

    /// Statements around a tampering that turn the append-only guard off and on again.
    const GUARD_OFF: &'static [&'static str];
    const GUARD_ON: &'static [&'static str];

    /// Statements the append-only guard refuses.
    const GUARDED: &'static [&'static str];

    /// The store's own check of the database after a story, where it has one.
    async fn check(&self) {}
}

/// A SQLite file in a directory of its own.
struct Sqlite {
    store: SqliteStore,
    path: PathBuf,
    // Kept so the directory outlives the store.
    _dir: tempfile::TempDir,
}

impl Backend for Sqlite {
    type Store = SqliteStore;

    async fn fresh() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("backout.db");
        let store = SqliteStore::open_path(&path).await.expect("open store");
        Sqlite {
            store,
            path,
            _dir: dir,
        }
    }

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn reopen(&self) -> SqliteStore {
        self.store.close().await;
        SqliteStore::open_path(&self.path).await.expect("reopen")
    }

    async fn raw(&self, sql: &str) -> Result<(), String> {
        let url = format!("sqlite://{}", self.path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("raw connection");
        let done = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
        conn.close().await.expect("close raw connection");
        done.map(drop).map_err(|error| error.to_string())
    }

    const FAIL_BOOM: &'static [&'static str] = &[
        "CREATE TRIGGER fail_boom BEFORE INSERT ON events WHEN NEW.kind = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    ];
    // An attacker with the file removes the append-only guards.
    const GUARD_OFF: &'static [&'static str] = &[
        "DROP TRIGGER IF EXISTS events_are_append_only_update",
        "DROP TRIGGER IF EXISTS events_are_append_only_delete",
    ];
    const GUARD_ON: &'static [&'static str] = &[];
    const GUARDED: &'static [&'static str] =
        &["UPDATE events SET actor = 'mallory'", "DELETE FROM events"];

    async fn check(&self) {
        self.store.integrity_check().await.expect("integrity check");
    }
}

/// A PostgreSQL database of its own. The store is declared first so it is dropped (its pool
/// closed) before the database.
struct Postgres {
    store: PostgresStore,
    db: TestDatabase,
}

impl Backend for Postgres {
    type Store = PostgresStore;

    async fn fresh() -> Self {
        let db = TestDatabase::create().await;
        let store = PostgresStore::open(db.url())
            .await
            .unwrap_or_else(|error| panic!("open {}: {error:?}", db.url()));
        Postgres { store, db }
    }

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn reopen(&self) -> PostgresStore {
        self.store.close().await;
        PostgresStore::open(self.db.url()).await.expect("reopen")
    }

    async fn raw(&self, sql: &str) -> Result<(), String> {
        let mut conn = self.db.raw().await;
        let done = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
        conn.close().await.expect("close raw connection");
        done.map(drop).map_err(|error| error.to_string())
    }

    const FAIL_BOOM: &'static [&'static str] = &[
        "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected failure'; END; $$",
        "CREATE TRIGGER fail_boom BEFORE INSERT ON events FOR EACH ROW \
         WHEN (NEW.kind = 'boom') EXECUTE FUNCTION fail_boom()",
    ];
    // Someone with the owner's rights turns the append-only guard off.
    const GUARD_OFF: &'static [&'static str] =
        &["ALTER TABLE events DISABLE TRIGGER events_are_append_only"];
    const GUARD_ON: &'static [&'static str] =
        &["ALTER TABLE events ENABLE TRIGGER events_are_append_only"];
    const GUARDED: &'static [&'static str] = &[
        "UPDATE events SET actor = 'mallory'",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
    ];
}

async fn raw_all<B: Backend>(backend: &B, statements: &[&str]) {
    for statement in statements {
        backend
            .raw(statement)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
}

async fn leases<B: Backend>() {
    let fresh = B::fresh().await;
    conformance::leases(fresh.store()).await.unwrap();
    conformance::fenced_writes(fresh.store()).await.unwrap();
    conformance::concurrent_lease_takers(Arc::new(fresh.store().clone()))
        .await
        .unwrap();
}

async fn concurrent_appends<B: Backend>() {
    let fresh = B::fresh().await;
    conformance::concurrent_appends(Arc::new(fresh.store().clone()))
        .await
        .unwrap();
}

async fn all_stories_on_one_store<B: Backend>() {
    let fresh = B::fresh().await;
    conformance::run_all(Arc::new(fresh.store().clone()))
        .await
        .unwrap();
    fresh.check().await;
}

async fn tampering_is_detected<B: Backend>() {
    let fresh = B::fresh().await;
    let backend = &fresh;
    conformance::tampering_is_detected(fresh.store(), async |tampering| {
        raw_all(backend, B::GUARD_OFF).await;
        let statement = match tampering {
            Tampering::EditPayload { seq } => {
                format!("UPDATE events SET payload = '{{\"tampered\":true}}' WHERE seq = {seq}")
            }
            Tampering::Delete { seq } => format!("DELETE FROM events WHERE seq = {seq}"),
        };
        raw_all(backend, &[&statement]).await;
        raw_all(backend, B::GUARD_ON).await;
    })
    .await
    .unwrap();
}

async fn reopening_keeps_everything<B: Backend>() {
    let fresh = B::fresh().await;
    let store = fresh.store();
    conformance::run_updates(store).await.unwrap();
    let runs = store.list_runs(100).await.unwrap();
    let events = store.events(0, u32::MAX).await.unwrap();
    let steps = store.list_steps("conf-upd").await.unwrap();

    let reopened = fresh.reopen().await;
    assert_eq!(reopened.list_runs(100).await.unwrap(), runs);
    assert_eq!(reopened.events(0, u32::MAX).await.unwrap(), events);
    assert_eq!(reopened.list_steps("conf-upd").await.unwrap(), steps);
    // The chain continues where it stopped.
    let next = reopened
        .append_event(&NewEvent::new("note", "alice", T0))
        .await
        .unwrap();
    assert_eq!(next.seq, events.len() as u64 + 1);
    assert_eq!(next.prev_hash, events.last().unwrap().hash);
    assert!(verify_store(&reopened, 100).await.unwrap().is_ok());
}

async fn events_cannot_be_changed_through_sql_by_accident<B: Backend>() {
    let fresh = B::fresh().await;
    fresh
        .store()
        .append_event(&NewEvent::new("note", "alice", T0))
        .await
        .unwrap();
    for statement in B::GUARDED {
        let error = fresh.raw(statement).await.expect_err(statement);
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(fresh.store().events(0, 10).await.unwrap().len(), 1);
}

/// The event of a write fails inside its transaction, after the record change of the same
/// transaction was written: neither stays, and the chain continues without a gap.
async fn a_failed_event_append_rolls_back_the_record_change<B: Backend>() {
    let fresh = B::fresh().await;
    let store = fresh.store();
    store
        .create_run(
            &run("run-1", &["a"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .unwrap();
    raw_all(&fresh, B::FAIL_BOOM).await;
    let head = store.last_event().await.unwrap();
    let run_before = store.get_run("run-1").await.unwrap();
    let steps_before = store.list_steps("run-1").await.unwrap();

    let step = StepRecord {
        state: StepState::Succeeded,
        attempt: 1,
        ..StepRecord::pending("run-1", "a", T0 + 1)
    };
    let error = store
        .record_step(&step, &NewEvent::new("boom", "executor", T0 + 1))
        .await
        .expect_err("injected failure");
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    assert_eq!(store.list_steps("run-1").await.unwrap(), steps_before);

    let update = RunUpdate {
        run_id: "run-1".to_owned(),
        state: RunState::Succeeded,
        executor: None,
        at_ms: T0 + 2,
    };
    store
        .update_run(&update, &NewEvent::new("boom", "executor", T0 + 2))
        .await
        .expect_err("injected failure");
    assert_eq!(store.get_run("run-1").await.unwrap(), run_before);

    store
        .create_run(
            &run("run-2", &["a", "b"]),
            &NewEvent::new("boom", "alice", T0),
        )
        .await
        .expect_err("injected failure");
    assert!(matches!(
        store.get_run("run-2").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.last_event().await.unwrap(), head, "no event appended");

    // The write lock was released with the failed transactions.
    let next = store
        .record_step(&step, &NewEvent::new("step_succeeded", "executor", T0 + 3))
        .await
        .unwrap();
    assert_eq!(next.seq, head.map_or(0, |e| e.seq) + 1);
    fresh.check().await;
}

/// One test per story and backend, so a failure names both.
macro_rules! stories {
    ($backend:ident, $B:ty) => {
        mod $backend {
            use super::*;

            /// A conformance story on a fresh store.
            macro_rules! story {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let fresh = <$B>::fresh().await;
                        conformance::$name(fresh.store()).await.unwrap();
                        fresh.check().await;
                    }
                };
            }

            story!(runs_round_trip);
            story!(run_updates);
            story!(runs_newest_first);
            story!(steps_round_trip);
            story!(step_batches);
            // `watcher_reads` needs earlier events (it reads from `seq - 10`): in `run_all`.
            story!(releases);
            story!(deliveries);
            story!(counts);
            story!(evidence_story);
            story!(tokens);
            story!(events_are_ordered_and_gap_free);
            story!(chain_verifies);
            story!(failed_writes_append_nothing);
            story!(missing_records_are_not_found);

            #[tokio::test(flavor = "multi_thread")]
            async fn leases() {
                super::leases::<$B>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_appends() {
                super::concurrent_appends::<$B>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn all_stories_on_one_store() {
                super::all_stories_on_one_store::<$B>().await;
            }

            #[tokio::test]
            async fn tampering_is_detected() {
                super::tampering_is_detected::<$B>().await;
            }

            #[tokio::test]
            async fn reopening_keeps_everything() {
                super::reopening_keeps_everything::<$B>().await;
            }

            #[tokio::test]
            async fn events_cannot_be_changed_through_sql_by_accident() {
                super::events_cannot_be_changed_through_sql_by_accident::<$B>().await;
            }

            #[tokio::test]
            async fn a_failed_event_append_rolls_back_the_record_change() {
                super::a_failed_event_append_rolls_back_the_record_change::<$B>().await;
            }
        }
    };
}

stories!(sqlite, Sqlite);
stories!(postgres, Postgres);
