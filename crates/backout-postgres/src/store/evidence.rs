//! Rehearsal evidence in PostgreSQL: one immutable row per successful rehearsal, with its event.

use super::*;

pub(super) async fn record_evidence(
    store: &PostgresStore,
    evidence: &Evidence,
    event: &NewEvent,
) -> Result<Event, StoreError> {
    let event = event.bind_to(&evidence.run_id, None)?;
    let mut tx = store.begin_write().await?;
    let run: Option<(String, String)> =
        sqlx::query_as("SELECT kind, state FROM runs WHERE id = $1")
            .bind(&evidence.run_id)
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
            .bind(&evidence.id)
            .bind(&evidence.run_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
    if let Some(existing) = taken {
        return Err(StoreError::Conflict {
            entity: Entity::Evidence,
            id: existing,
        });
    }
    sqlx::query(
        "INSERT INTO evidence (id, run_id, plan_hash, service, environment, actor, \
         started_at_ms, finished_at_ms, steps, contingencies, round_trip, recorded_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&evidence.id)
    .bind(&evidence.run_id)
    .bind(&evidence.plan_hash)
    .bind(&evidence.service)
    .bind(&evidence.environment)
    .bind(&evidence.actor)
    .bind(evidence.started_at_ms)
    .bind(evidence.finished_at_ms)
    .bind(to_json(&evidence.steps)?)
    .bind(to_json(&evidence.contingencies)?)
    .bind(evidence.round_trip.as_ref().map(to_json).transpose()?)
    .bind(evidence.recorded_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let sealed = append(&mut tx, &event).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(sealed)
}

pub(super) async fn get_evidence(store: &PostgresStore, id: &str) -> Result<Evidence, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        evidence_columns!(),
        " FROM evidence WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| StoreError::NotFound {
        entity: Entity::Evidence,
        id: id.to_owned(),
    })?;
    evidence_from_row(&row)
}

pub(super) async fn evidence_of_run(
    store: &PostgresStore,
    run_id: &str,
) -> Result<Option<Evidence>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        evidence_columns!(),
        " FROM evidence WHERE run_id = $1"
    ))
    .bind(run_id)
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?;
    row.as_ref().map(evidence_from_row).transpose()
}

pub(super) async fn list_evidence(
    store: &PostgresStore,
    filter: &EvidenceFilter,
    limit: u32,
) -> Result<Vec<Evidence>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        evidence_columns!(),
        " FROM evidence WHERE ($1::text IS NULL OR plan_hash = $1) \
         AND ($2::text IS NULL OR service = $2) AND ($3::text IS NULL OR environment = $3) \
         ORDER BY finished_at_ms DESC, id DESC LIMIT $4"
    ))
    .bind(&filter.plan_hash)
    .bind(&filter.service)
    .bind(&filter.environment)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(evidence_from_row).collect()
}
