//! [`PostgresStore`]: opening (URL, connection, migrations) and the [`Store`] implementation.
//!
//! Every write that appends to the journal is one transaction that first takes the journal's
//! transaction-level advisory lock ([`JOURNAL_LOCK_KEY`]), then checks, changes the record and
//! appends its events: like SQLite's `BEGIN IMMEDIATE`, this serializes writers across every
//! process using the database, so `seq` is gap-free, the chain is linear, and the existence
//! checks that turn into `NotFound`/`Conflict` cannot race. Delivery claims and attempts append
//! nothing and lock only their rows (`FOR UPDATE SKIP LOCKED`). Reads never wait for the lock.
//! Leases (`leases.rs`) are taken and renewed with one row-locking statement each, and a
//! write made under a lease share-locks its row while checking the fencing token.

mod evidence;
mod journal;
mod leases;
mod outbox;
mod tokens;

use journal::{
    append, append_many, bind_release, clamp_id, clamp_seq, close_window, release_exists,
    release_not_found, run_exists, to_json, upsert_step,
};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use backout_store::{
    Checkpoint, Counts, Delivery, DeliveryNext, Entity, Event, Evidence, EvidenceFilter,
    GENESIS_HASH, NewAttempt, NewDelivery, NewEvent, NewRelease, NewRun, NewToken, Release, Run,
    RunKind, RunState, RunUpdate, STATE_QUERIES, StepRecord, Store, StoreError, Token,
    canonical_json,
};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};

use crate::errors::{connect_error, db_error, open_problem};
use crate::location::parse_url;
use crate::rows::{
    checkpoint_from_row, delivery_from_row, event_from_row, evidence_from_row, release_from_row,
    run_from_row, step_from_row, token_from_row,
};

static MIGRATOR: Migrator = sqlx::migrate!();

/// The key of the advisory lock that serializes journal appends (`"backout1"` as a big-endian
/// integer). Any session holding it with `pg_advisory_xact_lock` blocks every store writer.
pub const JOURNAL_LOCK_KEY: i64 = 0x6261_636b_6f75_7431;

/// Starts a write: one round trip for `BEGIN` and the journal lock (the key is
/// [`JOURNAL_LOCK_KEY`], checked by a unit test).
const BEGIN_WRITE: &str = "BEGIN; SELECT pg_advisory_xact_lock(7089056601540490289)";

/// How long opening waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for the journal lock (or a row lock) before failing, like SQLite's
/// busy timeout.
const LOCK_TIMEOUT: &str = "10s";

/// Connections per store handle: readers run in parallel, writers queue on the journal lock.
const MAX_CONNECTIONS: u32 = 8;

/// A [`Store`] in one PostgreSQL database. Cheap to clone: clones share the connection pool.
///
/// Any number of handles, in any number of processes, may use the same database: the journal
/// lock serializes their writes, so `seq` and the chain stay well defined.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    location: String,
}

impl fmt::Debug for PostgresStore {
    /// Only the location: the pool's options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens the database named by `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or
    /// `postgresql://`) and applies pending migrations. The database must exist; its tables
    /// are created here. Several processes may open a new database at once: sqlx's migrator
    /// holds a session advisory lock while it migrates, so each migration is applied once.
    ///
    /// Errors are [`StoreError::Invalid`] for a URL that is not one, else [`StoreError::Open`]
    /// whose source ([`crate::OpenProblem`]) says what failed where (server unreachable, user
    /// refused, database missing, migration failed) and what to do.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let target = parse_url(url)?;
        let mut options = target
            .options
            .clone()
            .options([("lock_timeout", LOCK_TIMEOUT)]);
        if options.get_application_name().is_none() {
            options = options.application_name("backout");
        }
        let connecting = PgConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_elapsed) => {
                return Err(open_problem(
                    &target,
                    format!(
                        "no answer from a PostgreSQL server at {} within {}s: check the host and \
                         port in the URL, and that the server is up and reachable",
                        target.server,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    None,
                ));
            }
            Ok(Err(error)) => return Err(connect_error(&target, error)),
            Ok(Ok(conn)) => conn,
        };
        // `run_direct` is `run` on a connection without the `Acquire` bound whose lifetime
        // makes `open`'s future not `Send` (sqlx's own workaround); it takes the same lock.
        let migrated = MIGRATOR.run_direct(None, &mut conn, false).await;
        // Closing also ends the migrator's session lock if migrating failed half-way.
        let _ = conn.close().await;
        if let Err(error) = migrated {
            let message = match &error {
                MigrateError::VersionMissing(version) => format!(
                    "database `{}` on {} has migration {version}, which this backout does not \
                     know: it was written by a newer backout; upgrade backout",
                    target.database, target.server
                ),
                _ => format!(
                    "cannot create or migrate backout's tables in database `{}` on {}: check \
                     that user `{}` may create tables there",
                    target.database, target.server, target.user
                ),
            };
            return Err(open_problem(&target, message, Some(Box::new(error))));
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options);
        Ok(PostgresStore {
            pool,
            location: target.location,
        })
    }

    /// `postgres://USER@HOST:PORT/DATABASE`: where this store is, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The connection pool, for the bulk import (`crate::import`), which writes outside the
    /// [`Store`] methods.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection of this handle (and its clones).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)
    }

    async fn checkpoints(&self, release_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, at_ms, actor FROM release_checkpoints WHERE release_id = $1 \
             ORDER BY position",
        )
        .bind(release_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(checkpoint_from_row).collect()
    }
}

