//! The API's answers ([`backout_api`], the types the server answers with) turned into the
//! records the local printers take (a release, a check report, a run and its steps,
//! deliveries), so a command prints the same lines whether it read a local store or a server.
//! Decoding is serde's, into the server's own types: a field the server renamed or dropped is
//! an error here, never a silent default.

use backout_api as api;
use backout_core::criteria::{CriterionState, CriterionStatus, Verdict};
use backout_core::release::{CheckReport, CriterionReport};
use backout_store::{Delivery, Release, Run, StepRecord};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::exit_codes::CommandError;

/// An answer that is not the API type expected: which answer, and what is wrong with it.
pub fn unexpected(what: &str, detail: impl std::fmt::Display) -> CommandError {
    CommandError::internal(format!(
        "the server's answer is not the {what} expected ({detail}); are this `backout` and the \
         server the same version?"
    ))
}

/// Decodes an answer into its API type.
pub fn parse<T: DeserializeOwned>(what: &str, value: &Value) -> Result<T, CommandError> {
    T::deserialize(value).map_err(|e| unexpected(what, e))
}

/// An answer's field that the API type leaves optional but this answer must carry (e.g. the
/// `events` of an `audit/verify` answer whose chain holds): its absence names the field.
pub fn missing(what: &str, field: &str) -> CommandError {
    unexpected(what, format!("it has no `{field}`"))
}

/// A release's status, as `GET /api/v1/releases/{id}` and the release operations
/// (`POST /api/v1/releases`, `…/checkpoints`, `…/request`) answer.
pub fn status(value: &Value) -> Result<api::ReleaseStatus, CommandError> {
    parse("release status", value)
}

/// The release of a status answer (without its plan text, which the printers do not need).
pub fn release(value: &Value) -> Result<Release, CommandError> {
    Ok(status(value)?.release.into_record(String::new()))
}

/// The verdict and criteria of a check report (`POST …/check`, which names its `release_id`)
/// or of a release's status (`GET /api/v1/releases/{id}`, where they sit beside the release);
/// `None` when the status has none (its stored plan no longer lints).
pub fn report(value: &Value) -> Result<Option<CheckReport>, CommandError> {
    if value.get("release_id").is_some() {
        let report: api::CheckReport = parse("check report", value)?;
        return Ok(Some(CheckReport {
            release_id: report.release_id,
            verdict: verdict(report.verdict),
            requested: report.requested,
            closes_at_ms: report.closes_at_ms,
            close_reason: report.close_reason,
            criteria: report.criteria.into_iter().map(criterion).collect(),
        }));
    }
    Ok(status_report(status(value)?))
}

/// The verdict and criteria beside a release's status (`None` when its stored plan no longer
/// lints, so the server measured nothing).
pub fn status_report(status: api::ReleaseStatus) -> Option<CheckReport> {
    let found = status.verdict?;
    Some(CheckReport {
        release_id: status.release.id,
        verdict: verdict(found),
        requested: status.requested.unwrap_or(false),
        closes_at_ms: status.release.closes_at_ms,
        close_reason: status.release.close_reason,
        criteria: status
            .criteria
            .unwrap_or_default()
            .into_iter()
            .map(criterion)
            .collect(),
    })
}

fn verdict(verdict: api::Verdict) -> Verdict {
    match verdict {
        api::Verdict::RollbackRequired => Verdict::RollbackRequired,
        api::Verdict::Inconclusive => Verdict::Inconclusive,
        api::Verdict::Degrading => Verdict::Degrading,
        api::Verdict::Success => Verdict::Success,
        api::Verdict::Healthy => Verdict::Healthy,
        api::Verdict::Closed => Verdict::Closed,
    }
}

fn criterion(report: api::CriterionReport) -> CriterionReport {
    let state = report.state;
    CriterionReport {
        id: report.id,
        title: report.title,
        state: CriterionState {
            status: match state.status {
                api::CriterionStatus::Pending => CriterionStatus::Pending,
                api::CriterionStatus::Passing => CriterionStatus::Passing,
                api::CriterionStatus::Failing => CriterionStatus::Failing,
                api::CriterionStatus::Erring => CriterionStatus::Erring,
                api::CriterionStatus::Inconclusive => CriterionStatus::Inconclusive,
                api::CriterionStatus::Tripped => CriterionStatus::Tripped,
            },
            consecutive_failures: state.consecutive_failures,
            consecutive_errors: state.consecutive_errors,
            passing_since_ms: state.passing_since_ms,
            last_reason: state.last_reason,
            last_measured_ms: state.last_measured_ms,
            total_failures: state.total_failures,
            shadow: state.shadow,
        },
        measured: report.measured,
        next_due_ms: report.next_due_ms,
    }
}

/// The checkpoints the plan of a release declares and the one that closes its window
/// (`plan_checkpoints` of `GET /api/v1/releases/{id}`; none when its plan no longer lints).
pub fn plan_checkpoints(status: &api::ReleaseStatus) -> (Vec<String>, Option<String>) {
    status
        .plan_checkpoints
        .clone()
        .map(|p| (p.declared, p.point_of_no_return))
        .unwrap_or_default()
}

