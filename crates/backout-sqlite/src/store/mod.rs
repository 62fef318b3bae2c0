//! [`SqliteStore`]: opening (URL, file and directories, pragmas, migrations) and SQLite's
//! [`SqlBackend`] side of the shared store logic (`backout_store::sql`), which gives it its
//! [`backout_store::Store`] implementation. Every write is one `BEGIN IMMEDIATE` transaction
//! on the single writer connection that changes the record and appends its event; reads use a
//! small pool of their own so status queries and live tails never wait behind a commit's
//! fsync. The connection setup and the file checks have a file each.

mod checks;
mod connect;

use connect::{connect_options, migrate};

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_store::StoreError;
use backout_store::sql::{ChainEnd, Dialect, SqlBackend, db_error};
use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use crate::errors::open_error;
use crate::location::{Location, parse_url};

static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a write waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections for reads. SQLite in WAL mode lets them read while the writer commits.
const READ_CONNECTIONS: u32 = 4;

/// A [`backout_store::Store`] in one SQLite file. Cheap to clone: clones share the connection pools.
///
/// Several handles (in one process or several) may open the same file: `BEGIN IMMEDIATE` and the
/// busy timeout serialize their writes, so `seq` and the chain stay well defined.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    location: String,
    /// The chain's end after this store's last `record_steps`: the next batch seals onto it
    /// without reading it first (checked by the insert itself, see
    /// [`SqlBackend::chain_end_hint`]).
    end: Arc<Mutex<Option<ChainEnd>>>,
}

/// The connection settings in force, as SQLite reports them (see [`SqliteStore::pragmas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePragmas {
    /// `wal` for a file database (`memory` for an in-memory one).
    pub journal_mode: String,
    /// 2 is `FULL`: the WAL is synced at every commit.
    pub synchronous: i64,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
}

impl SqliteStore {
    /// Opens the database named by a URL: `sqlite:///abs/path.db`, `sqlite://relative.db`, or
    /// `sqlite::memory:`. See [`SqliteStore::open_path`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        match parse_url(url)? {
            Location::File(path) => Self::open_path(&path).await,
            Location::Memory => Self::open_in_memory().await,
        }
    }

    /// Opens the database file at `path`, creating it and its parent directories if missing,
    /// and applies pending migrations.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        // Several processes opening a brand-new file at once race to switch it to WAL, and the
        // loser sees "database is locked" despite the busy timeout; a short retry settles it.
        let mut delay = std::time::Duration::from_millis(20);
        for _ in 0..6 {
            match Self::open_path_once(path).await {
                Err(error) if is_locked(&error) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        Self::open_path_once(path).await
    }

    async fn open_path_once(path: &Path) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| open_error(&location, error))?;
        }
        private_file(path).map_err(|error| open_error(&location, error))?;
        let options =
            connect_options(SqliteConnectOptions::new().filename(path)).create_if_missing(true);
        // One writer connection: writers of this process queue fairly on the pool instead of
        // spinning in SQLite's busy handler; other processes are held off by BEGIN IMMEDIATE.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|error| open_error(&location, error))?;
        migrate(&writer, &location).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|error| open_error(&location, error))?;
        Ok(SqliteStore {
            writer,
            reader,
            location,
            end: Arc::default(),
        })
    }

    /// A private in-memory database, for tests of code that needs some store. Nothing survives
    /// the process, so this is never the executor's store.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let location = ":memory:".to_owned();
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|error| open_error(&location, error))?;
        // The database lives as long as its one connection, so that connection is never closed.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect_options(options))
            .await
            .map_err(|error| open_error(&location, error))?;
        migrate(&pool, &location).await?;
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
            location,
            end: Arc::default(),
        })
    }

    /// The file (or `:memory:`) this store was opened on.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes every connection, checkpointing the WAL into the database file.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// SQLite's side of the shared store (`backout_store::sql`): one writer connection whose
/// `BEGIN IMMEDIATE` serializes every write (across processes too, with the busy timeout),
/// readers on their own pool, rowid order, captured output as text, and `step_process`
/// committed with `synchronous=NORMAL`.
impl SqlBackend for SqliteStore {
    type DB = Sqlite;

    const DIALECT: Dialect = Dialect {
        // IMMEDIATE takes the write lock at once, so the chain's end read next cannot go stale
        // and a concurrent writer waits (busy timeout) instead of failing at its first write.
        begin_journal: "BEGIN IMMEDIATE",
        // One writer at a time in SQLite: the same lock serializes row changes.
        begin_rows: "BEGIN IMMEDIATE",
        // A deferred read transaction reads one snapshot of the WAL.
        begin_snapshot: "BEGIN",
        // Rowid tables: an upsert keeps the row and so its rowid (migration 0001).
        insertion_order: "rowid",
        // The write lock already excludes every other writer.
        lock_for_update: "",
        skip_locked: "",
        lock_for_share: "",
        json_texts_of_2: "SELECT value FROM json_each($2)",
        output_as_bytes: false,
        // 13 parameters a row at the most, far below SQLite's limit of 32766.
        rows_per_insert: 500,
        // WAL with `synchronous=NORMAL` for that one commit: written to the WAL (it survives
        // the process), not fsynced; the next `FULL` commit syncs the WAL with it.
        relaxed_commit: Some(("PRAGMA synchronous = NORMAL", "PRAGMA synchronous = FULL")),
    };

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn chain_end_hint(&self) -> Option<&Mutex<Option<ChainEnd>>> {
        // A failed statement leaves a SQLite transaction open, so a stale guess is retried.
        Some(&self.end)
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Whether an error (or one of its causes) is SQLite's "database is locked" / "busy".
fn is_locked(error: &StoreError) -> bool {
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if text.contains("database is locked") || text.contains("database is busy") {
            return true;
        }
        current = e.source();
    }
    false
}

/// The store holds the journal, plans and token digests: its file is created readable by its
/// owner only (0600), and SQLite creates the `-wal` and `-shm` files with the database file's
/// permissions. An existing file or companion readable by others is narrowed to 0600 too
/// (when this user owns it).
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if let Ok(meta) = std::fs::metadata(file)
            && meta.is_file()
            && meta.permissions().mode() & 0o077 != 0
        {
            // Not ours to change (another owner): leave it; opening still works.
            let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
        }
    }
    Ok(())
}
