//! How connections to the file are set up (WAL, `synchronous=FULL`, foreign keys, busy
//! timeout) and how its migrations are applied once, whoever opens a new file first.

use super::*;

pub(super) fn connect_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .journal_mode(SqliteJournalMode::Wal)
        // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and
        // the executor relies on a committed step state being there after any crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Applies pending migrations inside one `BEGIN IMMEDIATE` transaction (sqlx runs each migration
/// in a savepoint), so processes opening a new file at the same time migrate it only once.
pub(super) async fn migrate(pool: &SqlitePool, location: &str) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|error| open_error(location, error))?;
    MIGRATOR
        .run(&mut *tx)
        .await
        .map_err(|error| open_error(location, error))?;
    tx.commit()
        .await
        .map_err(|error| open_error(location, error))
}
