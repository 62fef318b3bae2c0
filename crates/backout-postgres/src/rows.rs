//! Decoding of PostgreSQL rows into store records, and the column lists the queries select, kept
//! side by side so they cannot drift apart. Anything that does not decode is `Corrupt`. The
//! same shapes as backout-sqlite's rows: every number is a BIGINT, every JSON value TEXT.

use std::collections::BTreeMap;

use backout_store::{
    Delivery, DeliveryAttempt, Event, Evidence, ExecutorInfo, Run, StepRecord, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};

/// Columns of `runs` that [`run_from_row`] reads, as a literal for `concat!`
/// (sqlx only takes `&'static str` SQL without an explicit assertion).
macro_rules! run_columns {
    () => {
        "id, plan_hash, plan_source, kind, release_id, environment, actor, state, checkpoints, \
         executor_pid, executor_host, created_at_ms, updated_at_ms, finished_at_ms"
    };
}

/// Columns of `releases` read by [`release_from_row`].
macro_rules! release_columns {
    () => {
        "id, plan_hash, plan_source, service, version, rollback_to, environment, actor, state, \
         opened_at_ms, closes_at_ms, closed_at_ms, close_reason"
    };
}

/// Columns of `tokens` read by [`token_from_row`].
macro_rules! token_columns {
    () => {
        "id, user_name, role, secret_hash, created_at_ms, created_by, revoked_at_ms, revoked_by"
    };
}

/// Columns of `step_states` read by [`step_from_row`].
macro_rules! step_columns {
    () => {
        "run_id, step_id, state, attempt, started_at_ms, finished_at_ms, exit_status, pgid, \
         note, outputs, stdout, stderr, updated_at_ms"
    };
}

/// Columns of `deliveries` read by [`delivery_from_row`].
macro_rules! delivery_columns {
    () => {
        "id, event_seq, release_id, run_id, channel, kind, notify_event, state, created_at_ms, \
         next_attempt_at_ms, claimed_by, claimed_until_ms, attempts, last_error, \
         delivered_at_ms, updated_at_ms"
    };
}

/// Columns of `evidence` read by [`evidence_from_row`].
macro_rules! evidence_columns {
    () => {
        "id, run_id, plan_hash, service, environment, actor, started_at_ms, finished_at_ms, \
         steps, contingencies, round_trip, recorded_at_ms"
    };
}

/// Columns of `events` read by [`event_from_row`].
macro_rules! event_columns {
    () => {
        "seq, at_ms, kind, run_id, step_id, release_id, actor, payload, prev_hash, hash"
    };
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(column)
        .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
}

fn int<T: TryFrom<i64>>(row: &PgRow, column: &str) -> Result<T, StoreError> {
    let value: i64 = get(row, column)?;
    T::try_from(value)
        .map_err(|_| StoreError::corrupt(format!("column `{column}`: {value} is out of range")))
}

fn optional_int<T: TryFrom<i64>>(row: &PgRow, column: &str) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = get(row, column)?;
    value
        .map(|value| {
            T::try_from(value).map_err(|_| {
                StoreError::corrupt(format!("column `{column}`: {value} is out of range"))
            })
        })
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T, StoreError> {
    let text: String = get(row, column)?;
    // Strict: a duplicate key would read one way in SQL and another here.
    backout_store::strict::from_str(&text)
        .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
}

/// Text kept as bytes (captured output, which may hold NUL).
fn utf8(row: &PgRow, column: &str) -> Result<String, StoreError> {
    let bytes: Vec<u8> = get(row, column)?;
    String::from_utf8(bytes)
        .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
}

