//! Opening errors of the SQLite file. Query errors become [`StoreError`]s in one shared place
//! (`backout_store::sql::db_error`): expected failures (missing run, duplicate id) are detected
//! with explicit queries inside the write transaction, so every sqlx error left is a backend
//! failure.

use backout_store::StoreError;

/// The database at `location` could not be opened, created or migrated.
pub(crate) fn open_error(location: &str, error: impl Into<backout_store::BoxError>) -> StoreError {
    StoreError::Open {
        location: location.to_owned(),
        source: error.into(),
    }
}
