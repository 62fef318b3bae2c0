//! Storage contract of `backout`: the [`Store`] trait, the records it keeps (runs, step states,
//! releases, the hash-chained event journal, the notification outbox, rehearsal evidence and the
//! server's API tokens), its errors, the chain verifier used by `audit verify`, and a
//! conformance suite that every backend runs against itself.
//!
//! With feature `sql` (enabled by the backends only) it also owns the store logic both SQL
//! backends share, written once over sqlx (`sql`): how each method proceeds, how a row
//! becomes a record, how events are sealed onto the chain; a backend supplies its pools and a
//! `sql::Dialect` and gets its [`Store`] implementation from there.
//!
//! It must not know a particular database: no connection options, file paths, URLs,
//! migrations or notification channels (those are `backout-sqlite`'s and
//! `backout-postgres`'s), and without feature `sql` no SQL at all, so the core and the server
//! build without sqlx and see only the trait.

#[macro_use]
mod text_enum;

mod chain;
pub mod conformance;
mod counts;
mod delivery;
mod errors;
mod event;
mod evidence;
mod feed;
mod ids;
mod lease;
mod release;
mod run;
#[cfg(feature = "sql")]
pub mod sql;
mod step;
mod store;
pub mod strict;
mod token;

pub use chain::{
    ChainBreak, ChainBreakKind, ChainHead, ChainSummary, ChainVerifier, GENESIS_HASH,
    canonical_json, verify_chain,
};
pub use counts::{Counts, STATE_QUERIES};
pub use delivery::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryKind, DeliveryNext, DeliveryState,
    NewAttempt, NewDelivery,
};
pub use errors::{BoxError, Entity, StoreError, UnknownName};
pub use event::{Event, NewEvent};
pub use evidence::{Evidence, EvidenceFilter, ForwardRun, RoundTrip, StepEvidence};
pub use feed::{Feed, announce};
pub use ids::{new_evidence_id, new_release_id, new_run_id, new_token_id};
pub use lease::{Fence, Lease, check_lease_request};
pub use release::{Checkpoint, NewRelease, Release, ReleaseState};
pub use run::{ExecutorInfo, NewRun, Run, RunKind, RunState, RunUpdate};
pub use step::{StepRecord, StepState};
pub use store::{Store, verify_store};
pub use token::{NewToken, Role, Token};
