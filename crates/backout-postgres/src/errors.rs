//! The one place where sqlx errors become [`StoreError`]s, and where a failure to open the
//! database is explained: which server, which user, which database, and what to do about it.
//! Expected failures of writes (missing run, duplicate id) are detected with explicit queries
//! under the journal lock, so every sqlx error left is a backend failure.

use backout_store::{BoxError, StoreError};

use crate::location::Target;

/// Why the database at a location could not be opened, in words a user can act on.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OpenProblem {
    message: String,
    #[source]
    cause: Option<BoxError>,
}

/// How a connection attempt failed, as far as a user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenFailure {
    /// Nothing listens at the host and port (or the host name does not resolve).
    Unreachable,
    /// The server refused the user: wrong password, or no `pg_hba.conf` entry / role.
    Authentication,
    /// The server runs, but the database does not exist.
    MissingDatabase,
    /// Anything else (TLS, protocol, migration).
    Other,
}

pub(crate) fn classify(error: &sqlx::Error) -> OpenFailure {
    match error {
        sqlx::Error::Io(_) => OpenFailure::Unreachable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => OpenFailure::Authentication,
            // invalid_catalog_name
            Some("3D000") => OpenFailure::MissingDatabase,
            _ => OpenFailure::Other,
        },
        _ => OpenFailure::Other,
    }
}

/// The [`StoreError::Open`] for a failed connection to `target`.
pub(crate) fn connect_error(target: &Target, error: sqlx::Error) -> StoreError {
    if let Some(message) = crate::location::tls_problem(target, &error) {
        return open_problem(target, message, Some(Box::new(error)));
    }
    let server = &target.server;
    let message = match classify(&error) {
        OpenFailure::Unreachable => format!(
            "cannot reach a PostgreSQL server at {server}: start it (on Debian: \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or fix \
             the host and port in the URL"
        ),
        OpenFailure::Authentication => format!(
            "the PostgreSQL server at {server} refused user `{}`: give the right password in \
             the URL (postgres://USER:PASSWORD@HOST/DATABASE) or in ~/.pgpass, or allow the user \
             in the server's pg_hba.conf",
            target.user
        ),
        OpenFailure::MissingDatabase => format!(
            "database `{}` does not exist on the PostgreSQL server at {server}: create it \
             (`createdb -h HOST -p PORT -U {} {}`, or `CREATE DATABASE {}`) and try again; \
             backout creates its tables itself",
            target.database, target.user, target.database, target.database
        ),
        OpenFailure::Other => format!("cannot connect to the PostgreSQL server at {server}"),
    };
    open_problem(target, message, Some(Box::new(error)))
}

/// A [`StoreError::Open`] at `target` with `message` (and the sqlx error behind it).
pub(crate) fn open_problem(
    target: &Target,
    message: String,
    cause: Option<BoxError>,
) -> StoreError {
    StoreError::Open {
        location: target.location.clone(),
        source: Box::new(OpenProblem { message, cause }),
    }
}
