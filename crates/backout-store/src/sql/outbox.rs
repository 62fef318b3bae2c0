//! The notification outbox, for both backends: deliveries due, claimed under a lease (rows
//! picked with the dialect's `skip_locked`, so concurrent claimants take different ones), and
//! attempts recorded on the row read with the dialect's `lock_for_update`.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::releases::release_not_found;
use super::{Sql, SqlBackend, Statements, clamp, db_error, to_json};
use crate::{Delivery, DeliveryNext, Entity, NewAttempt, StoreError};

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
    pub(crate) async fn due_deliveries(
        store: &B,
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
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::delivery_from_row).collect()
    }

    pub(crate) async fn claim_deliveries(
        store: &B,
        claimant: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        if claimant.is_empty() {
            return Err(StoreError::invalid("a claim needs a claimant"));
        }
        let mut tx = Self::begin_rows(store).await?;
        let rows = sqlx::query(Statements::of::<B>().claim_deliveries)
            .bind(claimant)
            .bind(now_ms.saturating_add(lease_ms.max(0)))
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut claimed = rows
            .iter()
            .map(Self::delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives rows in no particular order.
        claimed.sort_by_key(|d| (d.next_attempt_at_ms, d.id));
        Ok(claimed)
    }

    pub(crate) async fn record_delivery_attempt(
        store: &B,
        id: u64,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<Delivery, StoreError> {
        let mut tx = Self::begin_rows(store).await?;
        let row = sqlx::query(Statements::of::<B>().delivery_for_update)
            .bind(clamp(id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| delivery_not_found(id))?;
        let mut delivery = Self::delivery_from_row(&row)?;
        delivery.apply(attempt, next);
        sqlx::query(
            "UPDATE deliveries SET state = $1, next_attempt_at_ms = $2, claimed_by = $3, \
             claimed_until_ms = $4, attempts = $5, last_error = $6, delivered_at_ms = $7, \
             updated_at_ms = $8 WHERE id = $9",
        )
        .bind(delivery.state.as_str())
        .bind(delivery.next_attempt_at_ms)
        .bind(delivery.claimed_by.as_deref())
        .bind(delivery.claimed_until_ms)
        .bind(to_json(&delivery.attempts)?.as_str())
        .bind(delivery.last_error.as_deref())
        .bind(delivery.delivered_at_ms)
        .bind(delivery.updated_at_ms)
        .bind(clamp(id))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(delivery)
    }

    pub(crate) async fn get_delivery(store: &B, id: u64) -> Result<Delivery, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = $1"
        ))
        .bind(clamp(id))
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?
        .ok_or_else(|| delivery_not_found(id))?;
        Self::delivery_from_row(&row)
    }

    pub(crate) async fn list_deliveries(
        store: &B,
        release_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        let rows = match release_id {
            Some(release_id) => {
                if !Self::release_exists(&mut conn, release_id).await? {
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
        rows.iter().map(Self::delivery_from_row).collect()
    }
}

fn delivery_not_found(id: u64) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Delivery,
        id: id.to_string(),
    }
}
