//! The embedded default [`backout_store::Store`]: one SQLite file accessed through sqlx, in WAL
//! mode with `synchronous=FULL` so every committed change survives `kill -9` and power loss.
//!
//! This crate holds the SQL and the migrations (`migrations/`, embedded with `sqlx::migrate!`);
//! the contract, records and errors live in `backout-store`, which this crate's tests check with
//! its conformance suite.

mod errors;
mod location;
mod store;

pub use location::{database_file, default_database_path, default_database_url};
pub use store::{SqlitePragmas, SqliteStore};
