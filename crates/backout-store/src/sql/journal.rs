//! Writing the journal: sealing events onto the hash chain (the chain's end read once, rows
//! inserted in multi-row statements), the deliveries and step rows written with them, and the
//! fence check. Every function here runs inside a journal write transaction (the dialect's
//! `begin_journal`), which serializes appends, so the end read is the end written after.

use std::collections::HashSet;
use std::sync::PoisonError;

use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row,
    Type,
};

use super::{ChainEnd, Sql, SqlBackend, Statements, clamp, db_error, to_json};
use crate::{
    Event, Fence, GENESIS_HASH, NewDelivery, NewEvent, StepRecord, StoreError, canonical_json,
};

type Conn<B> = <<B as SqlBackend>::DB as Database>::Connection;

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
    pub(crate) async fn run_exists(conn: &mut Conn<B>, run_id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(conn)
            .await
            .map_err(db_error)?;
        Ok(found.is_some())
    }

    /// Appends `event` as the next one in the chain, with its deliveries.
    pub(crate) async fn append(conn: &mut Conn<B>, event: &NewEvent) -> Result<Event, StoreError> {
        Self::append_many(conn, std::slice::from_ref(event))
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("an appended event returned nothing"))
    }

    /// Appends `events` as the next ones in the chain, in order, after checking that the runs
    /// they name exist (so a missing one is `NotFound`, not a foreign key failure).
    pub(crate) async fn append_many(
        conn: &mut Conn<B>,
        events: &[NewEvent],
    ) -> Result<Vec<Event>, StoreError> {
        let mut runs_seen: HashSet<&str> = HashSet::new();
        for event in events {
            if let Some(run_id) = &event.run_id
                && !runs_seen.contains(run_id.as_str())
            {
                if !Self::run_exists(conn, run_id).await? {
                    return Err(StoreError::run_not_found(run_id));
                }
                runs_seen.insert(run_id);
            }
        }
        Self::append_after(conn, events, None).await
    }

    /// The end of the chain (`seq`, `hash`), or `(0, GENESIS_HASH)` when it is empty.
    async fn chain_end(conn: &mut Conn<B>) -> Result<ChainEnd, StoreError> {
        let last = sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(match last {
            Some(row) => {
                let seq: i64 = row.try_get("seq").map_err(db_error)?;
                let hash: String = row.try_get("hash").map_err(db_error)?;
                let seq = u64::try_from(seq)
                    .map_err(|_| StoreError::corrupt(format!("event seq {seq} is negative")))?;
                (seq, hash)
            }
            None => (0, GENESIS_HASH.to_owned()),
        })
    }

    /// Appends `events` (whose runs the caller checked, or lets the foreign keys check) after
    /// the chain's end. `end` is where the caller believes the chain ends (this handle's last
    /// append, see [`SqlBackend::chain_end_hint`]): when it is stale (another handle appended
    /// since), the first insert collides with the existing `seq` (seqs are gap-free and never
    /// deleted, so any later append took `end.seq + 1`), and the end is read and the events
    /// sealed again, in the same transaction. A `None` end is read first.
    pub(crate) async fn append_after(
        conn: &mut Conn<B>,
        events: &[NewEvent],
        end: Option<ChainEnd>,
    ) -> Result<Vec<Event>, StoreError> {
        for event in events {
            event.check_deliveries()?;
        }
        Self::check_fences(conn, events).await?;
        // A guess is tried only when one statement inserts every event (so a failure inserted
        // none of them).
        let guess = end.filter(|_| events.len() <= B::DIALECT.rows_per_insert);
        let guessed = guess.is_some();
        let end = match guess {
            Some(end) => end,
            None => Self::chain_end(conn).await?,
        };
        let sealed = match Self::insert_sealed(conn, events, end).await {
            Ok(sealed) => sealed,
            Err(_) if guessed => {
                // A multi-row INSERT that fails inserts nothing (the statement is rolled back,
                // not the transaction): read the real end and seal again.
                let end = Self::chain_end(conn).await?;
                Self::insert_sealed(conn, events, end)
                    .await
                    .map_err(db_error)?
            }
            Err(error) => return Err(db_error(error)),
        };
        for (event, stored) in events.iter().zip(&sealed) {
            if !event.deliveries.is_empty() {
                Self::insert_deliveries(conn, stored, &event.deliveries).await?;
            }
        }
        Ok(sealed)
    }

    /// Seals `events` onto the chain after `end` and inserts them.
    async fn insert_sealed(
        conn: &mut Conn<B>,
        events: &[NewEvent],
        end: ChainEnd,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let (last_seq, mut prev_hash) = end;
        let mut sealed = Vec::with_capacity(events.len());
        for (seq, event) in (last_seq + 1..).zip(events) {
            let event = event.seal(seq, &prev_hash);
            prev_hash.clone_from(&event.hash);
            sealed.push(event);
        }
        Self::insert_events(conn, &sealed).await?;
        Ok(sealed)
    }

    /// Inserts sealed events as they are (`seq`, hashes and all), in multi-row statements.
    /// Also the bulk import's way in, which copies a chain verbatim.
    pub async fn insert_events(conn: &mut Conn<B>, events: &[Event]) -> Result<(), sqlx::Error> {
        for chunk in events.chunks(B::DIALECT.rows_per_insert) {
            let payloads: Vec<String> = chunk.iter().map(|e| canonical_json(&e.payload)).collect();
            let mut insert = QueryBuilder::<B::DB>::new(
                "INSERT INTO events (seq, at_ms, kind, run_id, step_id, release_id, actor, \
                 payload, prev_hash, hash) ",
            );
            insert.push_values(chunk.iter().zip(&payloads), |mut row, (e, payload)| {
                row.push_bind(clamp(e.seq))
                    .push_bind(e.at_ms)
                    .push_bind(e.kind.as_str())
                    .push_bind(e.run_id.as_deref())
                    .push_bind(e.step_id.as_deref())
                    .push_bind(e.release_id.as_deref())
                    .push_bind(e.actor.as_str())
                    .push_bind(payload.as_str())
                    .push_bind(e.prev_hash.as_str())
                    .push_bind(e.hash.as_str());
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The outbox rows of a just-appended event, pending and due at the event's time, in one
    /// statement: ids follow the order given.
    async fn insert_deliveries(
        conn: &mut Conn<B>,
        event: &Event,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let release_id = match (&event.release_id, &event.run_id) {
            (Some(release_id), _) => Some(release_id.clone()),
            (None, Some(run_id)) => {
                let found: Option<Option<String>> =
                    sqlx::query_scalar("SELECT release_id FROM runs WHERE id = $1")
                        .bind(run_id.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(db_error)?;
                found.flatten()
            }
            (None, None) => None,
        };
        let mut insert = QueryBuilder::<B::DB>::new(
            "INSERT INTO deliveries (event_seq, release_id, run_id, channel, kind, notify_event, \
             state, created_at_ms, next_attempt_at_ms, updated_at_ms) ",
        );
        insert.push_values(deliveries, |mut row, delivery| {
            row.push_bind(clamp(event.seq))
                .push_bind(release_id.as_deref())
                .push_bind(event.run_id.as_deref())
                .push_bind(delivery.channel.as_str())
                .push_bind(delivery.kind.as_str())
                .push_bind(delivery.notify_event.as_str())
                .push_bind("pending")
                .push_bind(event.at_ms)
                .push_bind(event.at_ms)
                .push_bind(event.at_ms);
        });
        insert.build().execute(&mut *conn).await.map_err(db_error)?;
        Ok(())
    }

    /// Inserts or updates the rows of `steps` with one statement (per `rows_per_insert`): a
    /// batch of the scheduling loop costs one round trip, not one per step. Two records of the
    /// same step in one batch: the last wins.
    pub async fn upsert_steps(conn: &mut Conn<B>, steps: &[&StepRecord]) -> Result<(), StoreError> {
        // A multi-row upsert may not name the same row twice; keep each step's last record.
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(steps.len());
        let mut last: Vec<&StepRecord> = Vec::with_capacity(steps.len());
        for step in steps.iter().rev() {
            if seen.insert((step.run_id.as_str(), step.step_id.as_str())) {
                last.push(step);
            }
        }
        last.reverse();
        for chunk in last.chunks(B::DIALECT.rows_per_insert) {
            let outputs: Vec<String> = chunk
                .iter()
                .map(|s| to_json(&s.outputs))
                .collect::<Result<_, _>>()?;
            let mut upsert = QueryBuilder::<B::DB>::new(
                "INSERT INTO step_states (run_id, step_id, state, attempt, started_at_ms, \
                 finished_at_ms, exit_status, pgid, note, outputs, stdout, stderr, \
                 updated_at_ms) ",
            );
            upsert.push_values(chunk.iter().zip(&outputs), |mut row, (step, outputs)| {
                row.push_bind(step.run_id.as_str())
                    .push_bind(step.step_id.as_str())
                    .push_bind(step.state.as_str())
                    .push_bind(i64::from(step.attempt))
                    .push_bind(step.started_at_ms)
                    .push_bind(step.finished_at_ms)
                    .push_bind(step.exit_status.map(i64::from))
                    .push_bind(step.pgid.map(i64::from))
                    .push_bind(step.note.as_deref())
                    .push_bind(outputs.as_str());
                if B::DIALECT.output_as_bytes {
                    row.push_bind(step.stdout.as_bytes())
                        .push_bind(step.stderr.as_bytes());
                } else {
                    row.push_bind(step.stdout.as_str())
                        .push_bind(step.stderr.as_str());
                }
                row.push_bind(step.updated_at_ms);
            });
            upsert.push(
                " ON CONFLICT (run_id, step_id) DO UPDATE SET state = excluded.state, \
                 attempt = excluded.attempt, started_at_ms = excluded.started_at_ms, \
                 finished_at_ms = excluded.finished_at_ms, exit_status = excluded.exit_status, \
                 pgid = excluded.pgid, note = excluded.note, outputs = excluded.outputs, \
                 stdout = excluded.stdout, stderr = excluded.stderr, \
                 updated_at_ms = excluded.updated_at_ms",
            );
            upsert.build().execute(&mut *conn).await.map_err(db_error)?;
        }
        Ok(())
    }

    /// Refuses the write (inside its transaction, which excludes other journal writers, and
    /// with the dialect's share lock on the lease row, so no takeover can come between) when a
    /// fence of `events` no longer holds its lease's current token.
    async fn check_fences(conn: &mut Conn<B>, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut checked: Vec<&Fence> = Vec::new();
        for fence in events.iter().filter_map(|e| e.fence.as_ref()) {
            if checked.contains(&fence) {
                continue;
            }
            let token: Option<i64> = sqlx::query_scalar(Statements::of::<B>().fence_token)
                .bind(fence.lease.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
            if token != Some(clamp(fence.token)) {
                return Err(StoreError::fenced(fence));
            }
            checked.push(fence);
        }
        Ok(())
    }

    /// `record_steps` on `conn` (a writer connection): one journal transaction with one
    /// multi-row append of the events, sealed onto the chain end this handle last wrote when
    /// it keeps one, and one multi-row upsert of the step rows. That every run exists is left
    /// to the foreign keys, and named on failure.
    pub(crate) async fn write_steps(
        store: &B,
        conn: &mut Conn<B>,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        let bound = batch
            .iter()
            .map(|(step, event)| event.bind_to(&step.run_id, Some(&step.step_id)))
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = conn
            .begin_with(B::DIALECT.begin_journal)
            .await
            .map_err(db_error)?;
        let hint = store.chain_end_hint();
        let end = hint.and_then(|end| end.lock().unwrap_or_else(PoisonError::into_inner).take());
        let steps: Vec<&StepRecord> = batch.iter().map(|(step, _)| step).collect();
        let written = match Self::append_after(&mut tx, &bound, end).await {
            Ok(sealed) => Self::upsert_steps(&mut tx, &steps).await.map(|()| sealed),
            Err(error) => Err(error),
        };
        let sealed = match written {
            Ok(sealed) => sealed,
            Err(error) => {
                drop(tx);
                if !matches!(error, StoreError::Fenced { .. }) {
                    // On the same connection (the transaction rolled back): an in-memory
                    // SQLite store has no other.
                    for (step, _) in batch {
                        if !Self::run_exists(conn, &step.run_id).await? {
                            return Err(StoreError::run_not_found(&step.run_id));
                        }
                    }
                }
                return Err(error);
            }
        };
        tx.commit().await.map_err(db_error)?;
        if let (Some(hint), Some(last)) = (hint, sealed.last()) {
            *hint.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((last.seq, last.hash.clone()));
        }
        Ok(sealed)
    }
}
