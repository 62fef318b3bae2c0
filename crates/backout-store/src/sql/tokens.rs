//! API tokens, for both backends: digests only, creation and revocation journaled.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Sql, SqlBackend, db_error};
use crate::{Entity, Event, NewEvent, NewToken, StoreError, Token};

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
    pub(crate) async fn create_token(
        store: &B,
        token: &NewToken,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let mut tx = Self::begin_journal(store).await?;
        let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens WHERE id = $1")
            .bind(token.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if taken.is_some() {
            return Err(StoreError::Conflict {
                entity: Entity::Token,
                id: token.id.clone(),
            });
        }
        Self::insert_token(
            &mut tx,
            &Token {
                id: token.id.clone(),
                user: token.user.clone(),
                role: token.role,
                secret_hash: token.secret_hash.clone(),
                created_at_ms: token.created_at_ms,
                created_by: token.created_by.clone(),
                revoked_at_ms: None,
                revoked_by: None,
            },
        )
        .await?;
        let sealed = Self::append(&mut tx, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    /// Inserts a token row as it is (revoked or not); also the bulk import's way in.
    pub async fn insert_token(
        conn: &mut <B::DB as Database>::Connection,
        token: &Token,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(token.id.as_str())
        .bind(token.user.as_str())
        .bind(token.role.as_str())
        .bind(token.secret_hash.as_str())
        .bind(token.created_at_ms)
        .bind(token.created_by.as_str())
        .bind(token.revoked_at_ms)
        .bind(token.revoked_by.as_deref())
        .execute(conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    pub(crate) async fn get_token(store: &B, id: &str) -> Result<Token, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?
        .ok_or_else(|| token_not_found(id))?;
        Self::token_from_row(&row)
    }

    pub(crate) async fn list_tokens(store: &B) -> Result<Vec<Token>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens ORDER BY created_at_ms, id"
        ))
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::token_from_row).collect()
    }

    pub(crate) async fn revoke_token(
        store: &B,
        id: &str,
        actor: &str,
        at_ms: i64,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let mut tx = Self::begin_journal(store).await?;
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
        let sealed = Self::append(&mut tx, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }
}

fn token_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Token,
        id: id.to_owned(),
    }
}
