//! Where the database is and how to reach it: parsing `postgres://` URLs into connection
//! options (TLS included: `sslmode`, `sslrootcert`), the password-free description of the target
//! used in every message, and the words for a TLS failure. Opens no connection.
//!
//! TLS follows libpq's `sslmode`, implemented by sqlx with rustls on ring: `disable`, `allow`
//! and `prefer` (the default) never fail for want of TLS; `require` insists on TLS but, like
//! libpq, checks the certificate only when a root certificate is given (`sslrootcert`), in which
//! case it is `verify-ca`; `verify-ca` checks that the certificate chains to `sslrootcert` (or,
//! without it, to the system's trusted roots); `verify-full` also checks that it names the
//! URL's host.

use std::str::FromStr;

use backout_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

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
    /// The `sslmode` in effect (after `require` with a root certificate became `verify-ca`).
    pub ssl_mode: PgSslMode,
    /// Whether a root certificate file is named (`sslrootcert` or `PGSSLROOTCERT`).
    pub root_cert: bool,
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
    let mut options = PgConnectOptions::from_str(url).map_err(|error| {
        StoreError::invalid(format!(
            "`{}` is not a valid PostgreSQL URL: {error}",
            redact(url)
        ))
    })?;
    // libpq checks the certificate under `require` when a root certificate is given; sqlx
    // would not, silently ignoring the certificate the user pointed at.
    let root_cert = has_root_cert(url);
    if matches!(options.get_ssl_mode(), PgSslMode::Require) && root_cert {
        options = options.ssl_mode(PgSslMode::VerifyCa);
    }
    let ssl_mode = options.get_ssl_mode();
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
        ssl_mode,
        root_cert,
    })
}

/// Whether a root certificate is given, in the URL (`sslrootcert`, or sqlx's `ssl-root-cert`)
/// or in `PGSSLROOTCERT`, as sqlx reads them.
fn has_root_cert(url: &str) -> bool {
    let in_url = url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            matches!(key, "sslrootcert" | "ssl-root-cert") && !value.is_empty()
        })
    });
    in_url || std::env::var_os("PGSSLROOTCERT").is_some_and(|value| !value.is_empty())
}

/// The name libpq gives `mode` in a URL.
pub(crate) fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// What a failed TLS negotiation with `target` means and what to do, when `error` is one; `None`
/// for other connection failures. sqlx reports certificate problems as I/O errors carrying
/// rustls's words, so the reason is matched on the error's text.
pub(crate) fn tls_problem(target: &Target, error: &sqlx::Error) -> Option<String> {
    let server = &target.server;
    let mode = ssl_mode_name(target.ssl_mode);
    let text = match error {
        sqlx::Error::Tls(cause) => with_sources(cause.as_ref()),
        // sqlx reads the root certificate while connecting: a missing file is an I/O error.
        sqlx::Error::Io(io) if target.root_cert && io.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "cannot read the root certificate named by `sslrootcert` (sslmode={mode}) for \
                 the PostgreSQL server at {server}: {io}; check the path"
            ));
        }
        sqlx::Error::Io(io) => {
            let text = with_sources(io);
            if !text.contains("certificate") && !text.contains("TLS") {
                return None;
            }
            text
        }
        _ => return None,
    };
    let host = target.options.get_host();
    let message = if text.contains("does not support TLS") {
        format!(
            "the PostgreSQL server at {server} does not offer TLS, which sslmode={mode} \
             requires: turn `ssl = on` in its postgresql.conf, or connect without TLS \
             (sslmode=prefer or disable) on a network you trust"
        )
    } else if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        format!(
            "the certificate of the PostgreSQL server at {server} is not signed by a trusted \
             certificate authority (sslmode={mode}): give the CA's certificate with \
             `sslrootcert=PATH` in the URL, or add the CA to the system's trusted roots"
        )
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        format!(
            "the certificate of the PostgreSQL server at {server} is not valid for host \
             `{host}` (sslmode={mode}): connect with the host name the certificate names, \
             or use sslmode=verify-ca to check only that it is signed by a trusted authority"
        )
    } else if text.contains("Expired") || text.contains("expired") {
        format!(
            "the certificate of the PostgreSQL server at {server} has expired (sslmode={mode}): \
             renew it on the server"
        )
    } else {
        format!("TLS with the PostgreSQL server at {server} failed (sslmode={mode})")
    };
    Some(message)
}