fn name<T>(row: &PgRow, column: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = backout_store::UnknownName>,
{
    let text: String = get(row, column)?;
    Ok(text.parse()?)
}

pub(crate) fn run_from_row(row: &PgRow) -> Result<Run, StoreError> {
    let executor = match (
        optional_int::<u32>(row, "executor_pid")?,
        get::<Option<String>>(row, "executor_host")?,
    ) {
        (Some(pid), Some(hostname)) => Some(ExecutorInfo { pid, hostname }),
        _ => None,
    };
    Ok(Run {
        id: get(row, "id")?,
        plan_hash: get(row, "plan_hash")?,
        plan_source: get(row, "plan_source")?,
        kind: name(row, "kind")?,
        release_id: get(row, "release_id")?,
        environment: get(row, "environment")?,
        actor: get(row, "actor")?,
        state: name(row, "state")?,
        checkpoints: json::<Vec<String>>(row, "checkpoints")?,
        executor,
        created_at_ms: get(row, "created_at_ms")?,
        updated_at_ms: get(row, "updated_at_ms")?,
        finished_at_ms: get(row, "finished_at_ms")?,
    })
}

pub(crate) fn step_from_row(row: &PgRow) -> Result<StepRecord, StoreError> {
    Ok(StepRecord {
        run_id: get(row, "run_id")?,
        step_id: get(row, "step_id")?,
        state: name(row, "state")?,
        attempt: int(row, "attempt")?,
        started_at_ms: get(row, "started_at_ms")?,
        finished_at_ms: get(row, "finished_at_ms")?,
        exit_status: optional_int(row, "exit_status")?,
        pgid: optional_int(row, "pgid")?,
        note: get(row, "note")?,
        outputs: json::<BTreeMap<String, String>>(row, "outputs")?,
        stdout: utf8(row, "stdout")?,
        stderr: utf8(row, "stderr")?,
        updated_at_ms: get(row, "updated_at_ms")?,
    })
}

pub(crate) fn event_from_row(row: &PgRow) -> Result<Event, StoreError> {
    Ok(Event {
        seq: int(row, "seq")?,
        at_ms: get(row, "at_ms")?,
        kind: get(row, "kind")?,
        run_id: get(row, "run_id")?,
        step_id: get(row, "step_id")?,
        release_id: get(row, "release_id")?,
        actor: get(row, "actor")?,
        payload: json(row, "payload")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

/// A release row; its checkpoints are read separately.
pub(crate) fn release_from_row(row: &PgRow) -> Result<backout_store::Release, StoreError> {
    Ok(backout_store::Release {
        id: get(row, "id")?,
        plan_hash: get(row, "plan_hash")?,
        plan_source: get(row, "plan_source")?,
        service: get(row, "service")?,
        version: get(row, "version")?,
        rollback_to: get(row, "rollback_to")?,
        environment: get(row, "environment")?,
        actor: get(row, "actor")?,
        state: name(row, "state")?,
        opened_at_ms: get(row, "opened_at_ms")?,
        closes_at_ms: get(row, "closes_at_ms")?,
        closed_at_ms: get(row, "closed_at_ms")?,
        close_reason: get(row, "close_reason")?,
        checkpoints: Vec::new(),
    })
}

pub(crate) fn token_from_row(row: &PgRow) -> Result<backout_store::Token, StoreError> {
    Ok(backout_store::Token {
        id: get(row, "id")?,
        user: get(row, "user_name")?,
        role: name(row, "role")?,
        secret_hash: get(row, "secret_hash")?,
        created_at_ms: get(row, "created_at_ms")?,
        created_by: get(row, "created_by")?,
        revoked_at_ms: get(row, "revoked_at_ms")?,
        revoked_by: get(row, "revoked_by")?,
    })
}

pub(crate) fn checkpoint_from_row(row: &PgRow) -> Result<backout_store::Checkpoint, StoreError> {
    Ok(backout_store::Checkpoint {
        name: get(row, "name")?,
        at_ms: get(row, "at_ms")?,
        actor: get(row, "actor")?,
    })
}

pub(crate) fn delivery_from_row(row: &PgRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: int(row, "id")?,
        event_seq: int(row, "event_seq")?,
        release_id: get(row, "release_id")?,
        run_id: get(row, "run_id")?,
        channel: get(row, "channel")?,
        kind: name(row, "kind")?,
        notify_event: get(row, "notify_event")?,
        state: name(row, "state")?,
        created_at_ms: get(row, "created_at_ms")?,
        next_attempt_at_ms: get(row, "next_attempt_at_ms")?,
        claimed_by: get(row, "claimed_by")?,
        claimed_until_ms: get(row, "claimed_until_ms")?,
        attempts: json::<Vec<DeliveryAttempt>>(row, "attempts")?,
        last_error: get(row, "last_error")?,
        delivered_at_ms: get(row, "delivered_at_ms")?,
        updated_at_ms: get(row, "updated_at_ms")?,
    })
}

pub(crate) fn evidence_from_row(row: &PgRow) -> Result<Evidence, StoreError> {
    let round_trip: Option<String> = get(row, "round_trip")?;
    Ok(Evidence {
        id: get(row, "id")?,
        run_id: get(row, "run_id")?,
        plan_hash: get(row, "plan_hash")?,
        service: get(row, "service")?,
        environment: get(row, "environment")?,
        actor: get(row, "actor")?,
        started_at_ms: get(row, "started_at_ms")?,
        finished_at_ms: get(row, "finished_at_ms")?,
        steps: json(row, "steps")?,
        contingencies: json(row, "contingencies")?,
        round_trip: round_trip
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|error| StoreError::corrupt(format!("column `round_trip`: {error}")))
            })
            .transpose()?,
        recorded_at_ms: get(row, "recorded_at_ms")?,
    })
}
