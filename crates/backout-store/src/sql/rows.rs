//! How a row becomes a record, for both backends, and the column lists the queries select,
//! kept side by side so they cannot drift apart. Every number is a 64-bit integer and every
//! JSON value text in both schemas; captured output is text or bytes as the [`Dialect`] says.
//! Anything that does not decode is `Corrupt`.
//!
//! [`Dialect`]: super::Dialect

use std::collections::BTreeMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Sql, SqlBackend};
use crate::{
    Checkpoint, Delivery, DeliveryAttempt, Event, Evidence, ExecutorInfo, Lease, Release, Run,
    StepRecord, StoreError, Token, UnknownName,
};

/// Columns of `runs` that `run_from_row` reads, as a literal for `concat!` (sqlx takes
/// `&'static str` SQL as it is).
macro_rules! run_columns {
    () => {
        "id, plan_hash, plan_source, kind, release_id, environment, actor, state, checkpoints, \
         executor_pid, executor_host, created_at_ms, updated_at_ms, finished_at_ms"
    };
}

/// Columns of `releases` read by `release_from_row`.
macro_rules! release_columns {
    () => {
        "id, plan_hash, plan_source, service, version, rollback_to, environment, actor, state, \
         opened_at_ms, closes_at_ms, closed_at_ms, close_reason"
    };
}

/// Columns of `tokens` read by `token_from_row`.
macro_rules! token_columns {
    () => {
        "id, user_name, role, secret_hash, created_at_ms, created_by, revoked_at_ms, revoked_by"
    };
}

/// Columns of `step_states` read by `step_from_row`.
macro_rules! step_columns {
    () => {
        "run_id, step_id, state, attempt, started_at_ms, finished_at_ms, exit_status, pgid, \
         note, outputs, stdout, stderr, updated_at_ms"
    };
}

/// Columns of `deliveries` read by `delivery_from_row`.
macro_rules! delivery_columns {
    () => {
        "id, event_seq, release_id, run_id, channel, kind, notify_event, state, created_at_ms, \
         next_attempt_at_ms, claimed_by, claimed_until_ms, attempts, last_error, \
         delivered_at_ms, updated_at_ms"
    };
}

/// Columns of `evidence` read by `evidence_from_row`.
macro_rules! evidence_columns {
    () => {
        "id, run_id, plan_hash, service, environment, actor, started_at_ms, finished_at_ms, \
         steps, contingencies, round_trip, recorded_at_ms"
    };
}

/// Columns of `events` read by `event_from_row`.
macro_rules! event_columns {
    () => {
        "seq, at_ms, kind, run_id, step_id, release_id, actor, payload, prev_hash, hash"
    };
}

/// Columns of `leases` read by `lease_from_row`.
macro_rules! lease_columns {
    () => {
        "name, owner, token, expires_at_ms"
    };
}

