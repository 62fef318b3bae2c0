//! The store logic both SQL backends share (feature `sql`): how each [`Store`](crate::Store)
//! method proceeds, how a row becomes a record and how events are sealed onto the chain,
//! written once over sqlx and generic in the database. `backout-sqlite` and `backout-postgres`
//! implement [`SqlBackend`] for their store handle and get the [`Store`](crate::Store)
//! implementation from here (the blanket impl in `store_impl.rs`).
//!
//! What differs per backend sits in one place each: a [`Dialect`] value (how a journal write
//! starts and so serializes appends, row locks, the column that keeps insertion order, a JSON
//! array in SQL, captured output as text or bytes, the durability relaxed for `step_process`),
//! and the few [`SqlBackend`] methods (its pools, its cached chain end). This module must not
//! know which database it talks to: no connection options, migrations, files, URLs or
//! notifications; those stay in the backend crates.
//!
//! Why generics over `sqlx::Database` rather than sqlx's `Any` driver: `Any` narrows values to
//! a few types (no `BYTEA` for captured output) and gives up each driver's own types and
//! prepared-statement cache. Why no placeholder rewriting: every statement here uses `$N`
//! placeholders, which PostgreSQL takes natively and sqlx's SQLite driver reads as the N-th
//! argument (SQLite's `$NNN` parameters), so one SQL text serves both. Statements that differ
//! by a fragment of the [`Dialect`] are composed once per backend and cached (`Statements`).
//!
//! The bounds every generic block repeats (`where` clauses are not implied in Rust, so each
//! `impl` states them): sqlx can execute on a connection of the database, and it encodes and
//! decodes the handful of types the tables use (`i64`, `i32`, text, bytes).

#[macro_use]
mod rows;

mod evidence;
mod journal;
mod leases;
mod outbox;
mod releases;
mod runs;
mod store_impl;
mod tokens;

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock, PoisonError};

use sqlx::{Database, Pool, Transaction};

use crate::errors::StoreError;

/// The chain's end as `(seq, hash)`.
pub type ChainEnd = (u64, String);

/// What one SQL backend does differently: SQL fragments and switches, composed into the
/// shared statements. A backend declares it once, as [`SqlBackend::DIALECT`].
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// Starts a transaction that appends to the journal. It must serialize every such writer
    /// across processes (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the journal's advisory lock),
    /// so that `seq` is gap-free and the chain linear.
    pub begin_journal: &'static str,
    /// Starts a transaction that changes rows but appends nothing (delivery claims and
    /// attempts, leases).
    pub begin_rows: &'static str,
    /// Starts a read-only transaction whose queries all see one snapshot.
    pub begin_snapshot: &'static str,
    /// The column that orders step and checkpoint rows as they were first written.
    pub insertion_order: &'static str,
    /// Appended to a `SELECT` of the row a `begin_rows` transaction then updates.
    pub lock_for_update: &'static str,
    /// Appended to the subquery that picks deliveries to claim, so concurrent claimants take
    /// different rows instead of waiting.
    pub skip_locked: &'static str,
    /// Appended to the fence check of a journal write, so a lease takeover waits for it.
    pub lock_for_share: &'static str,
    /// A subquery listing the text elements of the JSON array bound as `$2`.
    pub json_texts_of_2: &'static str,
    /// Captured output (`stdout`, `stderr`) is stored as bytes rather than text.
    pub output_as_bytes: bool,
    /// Rows per multi-row insert, below the database's limit of bound parameters.
    pub rows_per_insert: usize,
    /// Statements that relax durability for a `step_process` commit and restore it, run on the
    /// writer's connection around it (see `Store::record_process`); `None` to keep it durable.
    pub relaxed_commit: Option<(&'static str, &'static str)>,
}

/// A store handle over one SQL database: its pools and the [`Dialect`]. Implementing it gives
/// the handle the shared [`Store`](crate::Store) implementation.
pub trait SqlBackend: Send + Sync + 'static {
    /// The sqlx database.
    type DB: Database;

    /// What this backend's SQL does differently.
    const DIALECT: Dialect;

    /// The pool reads run on.
    fn reader(&self) -> &Pool<Self::DB>;

    /// The pool writes run on (the same as the reader's where the database allows).
    fn writer(&self) -> &Pool<Self::DB>;

    /// Where this handle keeps the chain's end after its last step batch, when a stale guess
    /// can be retried in the same transaction (a failed statement does not abort it): the next
    /// batch seals onto it without reading it first. `None` reads the end every time.
    fn chain_end_hint(&self) -> Option<&Mutex<Option<ChainEnd>>> {
        None
    }

    /// How many rows a statement changed (sqlx has no trait for it).
    fn rows_affected(result: &<Self::DB as Database>::QueryResult) -> u64;
}

