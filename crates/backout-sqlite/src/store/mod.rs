//! [`SqliteStore`]: opening (URL, file and directories, pragmas, migrations) and the
//! [`Store`] implementation. Every write is one `BEGIN IMMEDIATE` transaction on the single
//! writer connection that changes the record and appends its event; reads use a small pool of
//! their own so status queries and live tails never wait behind a commit's fsync.
//!
//! Runs, steps and releases are here; `journal.rs` seals events onto the chain, and the
//! outbox, evidence, tokens and leases have a file each (as do the connection setup and the
//! file checks).

mod checks;
mod connect;
mod evidence;
mod journal;
mod leases;
mod outbox;
mod tokens;

use connect::{connect_options, migrate};
use journal::{
    append, append_after, append_many, clamp_id, clamp_seq, run_exists, to_json, upsert_steps,
};

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backout_store::{
    Checkpoint, Counts, Delivery, DeliveryNext, Entity, Event, Evidence, EvidenceFilter,
    NewAttempt, NewEvent, NewRelease, NewRun, NewToken, Release, Run, RunKind, RunState, RunUpdate,
    STATE_QUERIES, StepRecord, Store, StoreError, Token,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::errors::{db_error, open_error};
use crate::location::{Location, parse_url};
use crate::rows::{
    checkpoint_from_row, delivery_from_row, event_from_row, evidence_from_row, release_from_row,
    run_from_row, step_from_row, token_from_row,
};

static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a write waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections for reads. SQLite in WAL mode lets them read while the writer commits.
const READ_CONNECTIONS: u32 = 4;

/// A [`Store`] in one SQLite file. Cheap to clone: clones share the connection pools.
///
/// Several handles (in one process or several) may open the same file: `BEGIN IMMEDIATE` and the
/// busy timeout serialize their writes, so `seq` and the chain stay well defined.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    location: String,
    /// The chain's end after this store's last `record_steps`: the next batch seals onto it
    /// without reading it first (checked by the insert itself, see `journal::append_after`).
    end: Arc<Mutex<Option<(u64, String)>>>,
}

