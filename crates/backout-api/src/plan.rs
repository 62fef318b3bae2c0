//! Plans over the API: lint one, render one, accept one, and read the plan of a release.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/plans/lint` and `POST /api/v1/plans/render`: a plan sent as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The plan's YAML text.
    pub plan: String,
    /// How the plan is named in diagnostics and the document (default `plan.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `md` or `html` (render only; default `html`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One problem of a plan, placed in its file (as `backout lint --format json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LocatedDiagnostic {
    pub file: String,
    /// Stable, e.g. `B021` (`backout lint --explain`).
    pub code: String,
    /// `error`, `warning` or `note`.
    pub severity: Severity,
    pub line: u64,
    pub column: u64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl Severity {
    /// The severity's name as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// The answer of `POST /api/v1/plans/lint`: 200 whether or not the plan is valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LintAnswer {
    /// The plan has no errors.
    pub ok: bool,
    pub file: String,
    /// Canonical content hash (none when the YAML does not parse).
    pub hash: Option<String>,
    pub errors: u64,
    pub warnings: u64,
    pub diagnostics: Vec<LocatedDiagnostic>,
}

/// `GET /api/v1/releases/{id}/plan?format=…`
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// `yaml` (the text as started), `md` or `html` (default).
    #[serde(default)]
    pub format: Option<String>,
}

/// `POST /api/v1/plans/accept`: the plan's deployment engineer (or an admin) accepts its exact
/// content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub plan: String,
}

/// The acceptance recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub plan_hash: String,
    pub accepted_by: String,
    pub accepted_at_ms: i64,
}

/// `POST /api/v1/plans/register`: a plan's current content, registered for scheduled rehearsals
/// (`testing.schedule`, `renew_before`), as `backout plans add` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub plan: String,
}

/// The registration: `already` when the same content was registered before (nothing changed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub plan_hash: String,
    pub registered: bool,
    pub already: bool,
}
