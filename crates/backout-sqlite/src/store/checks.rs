//! What an operator (or a test) asks of the SQLite file itself: the connection settings in
//! force, and SQLite's own integrity and foreign key checks.

use super::*;

impl SqliteStore {
    /// The settings of the writer connection, as SQLite reports them.
    pub async fn pragmas(&self) -> Result<SqlitePragmas, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(db_error)?;
        let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(SqlitePragmas {
            journal_mode,
            synchronous,
            foreign_keys: foreign_keys != 0,
            busy_timeout_ms,
        })
    }

    /// Runs SQLite's `integrity_check` and `foreign_key_check`; any finding is `Corrupt`.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db_error)?;
        let findings: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        if findings != ["ok"] {
            return Err(StoreError::corrupt(format!(
                "integrity check of `{}`: {}",
                self.location,
                findings.join("; ")
            )));
        }
        let violations = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        if !violations.is_empty() {
            return Err(StoreError::corrupt(format!(
                "{} foreign key violations in `{}`",
                violations.len(),
                self.location
            )));
        }
        Ok(())
    }
}