/// The connection settings in force, as SQLite reports them (see [`SqliteStore::pragmas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePragmas {
    /// `wal` for a file database (`memory` for an in-memory one).
    pub journal_mode: String,
    /// 2 is `FULL`: the WAL is synced at every commit.
    pub synchronous: i64,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens the database named by a URL: `sqlite:///abs/path.db`, `sqlite://relative.db`, or
    /// `sqlite::memory:`. See [`SqliteStore::open_path`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        match parse_url(url)? {
            Location::File(path) => Self::open_path(&path).await,
            Location::Memory => Self::open_in_memory().await,
        }
    }

    /// Opens the database file at `path`, creating it and its parent directories if missing,
    /// and applies pending migrations.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        // Several processes opening a brand-new file at once race to switch it to WAL, and the
        // loser sees "database is locked" despite the busy timeout; a short retry settles it.
        let mut delay = std::time::Duration::from_millis(20);
        for _ in 0..6 {
            match Self::open_path_once(path).await {
                Err(error) if is_locked(&error) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        Self::open_path_once(path).await
    }

    async fn open_path_once(path: &Path) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| open_error(&location, error))?;
        }
        private_file(path).map_err(|error| open_error(&location, error))?;
        let options =
            connect_options(SqliteConnectOptions::new().filename(path)).create_if_missing(true);
        // One writer connection: writers of this process queue fairly on the pool instead of
        // spinning in SQLite's busy handler; other processes are held off by BEGIN IMMEDIATE.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|error| open_error(&location, error))?;
        migrate(&writer, &location).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|error| open_error(&location, error))?;
        Ok(SqliteStore {
            writer,
            reader,
            location,
            end: Arc::default(),
        })
    }

    /// A private in-memory database, for tests of code that needs some store. Nothing survives
    /// the process, so this is never the executor's store.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let location = ":memory:".to_owned();
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|error| open_error(&location, error))?;
        // The database lives as long as its one connection, so that connection is never closed.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect_options(options))
            .await
            .map_err(|error| open_error(&location, error))?;
        migrate(&pool, &location).await?;
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
            location,
            end: Arc::default(),
        })
    }

    /// The file (or `:memory:`) this store was opened on.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes every connection, checkpointing the WAL into the database file.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock at once, so the seq read below cannot go stale and a
        // concurrent writer waits (busy timeout) instead of failing at its first write.
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }

    /// `record_steps` on `conn` (the writer's connection).
    async fn write_steps(
        &self,
        conn: &mut SqliteConnection,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        let bound = batch
            .iter()
            .map(|(step, event)| event.bind_to(&step.run_id, Some(&step.step_id)))
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        // The hot path of the executor (a step's finish with the starts it unblocks, a step's
        // process group): four round trips, BEGIN, one multi-row append of the events sealed
        // onto the chain's end this store last wrote, one multi-row upsert of the step rows,
        // COMMIT. That every run exists is checked by the foreign keys, and named on failure.
        let end = self
            .end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let steps: Vec<&StepRecord> = batch.iter().map(|(step, _)| step).collect();
        let written = match append_after(&mut tx, &bound, end).await {
            Ok(sealed) => upsert_steps(&mut tx, &steps).await.map(|()| sealed),
            Err(error) => Err(error),
        };
        let sealed = match written {
            Ok(sealed) => sealed,
            Err(error) => {
                drop(tx);
                if !matches!(error, StoreError::Fenced { .. }) {
                    // On the writer's connection (the transaction rolled back): an in-memory
                    // store has no other.
                    for (step, _) in batch {
                        if !run_exists(&mut *conn, &step.run_id).await? {
                            return Err(StoreError::run_not_found(&step.run_id));
                        }
                    }
                }
                return Err(error);
            }
        };
        tx.commit().await.map_err(db_error)?;
        if let Some(last) = sealed.last() {
            *self
                .end
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((last.seq, last.hash.clone()));
        }
        Ok(sealed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &NewRun, event: &NewEvent) -> Result<Event, StoreError> {
        let event = event.bind_to(&run.id, None)?;
        let mut seen = HashSet::new();
        if let Some(duplicate) = run.steps.iter().find(|step| !seen.insert(step.as_str())) {
            return Err(StoreError::invalid(format!(
                "step `{duplicate}` is listed twice for run `{}`",
                run.id
            )));
        }
        let mut tx = self.begin_write().await?;
        if run_exists(&mut tx, &run.id).await? {
            return Err(StoreError::Conflict {
                entity: Entity::Run,
                id: run.id.clone(),
            });
        }
        let stored = Run::from_new(run);
        sqlx::query(concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&stored.id)
        .bind(&stored.plan_hash)
        .bind(&stored.plan_source)
        .bind(stored.kind.as_str())
        .bind(&stored.release_id)
        .bind(&stored.environment)
        .bind(&stored.actor)
        .bind(stored.state.as_str())
        .bind(to_json(&stored.checkpoints)?)
        .bind(stored.executor.as_ref().map(|e| i64::from(e.pid)))
        .bind(stored.executor.as_ref().map(|e| e.hostname.as_str()))
        .bind(stored.created_at_ms)
        .bind(stored.updated_at_ms)
        .bind(stored.finished_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // Every step's pending row in one statement, not one round trip per step.
        let pending: Vec<StepRecord> = run
            .steps
            .iter()
            .map(|step_id| StepRecord::pending(&run.id, step_id, run.created_at_ms))
            .collect();
        upsert_steps(&mut tx, &pending.iter().collect::<Vec<_>>()).await?;
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn update_run(&self, update: &RunUpdate, event: &NewEvent) -> Result<Event, StoreError> {
        let event = event.bind_to(&update.run_id, None)?;
        let mut tx = self.begin_write().await?;
        let finished_at_ms = update.state.is_terminal().then_some(update.at_ms);
        let changed = sqlx::query(
            "UPDATE runs SET state = ?, executor_pid = coalesce(?, executor_pid), \
             executor_host = coalesce(?, executor_host), updated_at_ms = ?, \
             finished_at_ms = ? WHERE id = ?",
        )
        .bind(update.state.as_str())
        .bind(update.executor.as_ref().map(|e| i64::from(e.pid)))
        .bind(update.executor.as_ref().map(|e| e.hostname.as_str()))
        .bind(update.at_ms)
        .bind(finished_at_ms)
        .bind(&update.run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::run_not_found(&update.run_id));
        }
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn record_steps(
        &self,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db_error)?;
        self.write_steps(&mut conn, batch).await
    }

    async fn record_process(
        &self,
        step: &StepRecord,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        // WAL with `synchronous=NORMAL` for this one commit: written to the WAL (it survives
        // the process), not fsynced; the next `FULL` commit syncs the WAL with it.
        let mut conn = self.writer.acquire().await.map_err(db_error)?;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        let written = self
            .write_steps(&mut conn, &[(step.clone(), event.clone())])
            .await;
        if sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            // Never hand a connection that does not fsync its commits back to the pool.
            drop(conn.detach());
        }
        written?
            .pop()
            .ok_or_else(|| StoreError::corrupt("a recorded step returned no event"))
    }

    async fn append_event(&self, event: &NewEvent) -> Result<Event, StoreError> {
        let mut tx = self.begin_write().await?;
        let sealed = append(&mut tx, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let sealed = append_many(&mut tx, events).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn get_run(&self, run_id: &str) -> Result<Run, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = ?"
        ))
        .bind(run_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::run_not_found(run_id))?;
        run_from_row(&row)
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs ORDER BY created_at_ms DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn list_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_error)?;
        if !run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM step_states WHERE run_id = ? ORDER BY rowid"
        ))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(step_from_row).collect()
    }

    async fn run_events(
        &self,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_error)?;
        if !run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(run_id)
        .bind(clamp_seq(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(clamp_seq(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events_of_kinds(
        &self,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        // The kinds travel as one JSON array, so the statement text is static.
        let kinds = serde_json::to_string(kinds).map_err(|e| StoreError::invalid(e.to_string()))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE seq > ? AND kind IN (SELECT value FROM json_each(?)) \
             ORDER BY seq LIMIT ?"
        ))
        .bind(clamp_seq(after_seq))
        .bind(kinds)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event(&self) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn create_release(
        &self,
        release: &NewRelease,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, &release.id)?;
        let mut tx = self.begin_write().await?;
        if release_exists(&mut tx, &release.id).await? {
            return Err(StoreError::Conflict {
                entity: Entity::Release,
                id: release.id.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO releases (id, plan_hash, plan_source, service, version, rollback_to, environment, \
             actor, state, opened_at_ms, closes_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)",
        )
        .bind(&release.id)
        .bind(&release.plan_hash)
        .bind(&release.plan_source)
        .bind(&release.service)
        .bind(&release.version)
        .bind(&release.rollback_to)
        .bind(&release.environment)
        .bind(&release.actor)
        .bind(release.opened_at_ms)
        .bind(release.closes_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn get_release(&self, release_id: &str) -> Result<Release, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE id = ?"
        ))
        .bind(release_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_error)?
        .ok_or_else(|| release_not_found(release_id))?;
        let mut release = release_from_row(&row)?;
        release.checkpoints = self.checkpoints(release_id).await?;
        Ok(release)
    }

    async fn release_events(
        &self,
        release_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_error)?;
        if !release_exists(&mut conn, release_id).await? {
            return Err(release_not_found(release_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE release_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(release_id)
        .bind(clamp_seq(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn list_releases(&self, limit: u32) -> Result<Vec<Release>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases ORDER BY opened_at_ms DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut release = release_from_row(row)?;
            release.checkpoints = self.checkpoints(&release.id).await?;
            releases.push(release);
        }
        Ok(releases)
    }

    async fn counts(&self, close_reason_prefixes: &[&str]) -> Result<Counts, StoreError> {
        // One read transaction: every count comes from the same snapshot.
        let mut tx = self.reader.begin().await.map_err(db_error)?;
        let mut groups: [Vec<(String, i64)>; 3] = Default::default();
        for (query, rows) in STATE_QUERIES.into_iter().zip(&mut groups) {
            *rows = sqlx::query_as(query)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let mut counts = Counts::tally(groups);
        for prefix in close_reason_prefixes {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM releases WHERE state = 'closed' \
                 AND substr(close_reason, 1, length(?1)) = ?1",
            )
            .bind(*prefix)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            counts.closed_by_reason.push(n.unsigned_abs());
        }
        tx.commit().await.map_err(db_error)?;
        Ok(counts)
    }

    async fn open_releases(&self) -> Result<Vec<Release>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE state = 'open' ORDER BY opened_at_ms, id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        // One query for the checkpoints of all of them, not one per release.
        let checkpoint_rows = sqlx::query(
            "SELECT c.release_id, c.name, c.at_ms, c.actor FROM release_checkpoints c \
             JOIN releases r ON r.id = c.release_id WHERE r.state = 'open' ORDER BY c.rowid",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        let mut by_release: std::collections::HashMap<String, Vec<Checkpoint>> =
            std::collections::HashMap::new();
        for row in &checkpoint_rows {
            let id: String = row.try_get("release_id").map_err(db_error)?;
            by_release
                .entry(id)
                .or_default()
                .push(checkpoint_from_row(row)?);
        }
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut release = release_from_row(row)?;
            release.checkpoints = by_release.remove(&release.id).unwrap_or_default();
            releases.push(release);
        }
        Ok(releases)
    }

    async fn record_checkpoint(
        &self,
        release_id: &str,
        checkpoint: &Checkpoint,
        close: Option<&str>,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, release_id)?;
        let mut tx = self.begin_write().await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM releases WHERE id = ?")
            .bind(release_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        match state.as_deref() {
            None => return Err(release_not_found(release_id)),
            Some("closed") => {
                return Err(StoreError::invalid(format!(
                    "release `{release_id}` is closed"
                )));
            }
            Some(_) => {}
        }
        let inserted = sqlx::query(
            "INSERT INTO release_checkpoints (release_id, name, at_ms, actor) VALUES (?, ?, ?, ?) \
             ON CONFLICT (release_id, name) DO NOTHING",
        )
        .bind(release_id)
        .bind(&checkpoint.name)
        .bind(checkpoint.at_ms)
        .bind(&checkpoint.actor)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                entity: Entity::Checkpoint,
                id: checkpoint.name.clone(),
            });
        }
        if let Some(reason) = close {
            close_window(&mut tx, release_id, checkpoint.at_ms, reason).await?;
        }
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn close_release(
        &self,
        release_id: &str,
        at_ms: i64,
        reason: &str,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, release_id)?;
        let mut tx = self.begin_write().await?;
        if !release_exists(&mut tx, release_id).await? {
            return Err(release_not_found(release_id));
        }
        if !close_window(&mut tx, release_id, at_ms, reason).await? {
            return Err(StoreError::invalid(format!(
                "the window of release `{release_id}` is already closed"
            )));
        }
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<backout_store::Lease>, StoreError> {
        leases::acquire_lease(self, name, owner, now_ms, ttl_ms).await
    }

    async fn renew_lease(
        &self,
        lease: &backout_store::Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<backout_store::Lease>, StoreError> {
        leases::renew_lease(self, lease, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, lease: &backout_store::Lease) -> Result<(), StoreError> {
        leases::release_lease(self, lease).await
    }

    async fn leases(&self, prefix: &str) -> Result<Vec<backout_store::Lease>, StoreError> {
        leases::leases(self, prefix).await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        outbox::due_deliveries(self, now_ms, limit).await
    }

    async fn claim_deliveries(
        &self,
        claimant: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        outbox::claim_deliveries(self, claimant, now_ms, lease_ms, limit).await
    }

    async fn record_delivery_attempt(
        &self,
        id: u64,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<Delivery, StoreError> {
        outbox::record_delivery_attempt(self, id, attempt, next).await
    }

    async fn get_delivery(&self, id: u64) -> Result<Delivery, StoreError> {
        outbox::get_delivery(self, id).await
    }

    async fn list_deliveries(
        &self,
        release_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        outbox::list_deliveries(self, release_id, limit).await
    }

    async fn record_evidence(
        &self,
        evidence: &Evidence,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        evidence::record_evidence(self, evidence, event).await
    }

    async fn get_evidence(&self, id: &str) -> Result<Evidence, StoreError> {
        evidence::get_evidence(self, id).await
    }

    async fn evidence_of_run(&self, run_id: &str) -> Result<Option<Evidence>, StoreError> {
        evidence::evidence_of_run(self, run_id).await
    }

    async fn list_evidence(
        &self,
        filter: &EvidenceFilter,
        limit: u32,
    ) -> Result<Vec<Evidence>, StoreError> {
        evidence::list_evidence(self, filter, limit).await
    }

    async fn create_token(&self, token: &NewToken, event: &NewEvent) -> Result<Event, StoreError> {
        tokens::create_token(self, token, event).await
    }

    async fn get_token(&self, id: &str) -> Result<Token, StoreError> {
        tokens::get_token(self, id).await
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        tokens::list_tokens(self).await
    }

    async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        at_ms: i64,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        tokens::revoke_token(self, id, actor, at_ms, event).await
    }
}

/// Whether an error (or one of its causes) is SQLite's "database is locked" / "busy".
fn is_locked(error: &StoreError) -> bool {
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if text.contains("database is locked") || text.contains("database is busy") {
            return true;
        }
        current = e.source();
    }
    false
}

impl SqliteStore {
    async fn checkpoints(&self, release_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query("SELECT name, at_ms, actor FROM release_checkpoints WHERE release_id = ? ORDER BY rowid")
            .bind(release_id)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        rows.iter().map(checkpoint_from_row).collect()
    }
}

fn release_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Release,
        id: id.to_owned(),
    }
}

/// The event written with a release change names that release.
fn bind_release(event: &NewEvent, release_id: &str) -> Result<NewEvent, StoreError> {
    match &event.release_id {
        Some(given) if given != release_id => Err(StoreError::invalid(format!(
            "event names release `{given}` but is written with release `{release_id}`"
        ))),
        _ => Ok(event.clone().release(release_id)),
    }
}

async fn release_exists(conn: &mut SqliteConnection, release_id: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM releases WHERE id = ?")
        .bind(release_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// Closes an open release; closing a closed one keeps its first closing.
async fn close_window(
    conn: &mut SqliteConnection,
    release_id: &str,
    at_ms: i64,
    reason: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE releases SET state = 'closed', closed_at_ms = ?, close_reason = ? WHERE id = ? AND state = 'open'",
    )
    .bind(at_ms)
    .bind(reason)
    .bind(release_id)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() == 1)
}

/// The store holds the journal, plans and token digests: its file is created readable by its
/// owner only (0600), and SQLite creates the `-wal` and `-shm` files with the database file's
/// permissions. An existing file or companion readable by others is narrowed to 0600 too
/// (when this user owns it).
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if let Ok(meta) = std::fs::metadata(file)
            && meta.is_file()
            && meta.permissions().mode() & 0o077 != 0
        {
            // Not ours to change (another owner): leave it; opening still works.
            let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok(())
}
