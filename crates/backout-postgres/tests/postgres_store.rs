//! What only the PostgreSQL store has, against the real server (127.0.0.1:5432 here, see
//! `backout_postgres::testing`): opening errors, concurrent opening and migration, several
//! handles appending at once, the journal lock, and captured output PostgreSQL's TEXT could not
//! hold. The story suite both backends share (every conformance story, reopening, rollback of
//! half-done writes, append-only guards) is `backout-store/tests/stories.rs`.

use std::sync::Arc;

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_store::{
    NewEvent, StepRecord, StepState, Store, StoreError, verify_chain, verify_store,
};
use sqlx::Connection;

#[path = "../../backout-store/tests/support/mod.rs"]
mod support;

use support::{T0, run};

/// A fresh database and a store opened on it. The store is declared first so it is dropped
/// (its pool closed) before the database.
struct Fresh {
    store: PostgresStore,
    db: TestDatabase,
}

async fn fresh() -> Fresh {
    let db = TestDatabase::create().await;
    let store = PostgresStore::open(db.url())
        .await
        .unwrap_or_else(|error| panic!("open {}: {}", db.url(), chain(&error)));
    Fresh { store, db }
}

/// An error with its causes, as the CLI prints it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Concurrency across handles, as several processes (or replicas) on one database.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handles_appending_at_once_keep_one_gap_free_chain() {
    const HANDLES: usize = 3;
    const TASKS: usize = 12;
    const WRITES: i64 = 25;
    let fresh = fresh().await;
    fresh
        .store
        .create_run(
            &run("run-shared", &["a"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .unwrap();
    let mut handles: Vec<Arc<dyn Store>> = vec![Arc::new(fresh.store.clone())];
    for _ in 1..HANDLES {
        handles.push(Arc::new(PostgresStore::open(fresh.db.url()).await.unwrap()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, store) in handles.iter().cycle().take(TASKS).enumerate() {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            for n in 0..WRITES {
                let at = T0 + n;
                match n % 3 {
                    0 => {
                        store
                            .append_event(
                                &NewEvent::new("note", format!("writer-{index}"), at)
                                    .run("run-shared"),
                            )
                            .await
                            .unwrap();
                    }
                    1 => {
                        let batch: Vec<NewEvent> = (0..3)
                            .map(|k| {
                                NewEvent::new("measured", format!("writer-{index}"), at)
                                    .payload(serde_json::json!({ "k": k }))
                            })
                            .collect();
                        let events = store.append_events(&batch).await.unwrap();
                        assert!(
                            events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
                            "a batch is contiguous"
                        );
                    }
                    _ => {
                        let record = StepRecord {
                            state: StepState::Running,
                            attempt: u32::try_from(n).unwrap(),
                            ..StepRecord::pending("run-shared", "a", at)
                        };
                        store
                            .record_step(
                                &record,
                                &NewEvent::new("step_attempt", format!("writer-{index}"), at),
                            )
                            .await
                            .unwrap();
                    }
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    let events = fresh.store.events(0, u32::MAX).await.unwrap();
    // Per task: 9 single notes, 8 batches of 3, 8 step writes (n = 0..25).
    let per_task = (0..WRITES)
        .map(|n| if n % 3 == 1 { 3 } else { 1 })
        .sum::<i64>();
    assert_eq!(events.len() as i64, 1 + TASKS as i64 * per_task);
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.seq, index as u64 + 1, "seq is gap-free");
    }
    let summary = verify_chain(&events).expect("one valid chain across handles");
    assert_eq!(summary.checked, events.len() as u64);
    assert!(verify_store(&fresh.store, 50).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_new_database_from_many_handles_at_once_migrates_it_once() {
    let db = TestDatabase::create().await;
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url().to_owned();
        opening.spawn(async move { PostgresStore::open(&url).await });
    }
    let mut stores = Vec::new();
    while let Some(joined) = opening.join_next().await {
        stores.push(
            joined
                .unwrap()
                .unwrap_or_else(|e| panic!("open: {}", chain(&e))),
        );
    }
    let mut conn = db.raw().await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    // Every migration of the crate, each applied once.
    let expected: Vec<(i64, bool)> = sqlx::migrate!("./migrations")
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, true))
        .collect();
    assert!(expected.len() >= 3, "{expected:?}");
    assert_eq!(applied, expected);
    for store in &stores {
        assert!(store.list_runs(1).await.unwrap().is_empty());
        store.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Opening: clear errors, and a location without the password.

#[tokio::test]
async fn location_has_no_password() {
    let fresh = fresh().await;
    let url = fresh
        .db
        .url()
        .replacen("postgres@", "postgres:not-needed-with-trust@", 1);
    assert!(url.contains("not-needed"), "{url}");
    let store = PostgresStore::open(&url).await.unwrap();
    assert_eq!(
        store.location(),
        format!("postgres://postgres@127.0.0.1:5432/{}", fresh.db.name())
    );
    assert!(!format!("{store:?}").contains("not-needed"));
}

#[tokio::test]
async fn an_unreachable_server_says_how_to_start_one() {
    // Port 1 on loopback: nothing listens there.
    let error = PostgresStore::open("postgres://postgres:secret@127.0.0.1:1/backout")
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let text = chain(&error);
    assert!(
        text.starts_with("cannot open database `postgres://postgres@127.0.0.1:1/backout`"),
        "{text}"
    );
    assert!(
        text.contains("cannot reach a PostgreSQL server at 127.0.0.1:1"),
        "{text}"
    );
    assert!(text.contains("pg_ctlcluster"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn a_missing_database_says_how_to_create_it() {
    let db = TestDatabase::create().await;
    let url = format!("{}_missing", db.url());
    let error = PostgresStore::open(&url)
        .await
        .expect_err("database does not exist");
    let text = chain(&error);
    assert!(
        text.contains(&format!(
            "database `{}_missing` does not exist on the PostgreSQL server at 127.0.0.1:5432",
            db.name()
        )),
        "{text}"
    );
    assert!(text.contains("createdb"), "{text}");
}

#[tokio::test]
async fn a_refused_user_says_what_to_fix() {
    let db = TestDatabase::create().await;
    let url = db
        .url()
        .replacen("postgres@", "backout_no_such_role:pw@", 1);
    let error = PostgresStore::open(&url).await.expect_err("no such role");
    let text = chain(&error);
    assert!(
        text.contains("refused user `backout_no_such_role`"),
        "{text}"
    );
    assert!(text.contains("pg_hba.conf"), "{text}");
    assert!(!text.contains(":pw@"), "{text}");
}

#[tokio::test]
async fn open_refuses_urls_of_other_databases() {
    let error = PostgresStore::open("sqlite:///tmp/backout.db")
        .await
        .expect_err("not postgres");
    assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL specifics.

#[tokio::test]
async fn captured_output_with_nul_bytes_round_trips() {
    let fresh = fresh().await;
    fresh
        .store
        .create_run(
            &run("run-nul", &["a"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .unwrap();
    let step = StepRecord {
        state: StepState::Succeeded,
        attempt: 1,
        stdout: "binary\0output ✓".to_owned(),
        stderr: "\0".to_owned(),
        ..StepRecord::pending("run-nul", "a", T0 + 1)
    };
    fresh
        .store
        .record_step(
            &step,
            &NewEvent::new("step_succeeded", "executor", T0 + 1)
                .payload(serde_json::json!({ "tail": "a\0b" })),
        )
        .await
        .unwrap();
    assert_eq!(fresh.store.list_steps("run-nul").await.unwrap(), vec![step]);
    let events = fresh.store.events(0, 10).await.unwrap();
    assert_eq!(events[1].payload["tail"], "a\0b");
    verify_chain(&events).unwrap();
}

#[tokio::test]
async fn a_writer_waits_for_the_journal_lock_held_elsewhere() {
    let fresh = fresh().await;
    let mut holder = fresh.db.raw().await;
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(backout_postgres::JOURNAL_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .unwrap();
    let store = fresh.store.clone();
    let writer = tokio::spawn(async move {
        store
            .append_event(&NewEvent::new("note", "alice", T0))
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "the append waits for the lock");
    tx.rollback().await.unwrap();
    let event = writer.await.unwrap().unwrap();
    assert_eq!(event.seq, 1);
}
