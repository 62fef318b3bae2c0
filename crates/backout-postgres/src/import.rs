//! Copying a whole store (in practice a SQLite one, for `backout migrate`) into an EMPTY
//! PostgreSQL store: every record verbatim, events with their `seq`, `prev_hash` and `hash`
//! unchanged, so the audit chain continues and `audit verify` holds afterwards.
//!
//! The source is read only through the [`Store`] trait; the rows are written here, in ONE
//! transaction that holds the journal lock: either the whole store is copied or nothing is, and
//! no other writer can append in between. The leases of `backout serve` replicas are not copied
//! (they describe live processes, not history). Nothing here decides whether a copy is wise
//! (the source's chain is checked by the caller); it refuses only a target that is not empty.

use std::time::Instant;

use backout_store::sql::{Sql, db_error};
use backout_store::{Delivery, EvidenceFilter, Release, Store, StoreError};
use sqlx::PgConnection;

use crate::store::{JOURNAL_LOCK_KEY, PostgresStore};

/// Events read from the source and inserted per round.
const EVENT_PAGE: u32 = 1000;
/// The rows the store itself writes, written the same way here.
type Rows = Sql<PostgresStore>;
/// "All of them" for the trait's list methods, which take a limit.
const ALL: u32 = u32::MAX;

/// How many rows of each table were copied, and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub runs: u64,
    pub steps: u64,
    pub events: u64,
    pub releases: u64,
    pub checkpoints: u64,
    pub deliveries: u64,
    pub delivery_attempts: u64,
    pub evidence: u64,
    pub tokens: u64,
    pub took_ms: u64,
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The target already has records: copying would interleave two histories.
    #[error(
        "the target database already holds {events} events, {runs} runs, {releases} releases \
         and {tokens} tokens: migrate copies into an empty store only (create a new database, \
         or drop backout's tables from this one)"
    )]
    NotEmpty {
        events: u64,
        runs: u64,
        releases: u64,
        tokens: u64,
    },
    /// Reading the source or writing the target failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PostgresStore {
    /// Copies every record of `source` into this store, which must be empty, in one
    /// transaction; then moves the deliveries' id sequence past the copied ids so new rows
    /// continue after them. Returns what was copied.
    pub async fn import_from(&self, source: &dyn Store) -> Result<ImportSummary, ImportError> {
        let started = Instant::now();
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(JOURNAL_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        refuse_unless_empty(&mut tx).await?;
        let mut summary = ImportSummary::default();

        // Oldest first, as they were created: `list_runs` gives newest first.
        let mut runs = source.list_runs(ALL).await?;
        runs.reverse();
        for run in &runs {
            Rows::insert_run(&mut tx, run).await?;
            // Steps in the order the run first recorded them: the position column keeps it.
            let steps = source.list_steps(&run.id).await?;
            Rows::upsert_steps(&mut tx, &steps.iter().collect::<Vec<_>>()).await?;
            summary.steps += steps.len() as u64;
        }
        summary.runs = runs.len() as u64;

        let mut after = 0;
        loop {
            let page = source.events(after, EVENT_PAGE).await?;
            // Verbatim: payloads in canonical JSON, as the store writes them, so each hash
            // still covers exactly what is stored.
            Rows::insert_events(&mut tx, &page)
                .await
                .map_err(db_error)?;
            summary.events += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == EVENT_PAGE as usize => after = last.seq,
                _ => break,
            }
        }

        let mut releases = source.list_releases(ALL).await?;
        releases.reverse();
        for release in &releases {
            insert_release(&mut tx, release).await?;
            summary.checkpoints += release.checkpoints.len() as u64;
        }
        summary.releases = releases.len() as u64;

        let mut deliveries = source.list_deliveries(None, ALL).await?;
        deliveries.sort_by_key(|delivery| delivery.id);
        for delivery in &deliveries {
            insert_delivery(&mut tx, delivery).await?;
            summary.delivery_attempts += delivery.attempts.len() as u64;
        }
        summary.deliveries = deliveries.len() as u64;
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('deliveries', 'id'), \
             COALESCE((SELECT max(id) FROM deliveries), 0) + 1, false)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;

        let mut evidence = source
            .list_evidence(&EvidenceFilter::default(), ALL)
            .await?;
        evidence.reverse();
        for piece in &evidence {
            Rows::insert_evidence(&mut tx, piece).await?;
        }
        summary.evidence = evidence.len() as u64;

        let tokens = source.list_tokens().await?;
        for token in &tokens {
            Rows::insert_token(&mut tx, token).await?;
        }
        summary.tokens = tokens.len() as u64;

        tx.commit().await.map_err(db_error)?;
        summary.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(summary)
    }
}

async fn count(conn: &mut PgConnection, table: &str) -> Result<u64, StoreError> {
    let query = format!("SELECT count(*) FROM {table}");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
        .fetch_one(conn)
        .await
        .map_err(db_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn refuse_unless_empty(conn: &mut PgConnection) -> Result<(), ImportError> {
    let events = count(conn, "events").await?;
    let runs = count(conn, "runs").await?;
    let releases = count(conn, "releases").await?;
    let tokens = count(conn, "tokens").await?;
    let deliveries = count(conn, "deliveries").await?;
    let evidence = count(conn, "evidence").await?;
    if events + runs + releases + tokens + deliveries + evidence > 0 {
        return Err(ImportError::NotEmpty {
            events,
            runs,
            releases,
            tokens,
        });
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::invalid(error.to_string()))
}

fn seq(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::invalid(format!("{value} is too large")))
}

async fn insert_release(conn: &mut PgConnection, release: &Release) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO releases (id, plan_hash, plan_source, service, version, rollback_to, \
         environment, actor, state, opened_at_ms, closes_at_ms, closed_at_ms, close_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&release.id)
    .bind(&release.plan_hash)
    .bind(&release.plan_source)
    .bind(&release.service)
    .bind(&release.version)
    .bind(&release.rollback_to)
    .bind(&release.environment)
    .bind(&release.actor)
    .bind(release.state.as_str())
    .bind(release.opened_at_ms)
    .bind(release.closes_at_ms)
    .bind(release.closed_at_ms)
    .bind(&release.close_reason)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    // In the order they were reached: the position column keeps it.
    for checkpoint in &release.checkpoints {
        sqlx::query(
            "INSERT INTO release_checkpoints (release_id, name, at_ms, actor) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&release.id)
        .bind(&checkpoint.name)
        .bind(checkpoint.at_ms)
        .bind(&checkpoint.actor)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// A delivery with its own id (the id sequence is moved past them afterwards).
async fn insert_delivery(conn: &mut PgConnection, delivery: &Delivery) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deliveries (id, event_seq, release_id, run_id, channel, kind, notify_event, \
         state, created_at_ms, next_attempt_at_ms, claimed_by, claimed_until_ms, attempts, \
         last_error, delivered_at_ms, updated_at_ms) OVERRIDING SYSTEM VALUE \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(seq(delivery.id)?)
    .bind(seq(delivery.event_seq)?)
    .bind(&delivery.release_id)
    .bind(&delivery.run_id)
    .bind(&delivery.channel)
    .bind(delivery.kind.as_str())
    .bind(&delivery.notify_event)
    .bind(delivery.state.as_str())
    .bind(delivery.created_at_ms)
    .bind(delivery.next_attempt_at_ms)
    .bind(&delivery.claimed_by)
    .bind(delivery.claimed_until_ms)
    .bind(to_json(&delivery.attempts)?)
    .bind(&delivery.last_error)
    .bind(delivery.delivered_at_ms)
    .bind(delivery.updated_at_ms)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}
