//! Rehearsal evidence, for both backends: one immutable row per successful rehearsal, written
//! with its event.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Sql, SqlBackend, db_error, to_json};
use crate::{Entity, Event, Evidence, EvidenceFilter, NewEvent, RunKind, RunState, StoreError};

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
    pub(crate) async fn record_evidence(
        store: &B,
        evidence: &Evidence,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = event.bind_to(&evidence.run_id, None)?;
        let mut tx = Self::begin_journal(store).await?;
        let run: Option<(String, String)> =
            sqlx::query_as("SELECT kind, state FROM runs WHERE id = $1")
                .bind(evidence.run_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some((kind, state)) = run else {
            return Err(StoreError::run_not_found(&evidence.run_id));
        };
        if kind != RunKind::Rehearsal.as_str() || state != RunState::Succeeded.as_str() {
            return Err(StoreError::invalid(format!(
                "run `{}` is a {kind} run in state {state}; only a succeeded rehearsal is evidence",
                evidence.run_id
            )));
        }
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM evidence WHERE id = $1 OR run_id = $2 LIMIT 1")
                .bind(evidence.id.as_str())
                .bind(evidence.run_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if let Some(existing) = taken {
            return Err(StoreError::Conflict {
                entity: Entity::Evidence,
                id: existing,
            });
        }
        Self::insert_evidence(&mut tx, evidence).await?;
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    /// Inserts an evidence row as it is; also the bulk import's way in.
    pub async fn insert_evidence(
        conn: &mut <B::DB as Database>::Connection,
        evidence: &Evidence,
    ) -> Result<(), StoreError> {
        let round_trip = evidence.round_trip.as_ref().map(to_json).transpose()?;
        sqlx::query(
            "INSERT INTO evidence (id, run_id, plan_hash, service, environment, actor, \
             started_at_ms, finished_at_ms, steps, contingencies, round_trip, recorded_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(evidence.id.as_str())
        .bind(evidence.run_id.as_str())
        .bind(evidence.plan_hash.as_str())
        .bind(evidence.service.as_str())
        .bind(evidence.environment.as_str())
        .bind(evidence.actor.as_str())
        .bind(evidence.started_at_ms)
        .bind(evidence.finished_at_ms)
        .bind(to_json(&evidence.steps)?.as_str())
        .bind(to_json(&evidence.contingencies)?.as_str())
        .bind(round_trip.as_deref())
        .bind(evidence.recorded_at_ms)
        .execute(conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn get_evidence(store: &B, id: &str) -> Result<Evidence, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            evidence_columns!(),
            " FROM evidence WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::NotFound {
            entity: Entity::Evidence,
            id: id.to_owned(),
        })?;
        Self::evidence_from_row(&row)
    }

    pub(crate) async fn evidence_of_run(
        store: &B,
        run_id: &str,
    ) -> Result<Option<Evidence>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            evidence_columns!(),
            " FROM evidence WHERE run_id = $1"
        ))
        .bind(run_id)
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?;
        row.as_ref().map(Self::evidence_from_row).transpose()
    }

    pub(crate) async fn list_evidence(
        store: &B,
        filter: &EvidenceFilter,
        limit: u32,
    ) -> Result<Vec<Evidence>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            evidence_columns!(),
            " FROM evidence WHERE (CAST($1 AS TEXT) IS NULL OR plan_hash = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR service = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR environment = $3) \
             ORDER BY finished_at_ms DESC, id DESC LIMIT $4"
        ))
        .bind(filter.plan_hash.as_deref())
        .bind(filter.service.as_deref())
        .bind(filter.environment.as_deref())
        .bind(i64::from(limit))
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::evidence_from_row).collect()
    }
}
