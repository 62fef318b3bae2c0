//! Where the database is: parsing `postgres://` URLs into connection options, and the
//! password-free description of the target used in every message. Opens no connection.

use std::str::FromStr;

use backout_store::StoreError;
use sqlx::postgres::PgConnectOptions;

/// A parsed `postgres://` URL. Not `Debug`: the options hold the password.
#[derive(Clone)]
pub(crate) struct Target {
    pub options: PgConnectOptions,
    /// `postgres://USER@HOST:PORT/DATABASE`, never with the password.
    pub location: String,
    /// `HOST:PORT`, or the socket directory.
    pub server: String,
    pub user: String,
    pub database: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Target").field(&self.location).finish()
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Parses `postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?OPTIONS]` (or `postgresql://`).
/// Options libpq understands and sqlx supports (`sslmode`, `host` for a socket directory,
/// `application_name`, ...) are kept.
pub(crate) fn parse_url(url: &str) -> Result<Target, StoreError> {
    if !is_postgres_url(url) {
        return Err(StoreError::invalid(format!(
            "`{}` is not a PostgreSQL URL (expected `postgres://USER@HOST:PORT/DATABASE`)",
            redact(url)
        )));
    }
    let options = PgConnectOptions::from_str(url).map_err(|error| {
        StoreError::invalid(format!(
            "`{}` is not a valid PostgreSQL URL: {error}",
            redact(url)
        ))
    })?;
    let server = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let user = options.get_username().to_owned();
    // Without a database name PostgreSQL connects to the database named like the user.
    let database = options.get_database().unwrap_or(&user).to_owned();
    let location = match options.get_socket() {
        Some(socket) => format!("postgres://{user}@/{database}?host={}", socket.display()),
        None => format!("postgres://{user}@{server}/{database}"),
    };
    Ok(Target {
        options,
        location,
        server,
        user,
        database,
    })
}

/// `url` with any password replaced by `***`, for messages about a URL that did not parse.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_leaves_out_the_password() {
        let target = parse_url("postgres://alice:s3cret@db.example:6543/backout").unwrap();
        assert_eq!(target.location, "postgres://alice@db.example:6543/backout");
        assert_eq!(target.server, "db.example:6543");
        assert_eq!(target.user, "alice");
        assert_eq!(target.database, "backout");
    }

    #[test]
    fn defaults_port_and_database() {
        let target = parse_url("postgresql://bob@localhost").unwrap();
        assert_eq!(target.location, "postgres://bob@localhost:5432/bob");
    }

    #[test]
    fn refuses_other_urls_without_echoing_passwords() {
        let error = parse_url("sqlite:///tmp/x.db").unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
        let error = parse_url("postgres://u:pw@host:notaport/db").unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
        assert!(!error.to_string().contains("pw@"), "{error}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=a@b"), "postgres://h/db?x=a@b");
    }
}