type DbRow<B> = <<B as SqlBackend>::DB as Database>::Row;

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
    fn get<'r, T>(row: &'r DbRow<B>, column: &str) -> Result<T, StoreError>
    where
        T: Decode<'r, B::DB> + Type<B::DB>,
    {
        row.try_get(column)
            .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
    }

    fn int<T: TryFrom<i64>>(row: &DbRow<B>, column: &str) -> Result<T, StoreError> {
        let value: i64 = Self::get(row, column)?;
        T::try_from(value)
            .map_err(|_| StoreError::corrupt(format!("column `{column}`: {value} is out of range")))
    }

    fn optional_int<T: TryFrom<i64>>(
        row: &DbRow<B>,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        let value: Option<i64> = Self::get(row, column)?;
        value
            .map(|value| {
                T::try_from(value).map_err(|_| {
                    StoreError::corrupt(format!("column `{column}`: {value} is out of range"))
                })
            })
            .transpose()
    }

    fn json<T: serde::de::DeserializeOwned>(row: &DbRow<B>, column: &str) -> Result<T, StoreError> {
        let text: String = Self::get(row, column)?;
        // Strict: a duplicate key would read one way in SQL and another here.
        crate::strict::from_str(&text)
            .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
    }

    /// Captured output: text, or bytes (which may hold NUL) where the dialect stores them so.
    fn output(row: &DbRow<B>, column: &str) -> Result<String, StoreError> {
        if !B::DIALECT.output_as_bytes {
            return Self::get(row, column);
        }
        let bytes: Vec<u8> = Self::get(row, column)?;
        String::from_utf8(bytes)
            .map_err(|error| StoreError::corrupt(format!("column `{column}`: {error}")))
    }

    fn name<T>(row: &DbRow<B>, column: &str) -> Result<T, StoreError>
    where
        T: std::str::FromStr<Err = UnknownName>,
    {
        let text: String = Self::get(row, column)?;
        Ok(text.parse()?)
    }

    pub(crate) fn run_from_row(row: &DbRow<B>) -> Result<Run, StoreError> {
        let executor = match (
            Self::optional_int::<u32>(row, "executor_pid")?,
            Self::get::<Option<String>>(row, "executor_host")?,
        ) {
            (Some(pid), Some(hostname)) => Some(ExecutorInfo { pid, hostname }),
            _ => None,
        };
        Ok(Run {
            id: Self::get(row, "id")?,
            plan_hash: Self::get(row, "plan_hash")?,
            plan_source: Self::get(row, "plan_source")?,
            kind: Self::name(row, "kind")?,
            release_id: Self::get(row, "release_id")?,
            environment: Self::get(row, "environment")?,
            actor: Self::get(row, "actor")?,
            state: Self::name(row, "state")?,
            checkpoints: Self::json::<Vec<String>>(row, "checkpoints")?,
            executor,
            created_at_ms: Self::get(row, "created_at_ms")?,
            updated_at_ms: Self::get(row, "updated_at_ms")?,
            finished_at_ms: Self::get(row, "finished_at_ms")?,
        })
    }

    pub(crate) fn step_from_row(row: &DbRow<B>) -> Result<StepRecord, StoreError> {
        Ok(StepRecord {
            run_id: Self::get(row, "run_id")?,
            step_id: Self::get(row, "step_id")?,
            state: Self::name(row, "state")?,
            attempt: Self::int(row, "attempt")?,
            started_at_ms: Self::get(row, "started_at_ms")?,
            finished_at_ms: Self::get(row, "finished_at_ms")?,
            exit_status: Self::optional_int(row, "exit_status")?,
            pgid: Self::optional_int(row, "pgid")?,
            note: Self::get(row, "note")?,
            outputs: Self::json::<BTreeMap<String, String>>(row, "outputs")?,
            stdout: Self::output(row, "stdout")?,
            stderr: Self::output(row, "stderr")?,
            updated_at_ms: Self::get(row, "updated_at_ms")?,
        })
    }

    pub(crate) fn event_from_row(row: &DbRow<B>) -> Result<Event, StoreError> {
        Ok(Event {
            seq: Self::int(row, "seq")?,
            at_ms: Self::get(row, "at_ms")?,
            kind: Self::get(row, "kind")?,
            run_id: Self::get(row, "run_id")?,
            step_id: Self::get(row, "step_id")?,
            release_id: Self::get(row, "release_id")?,
            actor: Self::get(row, "actor")?,
            payload: Self::json(row, "payload")?,
            prev_hash: Self::get(row, "prev_hash")?,
            hash: Self::get(row, "hash")?,
        })
    }

    /// A release row; its checkpoints are read separately.
    pub(crate) fn release_from_row(row: &DbRow<B>) -> Result<Release, StoreError> {
        Ok(Release {
            id: Self::get(row, "id")?,
            plan_hash: Self::get(row, "plan_hash")?,
            plan_source: Self::get(row, "plan_source")?,
            service: Self::get(row, "service")?,
            version: Self::get(row, "version")?,
            rollback_to: Self::get(row, "rollback_to")?,
            environment: Self::get(row, "environment")?,
            actor: Self::get(row, "actor")?,
            state: Self::name(row, "state")?,
            opened_at_ms: Self::get(row, "opened_at_ms")?,
            closes_at_ms: Self::get(row, "closes_at_ms")?,
            closed_at_ms: Self::get(row, "closed_at_ms")?,
            close_reason: Self::get(row, "close_reason")?,
            checkpoints: Vec::new(),
        })
    }

    pub(crate) fn token_from_row(row: &DbRow<B>) -> Result<Token, StoreError> {
        Ok(Token {
            id: Self::get(row, "id")?,
            user: Self::get(row, "user_name")?,
            role: Self::name(row, "role")?,
            secret_hash: Self::get(row, "secret_hash")?,
            created_at_ms: Self::get(row, "created_at_ms")?,
            created_by: Self::get(row, "created_by")?,
            revoked_at_ms: Self::get(row, "revoked_at_ms")?,
            revoked_by: Self::get(row, "revoked_by")?,
        })
    }

    pub(crate) fn checkpoint_from_row(row: &DbRow<B>) -> Result<Checkpoint, StoreError> {
        Ok(Checkpoint {
            name: Self::get(row, "name")?,
            at_ms: Self::get(row, "at_ms")?,
            actor: Self::get(row, "actor")?,
        })
    }

    pub(crate) fn delivery_from_row(row: &DbRow<B>) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: Self::int(row, "id")?,
            event_seq: Self::int(row, "event_seq")?,
            release_id: Self::get(row, "release_id")?,
            run_id: Self::get(row, "run_id")?,
            channel: Self::get(row, "channel")?,
            kind: Self::name(row, "kind")?,
            notify_event: Self::get(row, "notify_event")?,
            state: Self::name(row, "state")?,
            created_at_ms: Self::get(row, "created_at_ms")?,
            next_attempt_at_ms: Self::get(row, "next_attempt_at_ms")?,
            claimed_by: Self::get(row, "claimed_by")?,
            claimed_until_ms: Self::get(row, "claimed_until_ms")?,
            attempts: Self::json::<Vec<DeliveryAttempt>>(row, "attempts")?,
            last_error: Self::get(row, "last_error")?,
            delivered_at_ms: Self::get(row, "delivered_at_ms")?,
            updated_at_ms: Self::get(row, "updated_at_ms")?,
        })
    }

    pub(crate) fn evidence_from_row(row: &DbRow<B>) -> Result<Evidence, StoreError> {
        let round_trip: Option<String> = Self::get(row, "round_trip")?;
        Ok(Evidence {
            id: Self::get(row, "id")?,
            run_id: Self::get(row, "run_id")?,
            plan_hash: Self::get(row, "plan_hash")?,
            service: Self::get(row, "service")?,
            environment: Self::get(row, "environment")?,
            actor: Self::get(row, "actor")?,
            started_at_ms: Self::get(row, "started_at_ms")?,
            finished_at_ms: Self::get(row, "finished_at_ms")?,
            steps: Self::json(row, "steps")?,
            contingencies: Self::json(row, "contingencies")?,
            round_trip: round_trip
                .map(|text| {
                    serde_json::from_str(&text).map_err(|error| {
                        StoreError::corrupt(format!("column `round_trip`: {error}"))
                    })
                })
                .transpose()?,
            recorded_at_ms: Self::get(row, "recorded_at_ms")?,
        })
    }

    pub(crate) fn lease_from_row(row: &DbRow<B>) -> Result<Lease, StoreError> {
        Ok(Lease {
            name: Self::get(row, "name")?,
            owner: Self::get(row, "owner")?,
            token: Self::int(row, "token")?,
            expires_at_ms: Self::get(row, "expires_at_ms")?,
        })
    }
}
