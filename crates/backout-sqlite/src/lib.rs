//! The embedded default [`backout_store::Store`]: one SQLite file accessed through sqlx, in WAL
//! mode with `synchronous=FULL` so every committed change survives `kill -9` and power loss.
//!
//! This crate owns what is SQLite's alone: the URL and file (created 0600, its directories),
//! the connection settings (WAL, `synchronous=FULL`, foreign keys, busy timeout), the one
//! writer connection and the reader pool, the migrations (`migrations/`, embedded with
//! `sqlx::migrate!`), the integrity checks, and its [`backout_store::sql::Dialect`]
//! (`BEGIN IMMEDIATE` serializes appends; rowid order; `synchronous=NORMAL` for `step_process`).
//!
//! It must not hold store logic: how a method proceeds and how a row becomes a record live once
//! in `backout_store::sql`, shared with `backout-postgres`; the contract, records and errors
//! are `backout-store`'s, whose story suite runs against this crate.

mod errors;
mod location;
mod store;

pub use location::{database_file, default_database_path, default_database_url};
pub use store::{SqlitePragmas, SqliteStore};
