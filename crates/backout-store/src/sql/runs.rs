//! Runs, their step records and the journal's reads, for both backends. Writes are one journal
//! transaction each (record change and event together); reads use the reader pool.

use std::collections::HashSet;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Sql, SqlBackend, Statements, clamp, db_error, to_json};
use crate::{Entity, Event, NewEvent, NewRun, Run, RunUpdate, StepRecord, StoreError};

impl<B> Sql<B>
where
    B: SqlBackend,
    for<'c> &'c mut <B::DB as Database>::Connection: Executor<'c, Database = B::DB>,
    <B::DB as Database>::Arguments: IntoArguments<B::DB>,
    for<'r> &'r str: ColumnIndex<<B::DB as Database>::Row>,
    usize: ColumnIndex<<B::DB as Database>::Row>,
    for<'q> i64: Encode<'q, B::DB> + Decode<'q, B::DB> + Type<B::DB>,
    for<'q> i32: Decode<'q, B::DB> + Type<B::DB>,
    for<'q> &'q str: Encode<'q, B::DB> + Type<B::DB>,
    for<'q> Option<&'q str>: Encode<'q, B::DB>,
    for<'q> Option<i64>: Encode<'q, B::DB>,
    for<'q> String: Decode<'q, B::DB> + Type<B::DB>,
    for<'q> &'q [u8]: Encode<'q, B::DB> + Type<B::DB>,
    for<'q> Vec<u8>: Decode<'q, B::DB> + Type<B::DB>,
{
    pub(crate) async fn create_run(
        store: &B,
        run: &NewRun,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = event.bind_to(&run.id, None)?;
        let mut seen = HashSet::new();
        if let Some(duplicate) = run.steps.iter().find(|step| !seen.insert(step.as_str())) {
            return Err(StoreError::invalid(format!(
                "step `{duplicate}` is listed twice for run `{}`",
                run.id
            )));
        }
        let mut tx = Self::begin_journal(store).await?;
        if Self::run_exists(&mut tx, &run.id).await? {
            return Err(StoreError::Conflict {
                entity: Entity::Run,
                id: run.id.clone(),
            });
        }
        Self::insert_run(&mut tx, &Run::from_new(run)).await?;
        // Every step's pending row in one statement, not one round trip per step.
        let pending: Vec<StepRecord> = run
            .steps
            .iter()
            .map(|step_id| StepRecord::pending(&run.id, step_id, run.created_at_ms))
            .collect();
        Self::upsert_steps(&mut tx, &pending.iter().collect::<Vec<_>>()).await?;
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    /// Inserts a run row as it is; also the bulk import's way in.
    pub async fn insert_run(
        conn: &mut <B::DB as Database>::Connection,
        run: &Run,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(run.id.as_str())
        .bind(run.plan_hash.as_str())
        .bind(run.plan_source.as_str())
        .bind(run.kind.as_str())
        .bind(run.release_id.as_deref())
        .bind(run.environment.as_str())
        .bind(run.actor.as_str())
        .bind(run.state.as_str())
        .bind(to_json(&run.checkpoints)?.as_str())
        .bind(run.executor.as_ref().map(|e| i64::from(e.pid)))
        .bind(run.executor.as_ref().map(|e| e.hostname.as_str()))
        .bind(run.created_at_ms)
        .bind(run.updated_at_ms)
        .bind(run.finished_at_ms)
        .execute(conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn update_run(
        store: &B,
        update: &RunUpdate,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = event.bind_to(&update.run_id, None)?;
        let mut tx = Self::begin_journal(store).await?;
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
        .bind(update.run_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if B::rows_affected(&changed) == 0 {
            return Err(StoreError::run_not_found(&update.run_id));
        }
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    pub(crate) async fn record_steps(
        store: &B,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = store.writer().acquire().await.map_err(db_error)?;
        Self::write_steps(store, &mut conn, batch).await
    }

    /// `record_steps` of one record, with the dialect's `relaxed_commit` around it: SQLite
    /// writes this one commit to the WAL with `synchronous=NORMAL` (it survives the process,
    /// and the next `FULL` commit syncs it); a backend without one commits durably.
    pub(crate) async fn record_process(
        store: &B,
        step: &StepRecord,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let mut conn = store.writer().acquire().await.map_err(db_error)?;
        let relaxed = B::DIALECT.relaxed_commit;
        if let Some((relax, _)) = relaxed {
            sqlx::query(relax)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
        let written = Self::write_steps(store, &mut conn, &[(step.clone(), event.clone())]).await;
        if let Some((_, restore)) = relaxed
            && sqlx::query(restore).execute(&mut *conn).await.is_err()
        {
            // Never hand a connection that does not fsync its commits back to the pool.
            drop(conn.detach());
        }
        written?
            .pop()
            .ok_or_else(|| StoreError::corrupt("a recorded step returned no event"))
    }

    pub(crate) async fn append_events(
        store: &B,
        events: &[NewEvent],
    ) -> Result<Vec<Event>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = Self::begin_journal(store).await?;
        let sealed = Self::append_many(&mut tx, events).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    pub(crate) async fn get_run(store: &B, run_id: &str) -> Result<Run, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id = $1"
        ))
        .bind(run_id)
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::run_not_found(run_id))?;
        Self::run_from_row(&row)
    }

    pub(crate) async fn list_runs(store: &B, limit: u32) -> Result<Vec<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs ORDER BY created_at_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::run_from_row).collect()
    }

    pub(crate) async fn list_steps(store: &B, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        if !Self::run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(Statements::of::<B>().steps_of_run)
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        rows.iter().map(Self::step_from_row).collect()
    }

    pub(crate) async fn run_events(
        store: &B,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        if !Self::run_exists(&mut conn, run_id).await? {
            return Err(StoreError::run_not_found(run_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(run_id)
        .bind(clamp(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::event_from_row).collect()
    }

    pub(crate) async fn events(
        store: &B,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(clamp(after_seq))
        .bind(i64::from(limit))
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::event_from_row).collect()
    }

    pub(crate) async fn events_of_kinds(
        store: &B,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        // The kinds travel as one JSON array, so the statement text is static.
        let kinds = to_json(&kinds)?;
        let rows = sqlx::query(Statements::of::<B>().events_of_kinds)
            .bind(clamp(after_seq))
            .bind(kinds.as_str())
            .bind(i64::from(limit))
            .fetch_all(store.reader())
            .await
            .map_err(db_error)?;
        rows.iter().map(Self::event_from_row).collect()
    }

    pub(crate) async fn last_event(store: &B) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events ORDER BY seq DESC LIMIT 1"
        ))
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?;
        row.as_ref().map(Self::event_from_row).transpose()
    }
}
