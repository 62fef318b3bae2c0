//! Writing the journal: sealing events onto the hash chain (read the chain's end once, insert in
//! multi-row statements), the deliveries written with them, and step records.

use backout_store::{GENESIS_HASH, NewDelivery, canonical_json};

use super::*;

pub(super) fn clamp_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(super) async fn run_exists(
    conn: &mut SqliteConnection,
    run_id: &str,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?")
        .bind(run_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// Appends `event` as the next one in the chain, with its deliveries. Must run inside a write
/// transaction.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    event: &NewEvent,
) -> Result<Event, StoreError> {
    append_many(conn, std::slice::from_ref(event))
        .await?
        .pop()
        .ok_or_else(|| StoreError::corrupt("an appended event returned nothing"))
}

/// Events inserted per statement: 10 parameters each, far below SQLite's limit of 32766.
const INSERT_CHUNK: usize = 500;

/// Appends `events` as the next ones in the chain, in order. Must run inside a write
/// transaction. The chain's end is read once and the rows go in with multi-row inserts: a
/// watcher journals a round of thousands of measurements in a few statements.
pub(super) async fn append_many(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
) -> Result<Vec<Event>, StoreError> {
    let mut runs_seen: HashSet<&str> = HashSet::new();
    for event in events {
        if let Some(run_id) = &event.run_id
            && !runs_seen.contains(run_id.as_str())
        {
            if !run_exists(conn, run_id).await? {
                return Err(StoreError::run_not_found(run_id));
            }
            runs_seen.insert(run_id);
        }
    }
    append_after(conn, events, None).await
}

/// The end of the chain (`seq`, `hash`) as last read, or `(0, GENESIS_HASH)` when empty.
pub(super) async fn chain_end(conn: &mut SqliteConnection) -> Result<(u64, String), StoreError> {
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

/// Appends `events` (whose runs the caller checked, or lets the foreign keys check) after the
/// chain's end. `end` is where the caller believes the chain ends (this store's last append):
/// when it is stale (another handle appended since), the first insert collides with the
/// existing `seq` (seqs are gap-free and never deleted, so any later append took `end.seq + 1`),
/// and the end is read and the events sealed again, in the same transaction. A `None` end is
/// read first.
pub(super) async fn append_after(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    end: Option<(u64, String)>,
) -> Result<Vec<Event>, StoreError> {
    for event in events {
        event.check_deliveries()?;
    }
    super::leases::check_fences(conn, events).await?;
    // A guess is tried only when one statement inserts every event (so a failure inserted
    // none of them).
    let guess = end.filter(|_| events.len() <= INSERT_CHUNK);
    let guessed = guess.is_some();
    let end = match guess {
        Some(end) => end,
        None => chain_end(conn).await?,
    };
    let sealed = match insert_sealed(conn, events, end).await {
        Ok(sealed) => sealed,
        Err(_) if guessed => {
            // A multi-row INSERT that fails inserts nothing (the statement is rolled back, not
            // the transaction): read the real end and seal again.
            let end = chain_end(conn).await?;
            insert_sealed(conn, events, end).await.map_err(db_error)?
        }
        Err(error) => return Err(db_error(error)),
    };
    for (event, stored) in events.iter().zip(&sealed) {
        if !event.deliveries.is_empty() {
            insert_deliveries(conn, stored, &event.deliveries).await?;
        }
    }
    Ok(sealed)
}

/// Seals `events` onto the chain after `end` and inserts them.
async fn insert_sealed(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    end: (u64, String),
) -> Result<Vec<Event>, sqlx::Error> {
    let (last_seq, mut prev_hash) = end;
    let mut sealed = Vec::with_capacity(events.len());
    for (seq, event) in (last_seq + 1..).zip(events) {
        let event = event.seal(seq, &prev_hash);
        prev_hash.clone_from(&event.hash);
        sealed.push(event);
    }
    for chunk in sealed.chunks(INSERT_CHUNK) {
        let payloads: Vec<String> = chunk.iter().map(|e| canonical_json(&e.payload)).collect();
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (seq, at_ms, kind, run_id, step_id, release_id, actor, payload, \
             prev_hash, hash) ",
        );
        insert.push_values(chunk.iter().zip(&payloads), |mut row, (e, payload)| {
            row.push_bind(clamp_seq(e.seq))
                .push_bind(e.at_ms)
                .push_bind(&e.kind)
                .push_bind(&e.run_id)
                .push_bind(&e.step_id)
                .push_bind(&e.release_id)
                .push_bind(&e.actor)
                .push_bind(payload)
                .push_bind(&e.prev_hash)
                .push_bind(&e.hash);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(sealed)
}

/// The outbox rows of a just-appended event, pending and due at the event's time.
async fn insert_deliveries(
    conn: &mut SqliteConnection,
    event: &Event,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let release_id = match (&event.release_id, &event.run_id) {
        (Some(release_id), _) => Some(release_id.clone()),
        (None, Some(run_id)) => {
            sqlx::query_scalar::<_, Option<String>>("SELECT release_id FROM runs WHERE id = ?")
                .bind(run_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?
                .flatten()
        }
        (None, None) => None,
    };
    for delivery in deliveries {
        sqlx::query(
            "INSERT INTO deliveries (event_seq, release_id, run_id, channel, kind, notify_event, \
             state, created_at_ms, next_attempt_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
        )
        .bind(clamp_seq(event.seq))
        .bind(&release_id)
        .bind(&event.run_id)
        .bind(&delivery.channel)
        .bind(delivery.kind.as_str())
        .bind(&delivery.notify_event)
        .bind(event.at_ms)
        .bind(event.at_ms)
        .bind(event.at_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

pub(super) fn clamp_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::invalid(error.to_string()))
}

/// Step rows per statement: 13 parameters each, far below SQLite's limit of 32766.
const UPSERT_CHUNK: usize = 500;

/// Inserts or updates the rows of `steps` with one statement (per [`UPSERT_CHUNK`]): a batch
/// of the scheduling loop costs one round trip to the database, not one per step. Two records
/// of the same step in one batch: the last wins.
pub(super) async fn upsert_steps(
    conn: &mut SqliteConnection,
    steps: &[&StepRecord],
) -> Result<(), StoreError> {
    // A multi-row upsert may not name the same row twice; keep each step's last record.
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(steps.len());
    let mut last: Vec<&StepRecord> = Vec::with_capacity(steps.len());
    for step in steps.iter().rev() {
        if seen.insert((step.run_id.as_str(), step.step_id.as_str())) {
            last.push(step);
        }
    }
    last.reverse();
    for chunk in last.chunks(UPSERT_CHUNK) {
        let outputs: Vec<String> = chunk
            .iter()
            .map(|s| to_json(&s.outputs))
            .collect::<Result<_, _>>()?;
        let mut upsert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO step_states (run_id, step_id, state, attempt, started_at_ms, \
             finished_at_ms, exit_status, pgid, note, outputs, stdout, stderr, updated_at_ms) ",
        );
        upsert.push_values(chunk.iter().zip(&outputs), |mut row, (step, outputs)| {
            row.push_bind(&step.run_id)
                .push_bind(&step.step_id)
                .push_bind(step.state.as_str())
                .push_bind(i64::from(step.attempt))
                .push_bind(step.started_at_ms)
                .push_bind(step.finished_at_ms)
                .push_bind(step.exit_status)
                .push_bind(step.pgid)
                .push_bind(&step.note)
                .push_bind(outputs)
                .push_bind(&step.stdout)
                .push_bind(&step.stderr)
                .push_bind(step.updated_at_ms);
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
