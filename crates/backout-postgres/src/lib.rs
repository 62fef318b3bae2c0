//! The shared [`backout_store::Store`]: one PostgreSQL database accessed through sqlx, which
//! several `backout` processes (and, later, `backout serve` replicas) use at once.
//!
//! This crate holds the SQL and the migrations (`migrations/`, embedded with `sqlx::migrate!`
//! and applied on open under sqlx's advisory lock); the contract, records and errors live in
//! `backout-store`, whose conformance suite this crate's tests run against a real server.
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