/// The shared store logic for backend `B`: associated functions, split by record over this
/// module's files. Public for the few that write a record verbatim (`insert_run`,
/// `upsert_steps`, `insert_events`, `insert_evidence`, `insert_token`), which a bulk import
/// (`backout-postgres`'s `import_from`) uses too.
pub struct Sql<B>(PhantomData<B>);

impl<B: SqlBackend> Sql<B> {
    /// A journal write: the dialect's `begin_journal` on the writer pool.
    pub(crate) async fn begin_journal(
        store: &B,
    ) -> Result<Transaction<'static, B::DB>, StoreError> {
        store
            .writer()
            .begin_with(B::DIALECT.begin_journal)
            .await
            .map_err(db_error)
    }

    /// A write that appends nothing: the dialect's `begin_rows` on the writer pool.
    pub(crate) async fn begin_rows(store: &B) -> Result<Transaction<'static, B::DB>, StoreError> {
        store
            .writer()
            .begin_with(B::DIALECT.begin_rows)
            .await
            .map_err(db_error)
    }

    /// Reads from one snapshot: the dialect's `begin_snapshot` on the reader pool.
    pub(crate) async fn begin_snapshot(
        store: &B,
    ) -> Result<Transaction<'static, B::DB>, StoreError> {
        store
            .reader()
            .begin_with(B::DIALECT.begin_snapshot)
            .await
            .map_err(db_error)
    }
}

/// A failed query, connection or transaction.
pub fn db_error(error: sqlx::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// A `u64` id or seq as the `BIGINT` it is stored as (they never come near `i64::MAX`).
pub(crate) fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::invalid(error.to_string()))
}

/// The statements that differ between backends by a [`Dialect`] fragment, composed once.
pub(crate) struct Statements {
    pub(crate) steps_of_run: &'static str,
    pub(crate) checkpoints_of_release: &'static str,
    pub(crate) checkpoints_of_open_releases: &'static str,
    pub(crate) events_of_kinds: &'static str,
    pub(crate) release_events_of_kinds: &'static str,
    pub(crate) claim_deliveries: &'static str,
    pub(crate) delivery_for_update: &'static str,
    pub(crate) fence_token: &'static str,
}

impl Statements {
    fn new(d: &Dialect) -> Statements {
        // Leaked once per backend and process: sqlx takes `&'static str` SQL as it is.
        let text = |sql: String| -> &'static str { sql.leak() };
        let order = d.insertion_order;
        Statements {
            steps_of_run: text(format!(
                concat!(
                    "SELECT ",
                    step_columns!(),
                    " FROM step_states WHERE run_id = $1 ORDER BY {}"
                ),
                order
            )),
            checkpoints_of_release: text(format!(
                "SELECT name, at_ms, actor FROM release_checkpoints WHERE release_id = $1 \
                 ORDER BY {order}"
            )),
            checkpoints_of_open_releases: text(format!(
                "SELECT c.release_id, c.name, c.at_ms, c.actor FROM release_checkpoints c \
                 JOIN releases r ON r.id = c.release_id WHERE r.state = 'open' ORDER BY c.{order}"
            )),
            events_of_kinds: text(format!(
                concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE seq > $1 AND kind IN ({}) ORDER BY seq LIMIT $3"
                ),
                d.json_texts_of_2
            )),
            release_events_of_kinds: text(format!(
                concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE release_id = $4 AND seq > $1 AND kind IN ({}) \
                     ORDER BY seq LIMIT $3"
                ),
                d.json_texts_of_2
            )),
            claim_deliveries: text(format!(
                concat!(
                    "UPDATE deliveries SET claimed_by = $1, claimed_until_ms = $2 WHERE id IN (\
                     SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at_ms <= $3 \
                     AND (claimed_until_ms IS NULL OR claimed_until_ms <= $3) \
                     ORDER BY next_attempt_at_ms, id LIMIT $4{}) RETURNING ",
                    delivery_columns!()
                ),
                d.skip_locked
            )),
            delivery_for_update: text(format!(
                concat!(
                    "SELECT ",
                    delivery_columns!(),
                    " FROM deliveries WHERE id = $1{}"
                ),
                d.lock_for_update
            )),
            fence_token: text(format!(
                "SELECT token FROM leases WHERE name = $1{}",
                d.lock_for_share
            )),
        }
    }

    /// The statements of backend `B`, composed on first use.
    pub(crate) fn of<B: SqlBackend>() -> &'static Statements {
        static CACHE: OnceLock<Mutex<HashMap<TypeId, &'static Statements>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(TypeId::of::<B>())
            .or_insert_with(|| Box::leak(Box::new(Statements::new(&B::DIALECT))))
    }
}
