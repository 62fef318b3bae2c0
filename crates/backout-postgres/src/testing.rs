//! Throwaway databases for tests (feature `testing`): each test creates its own database on the
//! test server and drops it when done, even when the test panics. Never used by the binary.
//!
//! The server is `BACKOUT_TEST_POSTGRES_URL` (a URL of a database the test user can connect to
//! and create databases from), by default `postgres://postgres@127.0.0.1:5432/postgres`. A
//! server that cannot be reached is an error that says how to start it: tests fail, they never
//! skip.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

/// The variable naming the test server.
pub const SERVER_VAR: &str = "BACKOUT_TEST_POSTGRES_URL";

/// The test server when [`SERVER_VAR`] is not set.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test; dropped (with every connection to it) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `backout_test_<unique>` on the test server.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses to create the database, with a message
    /// saying how to start it: a test that needs PostgreSQL fails loudly rather than skipping.
    pub async fn create() -> TestDatabase {
        let admin_url = std::env::var(SERVER_VAR).unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
        PgConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|error| panic!("{SERVER_VAR} is not a PostgreSQL URL: {error}"));
        let mut admin = connect(&admin_url).await;
        let name = unique_name();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|error| panic!("cannot create test database `{name}`: {error}"));
        let _ = admin.close().await;
        let url = database_url(&admin_url, &name);
        TestDatabase {
            name,
            url,
            admin_url,
        }
    }

    /// `postgres://…/backout_test_<unique>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection that bypasses the store, like a DBA with `psql`.
    pub async fn raw(&self) -> PgConnection {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    /// Drops the database on a thread of its own (drop cannot be async, and may run inside a
    /// runtime), forcing out connections a store still holds.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await
                    .map_err(|error| error.to_string())?;
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!(
                "warning: test database `{}` not dropped: {error}",
                self.name
            );
        }
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap_or_else(|error| {
        panic!(
            "cannot connect to the test PostgreSQL server at {url}: {error}\n\
             The PostgreSQL store's tests need a real server (trust auth for user `postgres` on \
             127.0.0.1:5432, or set {SERVER_VAR}). Start it with:\n    \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             (scripts/test starts it when it is installed)."
        )
    })
}

/// The admin URL with its database replaced by `name` (query options kept).
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split('/').next().unwrap_or_default();
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "backout_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}
