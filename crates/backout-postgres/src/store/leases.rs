//! Leases in PostgreSQL: taken and renewed with single statements that lock their row, so
//! concurrent replicas never both win; and the fence check of journal writes, which share-locks
//! the lease row so a takeover waits for a write made under the old token to commit.

use backout_store::{Fence, Lease, check_lease_request};

use super::*;

macro_rules! lease_columns {
    () => {
        "name, owner, token, expires_at_ms"
    };
}

fn lease_from_row(row: &sqlx::postgres::PgRow) -> Result<Lease, StoreError> {
    let token: i64 = row.try_get("token").map_err(db_error)?;
    Ok(Lease {
        name: row.try_get("name").map_err(db_error)?,
        owner: row.try_get("owner").map_err(db_error)?,
        token: u64::try_from(token)
            .map_err(|_| StoreError::corrupt(format!("lease token {token} is negative")))?,
        expires_at_ms: row.try_get("expires_at_ms").map_err(db_error)?,
    })
}

pub(super) async fn acquire_lease(
    store: &PostgresStore,
    name: &str,
    owner: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<Lease>, StoreError> {
    check_lease_request(name, owner, ttl_ms)?;
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
        lease_columns!(),
        ""
    ))
    .bind(name)
    .bind(owner)
    .bind(now_ms)
    .bind(ttl_ms)
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?;
    row.as_ref().map(lease_from_row).transpose()
}

pub(super) async fn renew_lease(
    store: &PostgresStore,
    lease: &Lease,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<Lease>, StoreError> {
    check_lease_request(&lease.name, &lease.owner, ttl_ms)?;
    let row = sqlx::query(concat!(
        "UPDATE leases SET expires_at_ms = $1 + $2 \
         WHERE name = $3 AND owner = $4 AND token = $5 RETURNING ",
        lease_columns!(),
        ""
    ))
    .bind(now_ms)
    .bind(ttl_ms)
    .bind(&lease.name)
    .bind(&lease.owner)
    .bind(clamp_id(lease.token))
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?;
    row.as_ref().map(lease_from_row).transpose()
}

pub(super) async fn release_lease(store: &PostgresStore, lease: &Lease) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE leases SET owner = '', expires_at_ms = 0 \
         WHERE name = $1 AND owner = $2 AND token = $3",
    )
    .bind(&lease.name)
    .bind(&lease.owner)
    .bind(clamp_id(lease.token))
    .execute(&store.pool)
    .await
    .map_err(db_error)?;
    Ok(())
}

pub(super) async fn leases(store: &PostgresStore, prefix: &str) -> Result<Vec<Lease>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        lease_columns!(),
        " FROM leases WHERE starts_with(name, $1) ORDER BY name"
    ))
    .bind(prefix)
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(lease_from_row).collect()
}

/// Refuses the write (inside its transaction) when a fence of `events` no longer holds its
/// lease's current token. The row is share-locked until the write commits: a replica taking
/// the lease over waits for it, so what it reads next includes this write.
pub(super) async fn check_fences(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    let mut checked: Vec<&Fence> = Vec::new();
    for fence in events.iter().filter_map(|e| e.fence.as_ref()) {
        if checked.contains(&fence) {
            continue;
        }
        let token: Option<i64> =
            sqlx::query_scalar("SELECT token FROM leases WHERE name = $1 FOR SHARE")
                .bind(&fence.lease)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
        if token != Some(clamp_id(fence.token)) {
            return Err(StoreError::fenced(fence));
        }
        checked.push(fence);
    }
    Ok(())
}
