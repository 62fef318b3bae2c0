//! API tokens in PostgreSQL: digests only, revocation journaled.

use super::*;

pub(super) async fn create_token(
    store: &PostgresStore,
    token: &NewToken,
    event: &NewEvent,
) -> Result<Event, StoreError> {
    let mut tx = store.begin_write().await?;
    let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = $1")
        .bind(&token.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    if taken.is_some() {
        return Err(StoreError::Conflict {
            entity: Entity::Token,
            id: token.id.clone(),
        });
    }
    sqlx::query(
        "INSERT INTO tokens (id, user_name, role, secret_hash, created_at_ms, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(&token.user)
    .bind(token.role.as_str())
    .bind(&token.secret_hash)
    .bind(token.created_at_ms)
    .bind(&token.created_by)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    let sealed = append(&mut tx, event).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(sealed)
}

pub(super) async fn get_token(store: &PostgresStore, id: &str) -> Result<Token, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&store.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| token_not_found(id))?;
    token_from_row(&row)
}

pub(super) async fn list_tokens(store: &PostgresStore) -> Result<Vec<Token>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM tokens ORDER BY created_at_ms, id"
    ))
    .fetch_all(&store.pool)
    .await
    .map_err(db_error)?;
    rows.iter().map(token_from_row).collect()
}

pub(super) async fn revoke_token(
    store: &PostgresStore,
    id: &str,
    actor: &str,
    at_ms: i64,
    event: &NewEvent,
) -> Result<Event, StoreError> {
    let mut tx = store.begin_write().await?;
    let revoked: Option<Option<i64>> =
        sqlx::query_scalar("SELECT revoked_at_ms FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
    match revoked {
        None => return Err(token_not_found(id)),
        Some(Some(_)) => {
            return Err(StoreError::invalid(format!(
                "token `{id}` is already revoked"
            )));
        }
        Some(None) => {}
    }
    sqlx::query("UPDATE tokens SET revoked_at_ms = $1, revoked_by = $2 WHERE id = $3")
        .bind(at_ms)
        .bind(actor)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let sealed = append(&mut tx, event).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(sealed)
}

fn token_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Token,
        id: id.to_owned(),
    }
}