/// `error` and its causes, "a: b: c".
fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
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
    fn require_with_a_root_certificate_checks_it_like_libpq() {
        let target = parse_url("postgres://u@h/db?sslmode=require").unwrap();
        assert!(matches!(target.ssl_mode, PgSslMode::Require));
        let target = parse_url("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert!(matches!(target.ssl_mode, PgSslMode::VerifyCa));
        let target =
            parse_url("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert!(matches!(target.ssl_mode, PgSslMode::VerifyFull));
        let error = parse_url("postgres://u@h/db?sslmode=sometimes").unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?x=a@b"), "postgres://h/db?x=a@b");
    }
}

/// TLS against the test server (127.0.0.1:5432, `ssl = on` with Debian's self-signed "snakeoil"
/// certificate for `localhost`): encrypted connections with `require`, and refusals that say why
/// with `verify-full`.
#[cfg(test)]
mod tls_tests {
    use sqlx::{Connection, PgConnection};

    use super::*;
    use crate::PostgresStore;
    use crate::testing::TestDatabase;

    /// The certificate the Debian server presents (`ssl_cert_file`).
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

    fn with_query(url: &str, query: &str) -> String {
        let joiner = if url.contains('?') { '&' } else { '?' };
        format!("{url}{joiner}{query}")
    }

    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// Whether the session of `url` is encrypted, as the server sees it.
    async fn encrypted(url: &str) -> bool {
        let options = parse_url(url).unwrap().options;
        let mut conn = PgConnection::connect_with(&options).await.unwrap();
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let _ = conn.close().await;
        ssl
    }

    #[tokio::test]
    async fn require_opens_the_store_over_tls() {
        let db = TestDatabase::create().await;
        let url = with_query(db.url(), "sslmode=require");
        let store = PostgresStore::open(&url)
            .await
            .unwrap_or_else(|error| panic!("open over TLS: {}", chain(&error)));
        backout_store::Store::last_event(&store).await.unwrap();
        store.close().await;
        assert!(
            encrypted(&url).await,
            "sslmode=require gave a plain connection"
        );
        let plain = with_query(db.url(), "sslmode=disable");
        assert!(!encrypted(&plain).await, "sslmode=disable gave TLS");
    }

    /// rustls's words for an unknown authority, as sqlx passes them on (an I/O error). The
    /// refusal itself cannot be provoked here: this machine's trusted roots (`/etc/ssl/certs`)
    /// include the snakeoil certificate, so only its host name is wrong.
    #[test]
    fn an_unknown_authority_is_explained() {
        let target = parse_url("postgres://u@db.example/db?sslmode=verify-full").unwrap();
        let error = sqlx::Error::Io(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        let message = tls_problem(&target, &error).unwrap();
        assert!(
            message.contains("is not signed by a trusted certificate authority")
                && message.contains("sslrootcert=PATH")
                && message.contains("sslmode=verify-full"),
            "{message}"
        );
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(tls_problem(&target, &refused), None);
    }

    #[tokio::test]
    async fn verify_full_refuses_a_certificate_for_another_host() {
        let db = TestDatabase::create().await;
        // The snakeoil certificate names `localhost`; the URL says 127.0.0.1.
        let url = with_query(
            db.url(),
            &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
        );
        assert!(url.contains("@127.0.0.1"), "{url}");
        let error = PostgresStore::open(&url).await.unwrap_err();
        let text = chain(&error);
        assert!(
            text.contains("is not valid for host `127.0.0.1`") && text.contains("verify-ca"),
            "{text}"
        );
        // Checking only the authority accepts it.
        let url = with_query(
            db.url(),
            &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"),
        );
        let store = PostgresStore::open(&url)
            .await
            .unwrap_or_else(|error| panic!("verify-ca: {}", chain(&error)));
        store.close().await;
        assert!(encrypted(&url).await);
        // And so does the host name the certificate names.
        let url = url
            .replace("@127.0.0.1", "@localhost")
            .replace("verify-ca", "verify-full");
        let store = PostgresStore::open(&url)
            .await
            .unwrap_or_else(|error| panic!("verify-full on localhost: {}", chain(&error)));
        store.close().await;
    }

    #[tokio::test]
    async fn a_missing_root_certificate_is_named() {
        let db = TestDatabase::create().await;
        let url = with_query(
            db.url(),
            "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
        );
        let error = PostgresStore::open(&url).await.unwrap_err();
        let text = chain(&error);
        assert!(
            text.contains("cannot read the root certificate named by `sslrootcert`"),
            "{text}"
        );
    }
}
