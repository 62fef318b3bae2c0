//! [`PostgresStore`]: opening (URL, connection, migrations) and PostgreSQL's [`SqlBackend`]
//! side of the shared store logic (`backout_store::sql`), which gives it its
//! [`backout_store::Store`] implementation.
//!
//! Every write that appends to the journal is one transaction that first takes the journal's
//! transaction-level advisory lock ([`JOURNAL_LOCK_KEY`]), then checks, changes the record and
//! appends its events: like SQLite's `BEGIN IMMEDIATE`, this serializes writers across every
//! process using the database, so `seq` is gap-free, the chain is linear, and the existence
//! checks that turn into `NotFound`/`Conflict` cannot race. Delivery claims and attempts append
//! nothing and lock only their rows (`FOR UPDATE SKIP LOCKED`). Reads never wait for the lock.
//! Leases are taken and renewed with one row-locking statement each, and a write made under a
//! lease share-locks its row while checking the fencing token.

use std::fmt;
use std::time::Duration;

use backout_store::StoreError;
use backout_store::sql::{Dialect, SqlBackend};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Postgres};

use crate::errors::{connect_error, open_problem};
use crate::location::parse_url;

static MIGRATOR: Migrator = sqlx::migrate!();

/// The key of the advisory lock that serializes journal appends (`"backout1"` as a big-endian
/// integer). Any session holding it with `pg_advisory_xact_lock` blocks every store writer.
pub const JOURNAL_LOCK_KEY: i64 = 0x6261_636b_6f75_7431;

/// Starts a write: one round trip for `BEGIN` and the journal lock (the key is
/// [`JOURNAL_LOCK_KEY`], checked by a unit test).
const BEGIN_WRITE: &str = "BEGIN; SELECT pg_advisory_xact_lock(7089056601540490289)";

/// How long opening waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write waits for the journal lock (or a row lock) before failing, like SQLite's
/// busy timeout.
const LOCK_TIMEOUT: &str = "10s";

/// Connections per store handle: readers run in parallel, writers queue on the journal lock.
const MAX_CONNECTIONS: u32 = 8;

/// A [`backout_store::Store`] in one PostgreSQL database. Cheap to clone: clones share the connection pool.
///
/// Any number of handles, in any number of processes, may use the same database: the journal
/// lock serializes their writes, so `seq` and the chain stay well defined.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    location: String,
}

impl fmt::Debug for PostgresStore {
    /// Only the location: the pool's options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens the database named by `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or
    /// `postgresql://`) and applies pending migrations. The database must exist; its tables
    /// are created here. Several processes may open a new database at once: sqlx's migrator
    /// holds a session advisory lock while it migrates, so each migration is applied once.
    ///
    /// Errors are [`StoreError::Invalid`] for a URL that is not one, else [`StoreError::Open`]
    /// whose source ([`crate::OpenProblem`]) says what failed where (server unreachable, user
    /// refused, database missing, migration failed) and what to do.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let target = parse_url(url)?;
        let mut options = target
            .options
            .clone()
            .options([("lock_timeout", LOCK_TIMEOUT)]);
        if options.get_application_name().is_none() {
            options = options.application_name("backout");
        }
        let connecting = PgConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_elapsed) => {
                return Err(open_problem(
                    &target,
                    format!(
                        "no answer from a PostgreSQL server at {} within {}s: check the host and \
                         port in the URL, and that the server is up and reachable",
                        target.server,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    None,
                ));
            }
            Ok(Err(error)) => return Err(connect_error(&target, error)),
            Ok(Ok(conn)) => conn,
        };
        // `run_direct` is `run` on a connection without the `Acquire` bound whose lifetime
        // makes `open`'s future not `Send` (sqlx's own workaround); it takes the same lock.
        let migrated = MIGRATOR.run_direct(None, &mut conn, false).await;
        // Closing also ends the migrator's session lock if migrating failed half-way.
        let _ = conn.close().await;
        if let Err(error) = migrated {
            let message = match &error {
                MigrateError::VersionMissing(version) => format!(
                    "database `{}` on {} has migration {version}, which this backout does not \
                     know: it was written by a newer backout; upgrade backout",
                    target.database, target.server
                ),
                _ => format!(
                    "cannot create or migrate backout's tables in database `{}` on {}: check \
                     that user `{}` may create tables there",
                    target.database, target.server, target.user
                ),
            };
            return Err(open_problem(&target, message, Some(Box::new(error))));
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options);
        Ok(PostgresStore {
            pool,
            location: target.location,
        })
    }

    /// `postgres://USER@HOST:PORT/DATABASE`: where this store is, without the password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The connection pool, for the bulk import (`crate::import`), which writes outside the
    /// [`Store`] methods.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection of this handle (and its clones).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// PostgreSQL's side of the shared store: the journal's advisory lock serializes appends, row
/// locks serialize claims and lease changes, reads see one snapshot where they need it,
/// identity columns keep insertion order, and captured output is `BYTEA` (it may hold NUL).
/// No cached chain end: a failed statement aborts a PostgreSQL transaction, so a stale guess
/// could not be retried in it.
impl SqlBackend for PostgresStore {
    type DB = Postgres;

    const DIALECT: Dialect = Dialect {
        begin_journal: BEGIN_WRITE,
        // Claims, attempts and leases lock only their rows; they append nothing.
        begin_rows: "BEGIN",
        begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        insertion_order: "position",
        lock_for_update: " FOR UPDATE",
        // A dispatcher claiming at the same moment takes other rows instead of waiting; rows
        // it claimed and committed no longer match (the recheck of FOR UPDATE).
        skip_locked: " FOR UPDATE SKIP LOCKED",
        // A replica taking the lease over waits for the write, so it reads what was written.
        lock_for_share: " FOR SHARE",
        json_texts_of_2: "SELECT json_array_elements_text(CAST($2 AS json))",
        output_as_bytes: true,
        // 13 parameters a row at the most, far below PostgreSQL's 65535; and one NOTIFY per
        // statement (migration 0004), so a round of a thousand measurements costs one.
        rows_per_insert: 1000,
        relaxed_commit: None,
    };

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_write_locks_the_journal_key() {
        assert!(
            BEGIN_WRITE.ends_with(&format!("pg_advisory_xact_lock({JOURNAL_LOCK_KEY})")),
            "{BEGIN_WRITE}"
        );
    }
}
