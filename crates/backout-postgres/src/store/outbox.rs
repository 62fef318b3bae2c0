//! The notification outbox in PostgreSQL: due deliveries claimed with `FOR UPDATE SKIP LOCKED`
//! under a lease, attempts recorded.

use super::*;

pub(super) async fn due_deliveries(
    store: &PostgresStore,
    now_ms: i64,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE state = 'pending' AND next_attempt_at_ms <= $1 \
         AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1) \
         ORDER BY next_attempt_at_ms, id LIMIT $2"
    ))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(delivery_from_row).collect()
}

pub(super) async fn claim_deliveries(
    store: &PostgresStore,
    claimant: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    if claimant.is_empty() {
        return Err(StoreError::invalid("a claim needs a claimant"));
    }
    // SKIP LOCKED: a dispatcher claiming at the same moment takes other rows instead of
    // waiting; rows it claimed and committed no longer match (the recheck of FOR UPDATE).
    let rows = sqlx::query(concat!(
        "UPDATE deliveries SET claimed_by = $1, claimed_until_ms = $2 WHERE id IN (\
         SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at_ms <= $3 \
         AND (claimed_until_ms IS NULL OR claimed_until_ms <= $3) \
         ORDER BY next_attempt_at_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING ",
        delivery_columns!()
    ))
    .bind(claimant)
    .bind(now_ms.saturating_add(lease_ms.max(0)))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    let mut claimed = rows
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING gives rows in no particular order.
    claimed.sort_by_key(|d| (d.next_attempt_at_ms, d.id));
    Ok(claimed)
}

pub(super) async fn record_delivery_attempt(
    store: &PostgresStore,
    id: u64,
    attempt: &NewAttempt,
    next: DeliveryNext,
) -> Result<Delivery, StoreError> {
    let mut tx = store.pool.begin().await.map_err(db_error)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = $1 FOR UPDATE"
    ))
    .bind(clamp_id(id))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?
    .ok_or_else(|| delivery_not_found(id))?;
    let mut delivery = delivery_from_row(&row)?;
    delivery.apply(attempt, next);
    sqlx::query(
        "UPDATE deliveries SET state = $1, next_attempt_at_ms = $2, claimed_by = $3, \
         claimed_until_ms = $4, attempts = $5, last_error = $6, delivered_at_ms = $7, \
         updated_at_ms = $8 WHERE id = $9",
    )
    .bind(delivery.state.as_str())
    .bind(delivery.next_attempt_at_ms)
    .bind(&delivery.claimed_by)
    .bind(delivery.claimed_until_ms)
    .bind(to_json(&delivery.attempts)?)
    .bind(&delivery.last_error)
    .bind(delivery.delivered_at_ms)
    .bind(delivery.updated_at_ms)
    .bind(clamp_id(id))
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(delivery)
}

pub(super) async fn get_delivery(store: &PostgresStore, id: u64) -> Result<Delivery, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = $1"
    ))
    .bind(clamp_id(id))
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| delivery_not_found(id))?;
    delivery_from_row(&row)
}

pub(super) async fn list_deliveries(
    store: &PostgresStore,
    release_id: Option<&str>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let mut conn = store.pool.acquire().await.map_err(db_error)?;
    let rows = match release_id {
        Some(release_id) => {
            if !release_exists(&mut conn, release_id).await? {
                return Err(release_not_found(release_id));
            }
            sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE release_id = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(release_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
        }
        None => {
            sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries ORDER BY id DESC LIMIT $1"
            ))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
        }
    }
    .map_err(db_error)?;
    rows.iter().map(delivery_from_row).collect()
}

fn delivery_not_found(id: u64) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Delivery,
        id: id.to_string(),
    }
}
