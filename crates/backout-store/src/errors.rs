//! Errors of the storage layer. Backends convert their driver errors into [`StoreError`] in one
//! helper each, so callers (executor, CLI, server) match on these kinds and never on SQL errors.

use std::fmt;

/// Boxed cause of a backend failure, kept as the error's `source`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store operation failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("{entity} `{id}` not found")]
    NotFound { entity: Entity, id: String },

    /// A record with this identity already exists (e.g. a duplicate run id).
    #[error("{entity} `{id}` already exists")]
    Conflict { entity: Entity, id: String },

    /// The request contradicts itself, e.g. an event bound to another run than the record written
    /// with it, or a database URL the backend does not understand.
    #[error("invalid store request: {reason}")]
    Invalid { reason: String },

    /// Stored data cannot be decoded: an unknown state name, malformed JSON, an out-of-range number.
    #[error("corrupt stored data: {reason}")]
    Corrupt { reason: String },

    /// The database could not be opened, created or migrated.
    #[error("cannot open database `{location}`")]
    Open {
        location: String,
        #[source]
        source: BoxError,
    },

    /// A write made under a lease whose fencing token is no longer the lease's current one:
    /// another replica took the work over (this one was paused or cut off past the lease's
    /// expiry). Nothing was written; the writer must stop working on it.
    #[error(
        "lease `{lease}` (token {token}) was taken over by another replica, which now does this \
         work; this replica stopped and wrote nothing"
    )]
    Fenced { lease: String, token: u64 },

    /// Any other failure of the backend (I/O, lock timeout, lost connection).
    #[error("database operation failed")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Shorthand for a [`StoreError::NotFound`] on a run.
    pub fn run_not_found(id: &str) -> Self {
        StoreError::NotFound {
            entity: Entity::Run,
            id: id.to_owned(),
        }
    }

    /// Shorthand for a [`StoreError::Fenced`] on `fence`.
    pub fn fenced(fence: &crate::Fence) -> Self {
        StoreError::Fenced {
            lease: fence.lease.clone(),
            token: fence.token,
        }
    }

    /// Shorthand for a [`StoreError::Corrupt`].
    pub fn corrupt(reason: impl fmt::Display) -> Self {
        StoreError::Corrupt {
            reason: reason.to_string(),
        }
    }

    /// Shorthand for a [`StoreError::Invalid`].
    pub fn invalid(reason: impl fmt::Display) -> Self {
        StoreError::Invalid {
            reason: reason.to_string(),
        }
    }
}

impl From<UnknownName> for StoreError {
    /// An unknown state or kind name can only come from the database here, so it is corruption.
    fn from(error: UnknownName) -> Self {
        StoreError::corrupt(error)
    }
}

/// The kind of record an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entity {
    Run,
    Step,
    Event,
    Release,
    Checkpoint,
    Delivery,
    Evidence,
    Token,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Run => "run",
            Entity::Step => "step",
            Entity::Event => "event",
            Entity::Release => "release",
            Entity::Checkpoint => "checkpoint",
            Entity::Delivery => "delivery",
            Entity::Evidence => "evidence",
            Entity::Token => "token",
        })
    }
}

/// A name that is not one of an enum's fixed names (`RunState`, `StepState`, `RunKind`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    /// What was being parsed, e.g. `run state`.
    pub what: &'static str,
    /// The text that did not match.
    pub name: String,
}
