//! The API's JSON turned back into the records the local printers take (a release, a check
//! report, a run and its steps, deliveries), so a command prints the same lines whether it read
//! a local store or a server.

use backout_core::criteria::{CriterionState, CriterionStatus, Verdict};
use backout_core::release::{CheckReport, CriterionReport};
use backout_store::{Delivery, Release, Run, StepRecord};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::exit_codes::CommandError;

fn unexpected(what: &str, detail: impl std::fmt::Display) -> CommandError {
    CommandError::internal(format!(
        "the server's answer is not the {what} expected ({detail}); are this `backout` and the \
         server the same version?"
    ))
}

fn parse<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, CommandError> {
    serde_json::from_value(value).map_err(|e| unexpected(what, e))
}

/// A release as `GET /api/v1/releases/{id}` and the release operations return it (without its
/// plan text, which the printers do not need).
pub fn release(value: &Value) -> Result<Release, CommandError> {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.entry("plan_source").or_insert_with(|| "".into());
    }
    parse("release", value)
}

/// The verdict and criteria of a check report (`POST …/check`) or of a release's status
/// (`GET /api/v1/releases/{id}`, where they sit beside the release); `None` when the status has
/// none (its stored plan no longer lints).
pub fn report(value: &Value) -> Result<Option<CheckReport>, CommandError> {
    let Some(verdict) = value.get("verdict") else {
        return Ok(None);
    };
    let verdict: Verdict = parse("verdict", verdict.clone())?;
    let criteria = value["criteria"]
        .as_array()
        .map(|list| list.iter().map(criterion).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default();
    Ok(Some(CheckReport {
        release_id: value
            .get("release_id")
            .or_else(|| value.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        verdict,
        requested: value["requested"].as_bool().unwrap_or(false),
        closes_at_ms: value["closes_at_ms"].as_i64(),
        close_reason: value["close_reason"].as_str().map(str::to_string),
        criteria,
    }))
}

fn criterion(value: &Value) -> Result<CriterionReport, CommandError> {
    let state = &value["state"];
    let status = match state["status"].as_str().unwrap_or_default() {
        "pending" => CriterionStatus::Pending,
        "passing" => CriterionStatus::Passing,
        "failing" => CriterionStatus::Failing,
        "erring" => CriterionStatus::Erring,
        "inconclusive" => CriterionStatus::Inconclusive,
        "tripped" => CriterionStatus::Tripped,
        other => return Err(unexpected("criterion", format!("status `{other}`"))),
    };
    let count = |key: &str| {
        state[key]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    Ok(CriterionReport {
        id: value["id"].as_str().unwrap_or_default().to_string(),
        title: value["title"].as_str().unwrap_or_default().to_string(),
        state: CriterionState {
            status,
            consecutive_failures: count("consecutive_failures"),
            consecutive_errors: count("consecutive_errors"),
            passing_since_ms: state["passing_since_ms"].as_i64(),
            last_reason: state["last_reason"].as_str().map(str::to_string),
            last_measured_ms: state["last_measured_ms"].as_i64(),
            total_failures: count("total_failures"),
            shadow: state["shadow"].as_bool().unwrap_or(false),
        },
        measured: value["measured"].as_bool().unwrap_or(false),
        next_due_ms: value["next_due_ms"].as_i64(),
    })
}

/// The checkpoints the plan of a release declares and the one that closes its window
/// (`plan_checkpoints` of `GET /api/v1/releases/{id}`).
pub fn plan_checkpoints(value: &Value) -> (Vec<String>, Option<String>) {
    let declared = value["plan_checkpoints"]["declared"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let no_return = value["plan_checkpoints"]["point_of_no_return"]
        .as_str()
        .map(str::to_string);
    (declared, no_return)
}

/// A run and its steps, as `GET /api/v1/runs/{id}` returns them (the plan text beside the run).
pub fn run(value: &Value) -> Result<(Run, Vec<StepRecord>), CommandError> {
    let mut run = value["run"].clone();
    if let Some(map) = run.as_object_mut() {
        let source = value["plan_source"].as_str().unwrap_or_default();
        map.insert("plan_source".into(), source.into());
    }
    let run: Run = parse("run", run)?;
    let steps: Vec<StepRecord> = parse("steps", value["steps"].clone())?;
    Ok((run, steps))
}

/// The server's run JSON as `backout status RUN --format json` prints it locally: the run
/// (without its plan text) and its steps.
pub fn run_as_printed(value: &Value) -> Value {
    serde_json::json!({ "run": value["run"], "steps": value["steps"] })
}

/// The deliveries of `GET /api/v1/releases/{id}/deliveries`, newest first as the store lists
/// them.
pub fn deliveries(value: &Value) -> Result<Vec<Delivery>, CommandError> {
    parse("deliveries", value["deliveries"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_becomes_a_report() {
        let value = serde_json::json!({
            "id": "rel-1", "verdict": "rollback_required", "requested": true,
            "closes_at_ms": 5, "close_reason": null,
            "criteria": [{ "id": "errors", "title": "Errors", "measured": true, "next_due_ms": 9,
                "state": { "status": "tripped", "consecutive_failures": 3, "consecutive_errors": 0,
                    "passing_since_ms": null, "last_reason": "4% > 1%", "last_measured_ms": 7 } }]
        });
        let parsed = report(&value).expect("parses").expect("has a verdict");
        assert_eq!(parsed.release_id, "rel-1");
        assert_eq!(parsed.verdict, Verdict::RollbackRequired);
        assert!(parsed.requested);
        assert_eq!(parsed.criteria[0].state.status, CriterionStatus::Tripped);
        assert_eq!(parsed.criteria[0].state.consecutive_failures, 3);
        assert!(
            report(&serde_json::json!({ "id": "rel-1" }))
                .expect("parses")
                .is_none()
        );
        let bad = serde_json::json!({ "verdict": "healthy", "criteria": [{ "state": { "status": "odd" } }] });
        assert!(report(&bad).is_err());
    }
}
