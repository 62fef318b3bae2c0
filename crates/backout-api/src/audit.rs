//! The answers that are neither releases, runs nor plans: who a token acts as, whether the
//! server is healthy, and whether the journal's hash chain holds.

use backout_store::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/v1/me`: who the token acts as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user: String,
    #[schema(schema_with = crate::names::role)]
    pub role: Role,
    pub token_id: String,
}

/// `GET /healthz`: the store answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` (a failing store is a 503 error answer).
    pub status: String,
    /// Events in the journal.
    pub events: u64,
}

/// `GET /api/v1/audit/verify`: the journal's hash chain recomputed.
///
/// Irregular, kept as it always was: a chain that holds has `events` and `head`; a broken one
/// has `broken_at`, `reason` and `message` instead. `ok` says which.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerify {
    pub ok: bool,
    /// Events checked (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// The last event of the chain (when `ok`; null for an empty journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AuditHead>)]
    pub head: Option<Option<AuditHead>>,
    /// The first event whose hash does not match (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
    /// Why, as a stable word (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why, for people (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The head of the journal's chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}
