//! The one place where sqlx errors become [`StoreError`]s. Expected failures (missing run,
//! duplicate id) are detected with explicit queries inside the write transaction, so every sqlx
//! error left is a backend failure.

use backout_store::StoreError;

/// A failed query, connection or transaction.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// The database at `location` could not be opened, created or migrated.
pub(crate) fn open_error(location: &str, error: impl Into<backout_store::BoxError>) -> StoreError {
    StoreError::Open {
        location: location.to_owned(),
        source: error.into(),
    }
}
