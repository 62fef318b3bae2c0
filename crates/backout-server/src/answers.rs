//! The core's values as the API's types ([`backout_api`]): a release's status, its verdict and
//! criteria. `backout-api` does not depend on the core, so these conversions live on the
//! server's side (the CLI has the reverse ones in `remote/convert.rs`).

use backout_api as api;
use backout_core::criteria::{CriterionStatus, Verdict};
use backout_core::release::decide::Outcome;
use backout_core::release::{CheckReport, CriterionReport, ReleaseStatus};

pub fn verdict(verdict: Verdict) -> api::Verdict {
    match verdict {
        Verdict::RollbackRequired => api::Verdict::RollbackRequired,
        Verdict::Inconclusive => api::Verdict::Inconclusive,
        Verdict::Degrading => api::Verdict::Degrading,
        Verdict::Success => api::Verdict::Success,
        Verdict::Healthy => api::Verdict::Healthy,
        Verdict::Closed => api::Verdict::Closed,
    }
}

pub fn outcome(outcome: Outcome) -> api::ReleaseOutcome {
    match outcome {
        Outcome::Open => api::ReleaseOutcome::Open,
        Outcome::RollingBack => api::ReleaseOutcome::RollingBack,
        Outcome::RolledBack => api::ReleaseOutcome::RolledBack,
        Outcome::RollbackUnverified => api::ReleaseOutcome::RollbackUnverified,
        Outcome::RollbackFailed => api::ReleaseOutcome::RollbackFailed,
        Outcome::Succeeded => api::ReleaseOutcome::Succeeded,
        Outcome::Closed => api::ReleaseOutcome::Closed,
    }
}

fn status_of(status: CriterionStatus) -> api::CriterionStatus {
    match status {
        CriterionStatus::Pending => api::CriterionStatus::Pending,
        CriterionStatus::Passing => api::CriterionStatus::Passing,
        CriterionStatus::Failing => api::CriterionStatus::Failing,
        CriterionStatus::Erring => api::CriterionStatus::Erring,
        CriterionStatus::Inconclusive => api::CriterionStatus::Inconclusive,
        CriterionStatus::Tripped => api::CriterionStatus::Tripped,
    }
}

pub fn criterion(report: &CriterionReport) -> api::CriterionReport {
    let state = &report.state;
    api::CriterionReport {
        id: report.id.clone(),
        title: report.title.clone(),
        state: api::CriterionState {
            status: status_of(state.status),
            consecutive_failures: state.consecutive_failures,
            consecutive_errors: state.consecutive_errors,
            passing_since_ms: state.passing_since_ms,
            last_reason: state.last_reason.clone(),
            last_measured_ms: state.last_measured_ms,
            total_failures: state.total_failures,
            shadow: state.shadow,
        },
        measured: report.measured,
        next_due_ms: report.next_due_ms,
    }
}

pub fn check_report(report: &CheckReport) -> api::CheckReport {
    api::CheckReport {
        release_id: report.release_id.clone(),
        verdict: verdict(report.verdict),
        requested: report.requested,
        closes_at_ms: report.closes_at_ms,
        close_reason: report.close_reason.clone(),
        criteria: report.criteria.iter().map(criterion).collect(),
    }
}

/// A release's status as `backout status REL --format json` prints it (without the fields
/// only `GET /api/v1/releases/{id}` adds).
pub fn release_status(status: &ReleaseStatus) -> api::ReleaseStatus {
    api::ReleaseStatus {
        release: api::Release::from(&status.release),
        outcome: outcome(status.outcome),
        window_closed: status.release.window_closed(status.now_ms),
        verdict: status.report.as_ref().map(|r| verdict(r.verdict)),
        criteria: status
            .report
            .as_ref()
            .map(|r| r.criteria.iter().map(criterion).collect()),
        decision: status.decision.clone(),
        plan_checkpoints: None,
        requested: None,
    }
}
