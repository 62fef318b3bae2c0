//! What every command works with, built once from the global options in `commands::run`: who
//! is acting, the clock, the async runtime, the store (opened on demand, with notifications
//! delivered beside the work) and the global options themselves for the remote client.
//!
//! Commands depend on this (and on `shared/`, which depends on this), never on each other: a
//! helper two commands need moves here, into `shared/`, or down into backout-core. Nothing here
//! prints a command's answer; that stays with the command. This module depends on no other
//! module of `commands`.

pub mod notifying;

use std::sync::Arc;

use backout_core::clock::{Clock, SystemClock};
use backout_store::Store;

use crate::cli::Global;
use crate::exit_codes::CommandError;

/// The context of one command: the global options, the acting person and the clock.
#[derive(Clone)]
pub struct Context {
    /// The global options as given (`--database`, `--as`, `--color`); the remote client reads
    /// them too (`crate::remote::run(&ctx.global, …)`).
    pub global: Global,
    actor: String,
    clock: Arc<dyn Clock>,
}

impl Context {
    /// The context of a command run with `global`, on the system clock.
    pub fn new(global: Global) -> Context {
        let actor = actor_of(&global);
        Context {
            global,
            actor,
            clock: Arc::new(SystemClock),
        }
    }

    /// Who is acting: `--as`, `BACKOUT_USER`, else the OS user.
    pub fn actor(&self) -> String {
        self.actor.clone()
    }

    /// The clock runs and releases are timed by.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Now, in milliseconds since the epoch, by [`Context::clock`].
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A single-threaded runtime for the command's async work.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, CommandError> {
        runtime()
    }

    /// Opens the store `--database` / `BACKOUT_DATABASE_URL` names (default: SQLite under the
    /// user's data dir), creating it when it does not exist yet.
    pub async fn open_store(&self) -> Result<Arc<dyn Store>, CommandError> {
        open_store(&self.global).await
    }

    /// The store, if it exists: the one `--database` / `BACKOUT_DATABASE_URL` names, or the
    /// default file when it is there. `None` means there is no store (and none is created):
    /// looking up evidence must never create one.
    pub async fn open_existing(&self) -> Result<Option<Arc<dyn Store>>, CommandError> {
        let url = match &self.global.database {
            Some(url) => url.clone(),
            None => match backout_sqlite::default_database_url() {
                Ok(url) => url,
                Err(_) => return Ok(None),
            },
        };
        if let Some(path) = backout_sqlite::database_file(&url)
            && !path.exists()
        {
            return Ok(None);
        }
        self.open_store().await.map(Some)
    }

    /// Runs `work` on the store with a dispatcher delivering the notifications it queues
    /// ([`notifying`]).
    pub fn with_store<F, Fut, T>(&self, work: F) -> Result<T, CommandError>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: std::future::Future<Output = Result<T, CommandError>>,
    {
        self.runtime()?.block_on(async {
            let store = self.open_store().await?;
            notifying::notifying(&store, work(store.clone())).await
        })
    }
}

/// A single-threaded runtime (the commands' work is I/O bound and sequential).
fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::internal(format!("cannot start the async runtime: {e}")))
}

async fn open_store(global: &Global) -> Result<Arc<dyn Store>, CommandError> {
    let url = match &global.database {
        Some(url) => url.clone(),
        None => backout_sqlite::default_database_url().map_err(|e| {
            CommandError::usage(format!(
                "{e}; pass --database sqlite://PATH or set BACKOUT_DATABASE_URL"
            ))
        })?,
    };
    if backout_postgres::is_postgres_url(&url) {
        // The error names the database without its password (`StoreError::Open` carries the
        // location), so the URL itself is not repeated.
        let store = backout_postgres::PostgresStore::open(&url)
            .await
            .map_err(|e| {
                CommandError::usage(format!("cannot open the store: {}", with_causes(&e)))
            })?;
        return Ok(Arc::new(store));
    }
    let store = backout_sqlite::SqliteStore::open(&url).await.map_err(|e| {
        CommandError::usage(format!(
            "cannot open the store `{url}`: {}",
            with_causes(&e)
        ))
    })?;
    Ok(Arc::new(store))
}

/// An error and its causes, "a: b: c", so the root cause (say, "database is locked") shows.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Who is acting: `--as` (clap also reads `BACKOUT_USER` into it), `USER`, `LOGNAME`, else the
/// OS user.
fn actor_of(global: &Global) -> String {
    global
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .or_else(os_user)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user from /etc/passwd (USER is unset under cron, CI and sudo -i).
fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorWhen;

    fn context(database: Option<String>, actor: Option<&str>) -> Context {
        Context::new(Global {
            color: ColorWhen::Never,
            database,
            actor: actor.map(str::to_string),
        })
    }

    #[test]
    fn as_names_the_actor() {
        assert_eq!(context(None, Some("alice")).actor(), "alice");
        assert!(!context(None, None).actor().is_empty());
    }

    #[test]
    fn looking_for_evidence_never_creates_a_store() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("store.db");
        let ctx = context(Some(format!("sqlite://{}", file.display())), None);
        let runtime = ctx.runtime().expect("a runtime");
        let found = runtime
            .block_on(ctx.open_existing())
            .expect("no error for a missing store");
        assert!(found.is_none());
        assert!(!file.exists(), "open_existing created {}", file.display());
        // Opening for work does create it, and then it is found.
        runtime.block_on(ctx.open_store()).expect("the store opens");
        assert!(file.exists());
        let found = runtime.block_on(ctx.open_existing()).expect("it opens");
        assert!(found.is_some());
    }
}
