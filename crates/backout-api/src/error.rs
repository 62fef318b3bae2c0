//! The one error answer of the API: `{"error": {"code", "message", "details"?}}`, for every
//! failure (a handler's, the router's 404 and 405, a timeout's 503, a body over the limit).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A failed request. A 4xx body explains what to do; a 5xx body says only "internal error"
/// (the server's log has the detail).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid_request`, `unauthorized`, `forbidden`, `refused`
    /// (a rule of the plan, or the state of the release or run), `not_found`, `conflict`,
    /// `invalid_plan`, `too_large`, `method_not_allowed`, `unavailable`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
    /// More structure, when there is some: for `invalid_plan`, the plan's errors as
    /// [`LocatedDiagnostic`](crate::LocatedDiagnostic)s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}