#[async_trait]
impl Store for PostgresStore {
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
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
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
        for step_id in &run.steps {
            upsert_step(
                &mut tx,
                &StepRecord::pending(&run.id, step_id, run.created_at_ms),
            )
            .await?;
        }
        let sealed = append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    async fn update_run(&self, update: &RunUpdate, event: &NewEvent) -> Result<Event, StoreError> {
        let event = event.bind_to(&update.run_id, None)?;
        let mut tx = self.begin_write().await?;
        let finished_at_ms = update.state.is_terminal().then_some(update.at_ms);
        let changed = sqlx::query(
            "UPDATE runs SET state = $1, executor_pid = coalesce($2, executor_pid), \
             executor_host = coalesce($3, executor_host), updated_at_ms = $4, \
             finished_at_ms = $5 WHERE id = $6",
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
        let bound = batch
            .iter()
            .map(|(step, event)| event.bind_to(&step.run_id, Some(&step.step_id)))
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut checked: Vec<&str> = Vec::new();
        for (step, _) in batch {
            if !checked.contains(&step.run_id.as_str()) {
                if !run_exists(&mut tx, &step.run_id).await? {
                    return Err(StoreError::run_not_found(&step.run_id));
                }
                checked.push(&step.run_id);
            }
            upsert_step(&mut tx, step).await?;
        }
        // The states and their events commit together, so writing all states first and then
        // the events in one statement is indistinguishable from interleaving them.
        let sealed = append_many(&mut tx, &bound).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
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
            " FROM runs WHERE id = $1"
        ))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::run_not_found(run_id))?;
        run_from_row(&row)
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs ORDER BY created_at_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn list_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        if !run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM step_states WHERE run_id = $1 ORDER BY position"
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
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        if !run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
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
            " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(clamp_seq(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE seq > $1 AND kind = ANY($2) ORDER BY seq LIMIT $3"
        ))
        .bind(clamp_seq(after_seq))
        .bind(kinds)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        .fetch_optional(&self.pool)
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
            "INSERT INTO releases (id, plan_hash, plan_source, service, version, rollback_to, \
             environment, actor, state, opened_at_ms, closes_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)",
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
            " FROM releases WHERE id = $1"
        ))
        .bind(release_id)
        .fetch_optional(&self.pool)
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
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        if !release_exists(&mut conn, release_id).await? {
            return Err(release_not_found(release_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE release_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
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
            " FROM releases ORDER BY opened_at_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_error)?;
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
                 AND substr(close_reason, 1, length($1::text)) = $1::text",
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
        // One snapshot for both queries, so a release closing in between cannot lose or gain
        // checkpoints.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_error)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE state = 'open' ORDER BY opened_at_ms, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        // One query for the checkpoints of all of them, not one per release.
        let checkpoint_rows = sqlx::query(
            "SELECT c.release_id, c.name, c.at_ms, c.actor FROM release_checkpoints c \
             JOIN releases r ON r.id = c.release_id WHERE r.state = 'open' ORDER BY c.position",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut by_release: HashMap<String, Vec<Checkpoint>> = HashMap::new();
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
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM releases WHERE id = $1")
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
            "INSERT INTO release_checkpoints (release_id, name, at_ms, actor) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (release_id, name) DO NOTHING",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_write_locks_the_journal_key() {
        assert!(
            BEGIN_WRITE.ends_with(&format!("pg_advisory_xact_lock({JOURNAL_LOCK_KEY})")),
            "{BEGIN_WRITE}"
        );
    }
}