/// A run and its steps, as `GET /api/v1/runs/{id}` and the run operations return them (the
/// plan text beside the run).
pub fn run(value: &Value) -> Result<(Run, Vec<StepRecord>), CommandError> {
    Ok(run_records(parse("run", value)?))
}

/// The store's records of a run answer: the run (with its plan text) and its steps.
pub fn run_records(answer: api::RunWithSteps) -> (Run, Vec<StepRecord>) {
    let steps = answer.steps.into_iter().map(StepRecord::from).collect();
    (answer.run.into_record(answer.plan_source), steps)
}

/// A run answer as `backout status RUN --format json` prints it locally: the run (without its
/// plan text, which the API type carries beside it) and its steps, each field as the store's
/// record serializes.
pub fn run_as_printed(answer: &api::RunWithSteps) -> Value {
    serde_json::json!({ "run": answer.run, "steps": answer.steps })
}

/// The deliveries of `GET /api/v1/releases/{id}/deliveries`, newest first as the store lists
/// them.
pub fn deliveries(value: &Value) -> Result<Vec<Delivery>, CommandError> {
    let list: api::DeliveryList = parse("deliveries", value)?;
    Ok(list.deliveries.into_iter().map(Delivery::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Value {
        serde_json::json!({
            "id": "rel-1", "plan_hash": "ab", "service": "checkout", "version": "2", "rollback_to": "1",
            "environment": "production", "actor": "dana@example.com", "state": "open",
            "opened_at_ms": 1, "closes_at_ms": 5, "closed_at_ms": null, "close_reason": null,
            "checkpoints": [], "outcome": "open", "window_closed": false,
            "verdict": "rollback_required", "requested": true,
            "criteria": [{ "id": "errors", "title": "Errors", "measured": true, "next_due_ms": 9,
                "state": { "status": "tripped", "consecutive_failures": 3, "consecutive_errors": 0,
                    "passing_since_ms": null, "last_reason": "4% > 1%", "last_measured_ms": 7, "total_failures": 3, "shadow": false } }]
        })
    }

    #[test]
    fn a_status_becomes_a_report() {
        let parsed = report(&status()).expect("parses").expect("has a verdict");
        assert_eq!(parsed.release_id, "rel-1");
        assert_eq!(parsed.verdict, Verdict::RollbackRequired);
        assert!(parsed.requested);
        assert_eq!(parsed.closes_at_ms, Some(5));
        assert_eq!(parsed.criteria[0].state.status, CriterionStatus::Tripped);
        assert_eq!(parsed.criteria[0].state.consecutive_failures, 3);
        let mut without = status();
        for field in ["verdict", "criteria", "requested"] {
            without.as_object_mut().expect("object").remove(field);
        }
        assert!(report(&without).expect("parses").is_none());
        assert_eq!(release(&without).expect("a release").service, "checkout");
    }

    #[test]
    fn answers_that_are_not_the_api_types_are_errors() {
        let mut odd = status();
        odd["criteria"][0]["state"]["status"] = "odd".into();
        assert!(report(&odd).is_err());
        let mut renamed = status();
        renamed
            .as_object_mut()
            .expect("object")
            .remove("window_closed");
        assert!(
            report(&renamed).is_err(),
            "a missing field is not defaulted"
        );
        assert!(run(&serde_json::json!({ "run": {}, "steps": [] })).is_err());
    }

    #[test]
    fn a_dropped_field_is_named() {
        let cases: [(&str, Value, &str); 3] = [
            (
                "decision",
                serde_json::json!({ "release_id": "rel-1", "decision": "approve",
                    "actor": "carol", "quorum": 1, "approved": true, "as_fallback": false,
                    "override_window": false }),
                "approvals",
            ),
            (
                "execution",
                serde_json::json!({ "release_id": "rel-1", "override_window": false,
                    "events": "/api/v1/runs/run-1/events" }),
                "run_id",
            ),
            (
                "acceptance",
                serde_json::json!({ "plan_hash": "ab", "accepted_at_ms": 1 }),
                "accepted_by",
            ),
        ];
        for (what, answer, field) in cases {
            let message = match what {
                "decision" => parse::<api::Decision>(what, &answer).map(drop),
                "execution" => parse::<api::Executed>(what, &answer).map(drop),
                _ => parse::<api::Accepted>(what, &answer).map(drop),
            }
            .expect_err("a missing field is an error")
            .message;
            assert!(
                message.contains(&format!("`{field}`")) && message.contains(what),
                "{message}"
            );
        }
        let mut without = status();
        without.as_object_mut().expect("object").remove("outcome");
        let message = status_of(&without);
        assert!(message.contains("`outcome`"), "{message}");
        assert!(missing("audit", "events").message.contains("`events`"));
    }

    fn status_of(value: &Value) -> String {
        super::status(value).expect_err("no outcome").message
    }
}
