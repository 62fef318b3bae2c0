//! Leases, for both backends: taken and renewed with one statement each in a `begin_rows`
//! transaction (SQLite: serialized with every writer; PostgreSQL: the statement locks its
//! row), so concurrent callers never both win. The fence check that journal writes make is in
//! `journal.rs`.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Sql, SqlBackend, clamp, db_error};
use crate::{Lease, StoreError, check_lease_request};

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
    pub(crate) async fn acquire_lease(
        store: &B,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        check_lease_request(name, owner, ttl_ms)?;
        let mut tx = Self::begin_rows(store).await?;
        // The owner keeps its token while its lease is live (a renewal); anyone taking a free,
        // released or expired lease (the same owner after an expiry too) gets the next token.
        let row = sqlx::query(concat!(
            "INSERT INTO leases (",
            lease_columns!(),
            ") VALUES ($1, $2, 1, $3 + $4) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
             token = CASE WHEN leases.owner = excluded.owner AND leases.expires_at_ms > $3 \
                     THEN leases.token ELSE leases.token + 1 END, \
             expires_at_ms = excluded.expires_at_ms \
             WHERE leases.owner = excluded.owner OR leases.owner = '' OR leases.expires_at_ms <= $3 \
             RETURNING ",
            lease_columns!()
        ))
        .bind(name)
        .bind(owner)
        .bind(now_ms)
        .bind(ttl_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let lease = row.as_ref().map(Self::lease_from_row).transpose()?;
        tx.commit().await.map_err(db_error)?;
        Ok(lease)
    }

    pub(crate) async fn renew_lease(
        store: &B,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        check_lease_request(&lease.name, &lease.owner, ttl_ms)?;
        let mut tx = Self::begin_rows(store).await?;
        let row = sqlx::query(concat!(
            "UPDATE leases SET expires_at_ms = $1 + $2 \
             WHERE name = $3 AND owner = $4 AND token = $5 RETURNING ",
            lease_columns!()
        ))
        .bind(now_ms)
        .bind(ttl_ms)
        .bind(lease.name.as_str())
        .bind(lease.owner.as_str())
        .bind(clamp(lease.token))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let renewed = row.as_ref().map(Self::lease_from_row).transpose()?;
        tx.commit().await.map_err(db_error)?;
        Ok(renewed)
    }

    pub(crate) async fn release_lease(store: &B, lease: &Lease) -> Result<(), StoreError> {
        let mut tx = Self::begin_rows(store).await?;
        sqlx::query(
            "UPDATE leases SET owner = '', expires_at_ms = 0 \
             WHERE name = $1 AND owner = $2 AND token = $3",
        )
        .bind(lease.name.as_str())
        .bind(lease.owner.as_str())
        .bind(clamp(lease.token))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub(crate) async fn leases(store: &B, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            lease_columns!(),
            " FROM leases WHERE substr(name, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT) \
             ORDER BY name"
        ))
        .bind(prefix)
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::lease_from_row).collect()
    }
}
