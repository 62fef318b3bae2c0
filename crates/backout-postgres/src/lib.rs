//! The shared [`backout_store::Store`]: one PostgreSQL database accessed through sqlx, which
//! several `backout` processes (and `backout serve` replicas) use at once.
//!
//! This crate owns what is PostgreSQL's alone: the URL, TLS and connection options, opening
//! errors a user can act on, the migrations (`migrations/`, embedded with `sqlx::migrate!` and
//! applied on open under sqlx's advisory lock), LISTEN/NOTIFY, the bulk import from another
//! store, and its [`backout_store::sql::Dialect`] (the journal's advisory lock serializes
//! appends; row locks for claims, leases and fences; identity order; output as `BYTEA`).
//!
//! It must not hold store logic: how a method proceeds and how a row becomes a record live once
//! in `backout_store::sql`, shared with `backout-sqlite`; the contract, records and errors are
//! `backout-store`'s, whose story suite runs against a real server.
//!
//! Connections use TLS as the URL's `sslmode` asks (rustls on ring, the system's trusted roots
//! or the URL's `sslrootcert`): `disable`; `prefer` (the default: TLS when the server offers it,
//! certificate not checked); `require` (TLS or no connection, certificate not checked unless
//! `sslrootcert` is given, then it is `verify-ca`, as in libpq); `verify-ca` (the certificate must chain to a trusted root);
//! `verify-full` (and name the host of the URL). Over a network you do not control use
//! `verify-full`; `require` only stops passive eavesdroppers.
//!
//! Several processes hear each other's journal writes through LISTEN/NOTIFY ([`listen`]): a
//! trigger (migration 0004) notifies `backout_events` when events commit.

mod errors;
mod import;
mod listen;
mod location;
mod store;

pub use errors::OpenProblem;
pub use import::{ImportError, ImportSummary};
pub use listen::{EVENTS_CHANNEL, listen};
pub use location::is_postgres_url;
pub use store::{JOURNAL_LOCK_KEY, PostgresStore};

#[cfg(feature = "testing")]
pub mod testing;
