//! Releases over the API: the requests that open one and report on it, its status as the CLI
//! prints it, the verdict of its criteria, and the decisions and execution of its rollback.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::record::Release;

/// `POST /api/v1/releases`: opens a release guarded by the plan in the body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRelease {
    /// The plan's YAML text; stored with the release, its content hash guards it.
    pub plan: String,
    /// The version deployed (default: the plan's `release.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version a rollback returns to (default: the plan's `release.rollback_to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
    /// When the deployment happened, RFC 3339 (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// Refuse unless the plan's content hash is accepted (`backout start --require-accepted`).
    #[serde(default)]
    pub require_accepted: bool,
}

/// `GET /api/v1/releases?limit=N`
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many releases, newest first (default 50, at most 500).
    pub limit: Option<u32>,
}

/// `POST /api/v1/releases/{id}/checkpoints`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// A checkpoint the plan declares.
    pub name: String,
}

/// `POST /api/v1/releases/{id}/request`: a person asks for a rollback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub reason: String,
}

/// Approve or deny a requested rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionChoice {
    Approve,
    Deny,
}

/// `POST /api/v1/releases/{id}/decisions`: a decision as the token's user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub decision: DecisionChoice,
    pub reason: String,
    /// Decide although the rollback window has closed (the plan must allow it).
    #[serde(default)]
    pub override_window: bool,
}

/// The answer to a decision: where the quorum stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    pub release_id: String,
    pub decision: DecisionChoice,
    /// The token's user.
    pub actor: String,
    /// Approvals counted so far.
    pub approvals: u64,
    pub quorum: u32,
    /// The quorum is reached: the rollback may be executed.
    pub approved: bool,
    /// The decider decided as a member of the fallback group.
    pub as_fallback: bool,
    pub override_window: bool,
}

/// `POST /api/v1/releases/{id}/execute` (the body may be left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    /// Run this workaround of the plan instead of the procedure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workaround: Option<String>,
}

/// The rollback started in the background (202).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Executed {
    pub release_id: String,
    pub run_id: String,
    pub override_window: bool,
    /// Where the run's events stream: `/api/v1/runs/{run_id}/events`.
    pub events: String,
}

/// The verdict on a release's criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    RollbackRequired,
    Inconclusive,
    Degrading,
    Success,
    Healthy,
    Closed,
}

/// Where a release stands as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOutcome {
    Open,
    RollingBack,
    RolledBack,
    RollbackUnverified,
    RollbackFailed,
    Succeeded,
    Closed,
}

impl ReleaseOutcome {
    /// The outcome's name as the API writes it (`open`, `rolled_back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseOutcome::Open => "open",
            ReleaseOutcome::RollingBack => "rolling_back",
            ReleaseOutcome::RolledBack => "rolled_back",
            ReleaseOutcome::RollbackUnverified => "rollback_unverified",
            ReleaseOutcome::RollbackFailed => "rollback_failed",
            ReleaseOutcome::Succeeded => "succeeded",
            ReleaseOutcome::Closed => "closed",
        }
    }
}

/// Where one criterion stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CriterionStatus {
    Pending,
    Passing,
    Failing,
    Erring,
    Inconclusive,
    Tripped,
}

/// One criterion's state, as the latest measurements left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CriterionState {
    pub status: CriterionStatus,
    pub consecutive_failures: u32,
    pub consecutive_errors: u32,
    /// Since when every measurement passed (for `success_when.hold`).
    pub passing_since_ms: Option<i64>,
    pub last_reason: Option<String>,
    pub last_measured_ms: Option<i64>,
    /// Failing measurements since the window opened or the criterion was re-armed
    /// (`trips_after_total`).
    pub total_failures: u32,
    /// A shadow criterion: how it would have voted; the verdict leaves it out.
    pub shadow: bool,
}

/// One criterion of a release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CriterionReport {
    pub id: String,
    pub title: String,
    pub state: CriterionState,
    /// Whether this round measured it.
    pub measured: bool,
    /// When it is next due (none once the window is closed).
    pub next_due_ms: Option<i64>,
}

/// `POST /api/v1/releases/{id}/check`: every criterion measured once, now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    pub release_id: String,
    pub verdict: Verdict,
    /// A person requested a rollback.
    pub requested: bool,
    pub closes_at_ms: Option<i64>,
    pub close_reason: Option<String>,
    pub criteria: Vec<CriterionReport>,
}

/// The checkpoints a release's plan declares, and the one that closes its window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanCheckpoints {
    pub declared: Vec<String>,
    pub point_of_no_return: Option<String>,
}

/// A release as `backout status REL --format json` prints it: the release, where it stands, and
/// (when its stored plan still lints) the verdict and criteria.
///
/// `plan_checkpoints` and `requested` are only in `GET /api/v1/releases/{id}` (for clients that
/// print the release as the CLI does); the operations that answer with the status
/// (`POST /api/v1/releases`, `…/checkpoints`, `…/request`) leave them out, as they always have.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseStatus {
    #[serde(flatten)]
    pub release: Release,
    pub outcome: ReleaseOutcome,
    pub window_closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<Vec<CriterionReport>>,
    /// Where the decision stands, in words (none when no authorization is declared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_checkpoints: Option<PlanCheckpoints>,
    /// A person requested a rollback (why the verdict is `rollback_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<bool>,
}

/// `GET /api/v1/releases`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseList {
    pub releases: Vec<ReleaseSummary>,
}

/// A release in the list: its record, where it stands (when its plan still reads) and the
/// verdict the server's watcher last saw (when it watches the release). Unlike
/// [`ReleaseStatus`] it carries no criteria: the list is read without measuring anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseSummary {
    #[serde(flatten)]
    pub release: Release,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReleaseOutcome>,
    pub window_closed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}
