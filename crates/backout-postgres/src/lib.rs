//! The shared [`backout_store::Store`]: one PostgreSQL database accessed through sqlx, which
//! several `backout` processes (and, later, `backout serve` replicas) use at once.
//!
//! This crate holds the SQL and the migrations (`migrations/`, embedded with `sqlx::migrate!`
//! and applied on open under sqlx's advisory lock); the contract, records and errors live in
//! `backout-store`, whose conformance suite this crate's tests run against a real server. Leases
//! and LISTEN/NOTIFY for several replicas are not here yet.
//!
//! Connections are plain TCP (or a Unix socket): no TLS backend is compiled in, so a URL asking
//! for `sslmode=require` is refused when connecting. Keep the database on loopback or a private
//! network.

#[macro_use]
mod rows;

mod errors;
mod location;
mod store;

pub use errors::OpenProblem;
pub use location::is_postgres_url;
pub use store::{JOURNAL_LOCK_KEY, PostgresStore};

#[cfg(feature = "testing")]
pub mod testing;
