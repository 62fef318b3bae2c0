//! API tokens of `backout serve`: who a bearer token speaks for and with which role. The store
//! keeps only a digest of each token's secret (computed by the server crate); the secret itself
//! is shown once, when the token is created, and is never stored or journaled.

use serde::{Deserialize, Serialize};

text_enum! {
    /// What a token may do on the server. Each role may do everything the ones before it may.
    pub enum Role ("token role") {
        /// Reads releases, runs, deliveries and the audit trail.
        Viewer = "viewer",
        /// Also reports checkpoints, requests rollbacks, executes them and settles their steps.
        Performer = "performer",
        /// Also approves or denies rollbacks.
        Decider = "decider",
        /// Everything.
        Admin = "admin",
    }
}

/// A token to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// `tok-…` (see [`crate::new_token_id`]); part of the bearer string, so the server finds the
    /// record without comparing secrets.
    pub id: String,
    /// The identity the token acts as (matched against the plan's `people`).
    pub user: String,
    pub role: Role,
    /// Digest of the secret, as the server computes it (hex SHA-256); never the secret.
    pub secret_hash: String,
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
}

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub role: Role,
    /// Digest of the secret; not shown to people.
    #[serde(skip_serializing)]
    pub secret_hash: String,
    pub created_at_ms: i64,
    pub created_by: String,
    /// When it was revoked; a revoked token authenticates nobody.
    pub revoked_at_ms: Option<i64>,
    pub revoked_by: Option<String>,
}

impl Token {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at_ms.is_some()
    }
}
