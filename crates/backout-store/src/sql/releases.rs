//! Releases, their checkpoints and window, and the counts `/metrics` reports, for both
//! backends.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Sql, SqlBackend, Statements, clamp, db_error, to_json};
use crate::{
    Checkpoint, Counts, Entity, Event, NewEvent, NewRelease, Release, STATE_QUERIES, StoreError,
};

type Conn<B> = <<B as SqlBackend>::DB as Database>::Connection;

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
    pub(crate) async fn create_release(
        store: &B,
        release: &NewRelease,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, &release.id)?;
        let mut tx = Self::begin_journal(store).await?;
        if Self::release_exists(&mut tx, &release.id).await? {
            return Err(StoreError::Conflict {
                entity: Entity::Release,
                id: release.id.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO releases (id, plan_hash, plan_source, service, version, rollback_to, \
             environment, actor, state, opened_at_ms, closes_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10)",
        )
        .bind(release.id.as_str())
        .bind(release.plan_hash.as_str())
        .bind(release.plan_source.as_str())
        .bind(release.service.as_str())
        .bind(release.version.as_str())
        .bind(release.rollback_to.as_str())
        .bind(release.environment.as_str())
        .bind(release.actor.as_str())
        .bind(release.opened_at_ms)
        .bind(release.closes_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    pub(crate) async fn get_release(store: &B, release_id: &str) -> Result<Release, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE id = $1"
        ))
        .bind(release_id)
        .fetch_optional(store.reader())
        .await
        .map_err(db_error)?
        .ok_or_else(|| release_not_found(release_id))?;
        let mut release = Self::release_from_row(&row)?;
        release.checkpoints = Self::checkpoints(store, release_id).await?;
        Ok(release)
    }

    async fn checkpoints(store: &B, release_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(Statements::of::<B>().checkpoints_of_release)
            .bind(release_id)
            .fetch_all(store.reader())
            .await
            .map_err(db_error)?;
        rows.iter().map(Self::checkpoint_from_row).collect()
    }

    pub(crate) async fn release_events(
        store: &B,
        release_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        if !Self::release_exists(&mut conn, release_id).await? {
            return Err(release_not_found(release_id));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE release_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(release_id)
        .bind(clamp(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(Self::event_from_row).collect()
    }

    /// The events of one release whose kind is one of `kinds`: the database skips the rest
    /// (a release's measurements) before anything is decoded.
    pub(crate) async fn release_events_of_kinds(
        store: &B,
        release_id: &str,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        if !Self::release_exists(&mut conn, release_id).await? {
            return Err(release_not_found(release_id));
        }
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let kinds = to_json(&kinds)?;
        let rows = sqlx::query(Statements::of::<B>().release_events_of_kinds)
            .bind(clamp(after_seq))
            .bind(kinds.as_str())
            .bind(i64::from(limit))
            .bind(release_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        rows.iter().map(Self::event_from_row).collect()
    }

    /// Walks the release's index (`events_by_release`) backwards from its newest event, so the
    /// cost is the number of events after the newest one of `kind`, not the release's history.
    pub(crate) async fn last_release_event(
        store: &B,
        release_id: &str,
        kind: &str,
    ) -> Result<Option<Event>, StoreError> {
        let mut conn = store.reader().acquire().await.map_err(db_error)?;
        if !Self::release_exists(&mut conn, release_id).await? {
            return Err(release_not_found(release_id));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE release_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1"
        ))
        .bind(release_id)
        .bind(kind)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        row.as_ref().map(Self::event_from_row).transpose()
    }

    pub(crate) async fn list_releases(store: &B, limit: u32) -> Result<Vec<Release>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases ORDER BY opened_at_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(store.reader())
        .await
        .map_err(db_error)?;
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut release = Self::release_from_row(row)?;
            release.checkpoints = Self::checkpoints(store, &release.id).await?;
            releases.push(release);
        }
        Ok(releases)
    }

    pub(crate) async fn counts(
        store: &B,
        close_reason_prefixes: &[&str],
    ) -> Result<Counts, StoreError> {
        // One read transaction: every count comes from the same snapshot.
        let mut tx = Self::begin_snapshot(store).await?;
        let mut groups: [Vec<(String, i64)>; 3] = Default::default();
        for (query, rows) in STATE_QUERIES.into_iter().zip(&mut groups) {
            *rows = sqlx::query_as(query)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let mut counts = Counts::tally(groups);
        for prefix in close_reason_prefixes {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM releases WHERE state = 'closed' \
                 AND substr(close_reason, 1, length(CAST($1 AS TEXT))) = CAST($1 AS TEXT)",
            )
            .bind(*prefix)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            counts.closed_by_reason.push(n.unsigned_abs());
        }
        tx.commit().await.map_err(db_error)?;
        Ok(counts)
    }

    pub(crate) async fn open_releases(store: &B) -> Result<Vec<Release>, StoreError> {
        // One snapshot for both queries, so a release closing in between cannot lose or gain
        // checkpoints.
        let mut tx = Self::begin_snapshot(store).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            " FROM releases WHERE state = 'open' ORDER BY opened_at_ms, id"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        // One query for the checkpoints of all of them, not one per release.
        let checkpoint_rows = sqlx::query(Statements::of::<B>().checkpoints_of_open_releases)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut by_release: HashMap<String, Vec<Checkpoint>> = HashMap::new();
        for row in &checkpoint_rows {
            let id: String = row.try_get("release_id").map_err(db_error)?;
            by_release
                .entry(id)
                .or_default()
                .push(Self::checkpoint_from_row(row)?);
        }
        let mut releases = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut release = Self::release_from_row(row)?;
            release.checkpoints = by_release.remove(&release.id).unwrap_or_default();
            releases.push(release);
        }
        Ok(releases)
    }

    pub(crate) async fn record_checkpoint(
        store: &B,
        release_id: &str,
        checkpoint: &Checkpoint,
        close: Option<&str>,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, release_id)?;
        let mut tx = Self::begin_journal(store).await?;
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM releases WHERE id = $1")
            .bind(release_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        match state.as_deref() {
            None => return Err(release_not_found(release_id)),
            Some("closed") => {
                return Err(StoreError::invalid(format!(
                    "release `{release_id}` is closed"
                )));
            }
            Some(_) => {}
        }
        let inserted = sqlx::query(
            "INSERT INTO release_checkpoints (release_id, name, at_ms, actor) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (release_id, name) DO NOTHING",
        )
        .bind(release_id)
        .bind(checkpoint.name.as_str())
        .bind(checkpoint.at_ms)
        .bind(checkpoint.actor.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if B::rows_affected(&inserted) == 0 {
            return Err(StoreError::Conflict {
                entity: Entity::Checkpoint,
                id: checkpoint.name.clone(),
            });
        }
        if let Some(reason) = close {
            Self::close_window(&mut tx, release_id, checkpoint.at_ms, reason).await?;
        }
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    pub(crate) async fn close_release(
        store: &B,
        release_id: &str,
        at_ms: i64,
        reason: &str,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let event = bind_release(event, release_id)?;
        let mut tx = Self::begin_journal(store).await?;
        if !Self::release_exists(&mut tx, release_id).await? {
            return Err(release_not_found(release_id));
        }
        if !Self::close_window(&mut tx, release_id, at_ms, reason).await? {
            return Err(StoreError::invalid(format!(
                "the window of release `{release_id}` is already closed"
            )));
        }
        let sealed = Self::append(&mut tx, &event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(sealed)
    }

    pub(crate) async fn release_exists(
        conn: &mut Conn<B>,
        release_id: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM releases WHERE id = $1")
            .bind(release_id)
            .fetch_optional(conn)
            .await
            .map_err(db_error)?;
        Ok(found.is_some())
    }

    /// Closes an open release; closing a closed one keeps its first closing.
    async fn close_window(
        conn: &mut Conn<B>,
        release_id: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE releases SET state = 'closed', closed_at_ms = $1, close_reason = $2 \
             WHERE id = $3 AND state = 'open'",
        )
        .bind(at_ms)
        .bind(reason)
        .bind(release_id)
        .execute(conn)
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) == 1)
    }
}

pub(crate) fn release_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        entity: Entity::Release,
        id: id.to_owned(),
    }
}

/// The event written with a release change names that release.
fn bind_release(event: &NewEvent, release_id: &str) -> Result<NewEvent, StoreError> {
    match &event.release_id {
        Some(given) if given != release_id => Err(StoreError::invalid(format!(
            "event names release `{given}` but is written with release `{release_id}`"
        ))),
        _ => Ok(event.clone().release(release_id)),
    }
}
