//! Drills: game days that time the whole human loop on a practice release.
//!
//! A game day opens a *drill* release (its `release_started` says `drill: true`; its version
//! reads `… [DRILL]`, so every status line, page and message names it), injects a fault, lets
//! the real loop run (criteria, deciders through the plan's channels, a performer, the
//! procedure, `verify_after`) and journals a `gameday_reported` event with the measured legs
//! ([`Legs`]). Nothing here runs processes or talks to people: the binary does, through the
//! same release operations as a real incident. Reports are journal events, never new tables.

pub mod legs;
pub mod rehearse;
pub mod schedule;

pub use legs::{FAULT_INJECTED, LEG_NAMES, Legs, Moment, human};

use backout_model::Plan;
use backout_model::plan::Answer;
use backout_store::{Event, NewEvent, NewRelease, Release, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::ExecError;
pub use crate::release::decide::GAMEDAY;

/// The event that carries a game day's measured legs.
pub const GAMEDAY_REPORTED: &str = "gameday_reported";

/// What marks a drill wherever a release's version is shown.
pub const DRILL_LABEL: &str = "[DRILL]";

/// What `backout gameday` opens.
pub struct OpenDrill<'a> {
    pub source: &'a str,
    /// The environment the drill runs in (`--env`).
    pub environment: &'a str,
    pub actor: &'a str,
    pub at_ms: i64,
    /// The fault injection (`--break`), journaled so the report says what was broken.
    pub break_command: &'a str,
    pub heal_command: Option<&'a str>,
    /// `--auto`: decisions and execution by [`GAMEDAY`].
    pub auto: bool,
}

/// Opens the practice release of a game day: the plan's window from now, in `environment`,
/// marked as a drill in its journal and in its version.
pub async fn open(store: &dyn Store, request: &OpenDrill<'_>) -> Result<Release, ExecError> {
    let linted = backout_model::lint(request.source);
    let errors = linted.errors();
    let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
        return Err(ExecError::Refused(format!(
            "the plan has {errors} error(s); run `backout lint` on it first"
        )));
    };
    if request.environment.trim().is_empty() {
        return Err(ExecError::Usage(
            "a game day needs the environment it runs in (--env)".into(),
        ));
    }
    let closes_at_ms = match &plan.window {
        Answer::Given(w) => {
            Some(request.at_ms + i64::try_from(w.closes_after.as_millis()).unwrap_or(i64::MAX / 2))
        }
        Answer::NotApplicable(_) => None,
    };
    let id = backout_store::new_release_id(request.at_ms);
    let new = NewRelease {
        id: id.clone(),
        plan_hash: hash.clone(),
        plan_source: request.source.to_string(),
        service: plan.release.service.clone(),
        version: format!("{} {DRILL_LABEL}", plan.release.version),
        rollback_to: plan.release.rollback_to.clone(),
        environment: request.environment.to_string(),
        actor: request.actor.to_string(),
        opened_at_ms: request.at_ms,
        closes_at_ms,
    };
    let event = NewEvent::new("release_started", request.actor, request.at_ms)
        .payload(json!({
            "service": new.service,
            "version": new.version,
            "rollback_to": new.rollback_to,
            "plan_hash": hash,
            "closes_at_ms": closes_at_ms,
            "drill": true,
            "gameday": {
                "environment": request.environment,
                "break": request.break_command,
                "heal": request.heal_command,
                "auto": request.auto,
            },
        }))
        .release(&id);
    store.create_release(&new, &event).await?;
    Ok(store.get_release(&id).await?)
}

/// The journaled moment the fault was injected: `--break` ran (from `started_ms`) and exited
/// with `exit_code`. Its time is the end of the command: only then is the fault in place.
pub fn fault_injected(
    release_id: &str,
    actor: &str,
    command: &str,
    started_ms: i64,
    finished_ms: i64,
    exit_code: Option<i32>,
) -> NewEvent {
    NewEvent::new(FAULT_INJECTED, actor, finished_ms)
        .payload(json!({
            "command": command,
            "started_at_ms": started_ms,
            "exit_code": exit_code,
        }))
        .release(release_id)
}

/// `execution.start_within` and `expected_duration` of a plan, in ms: what two legs are
/// measured against.
pub fn budgets(plan: &Plan) -> (Option<i64>, Option<i64>) {
    let ms = |d: backout_model::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2);
    (
        plan.execution.given().and_then(|e| e.start_within).map(ms),
        plan.expected_duration.given().copied().map(ms),
    )
}

/// A game day's report as journaled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub release_id: String,
    pub service: String,
    pub environment: String,
    pub plan_hash: String,
    /// When the report was journaled.
    pub at_ms: i64,
    /// Who ran the game day.
    pub by: String,
    pub legs: Legs,
    /// How the game day ended: `rolled_back`, `rollback_unverified`, `rollback_failed`,
    /// `timed_out`, `interrupted`, `break_failed`.
    pub outcome: String,
    /// `--heal`'s exit code (`None`: no heal given, or it could not run).
    pub heal_exit_code: Option<i32>,
}

/// The `gameday_reported` event of `report` (its `legs` with their durations, and the line
/// people read).
pub fn reported(report: &Report) -> NewEvent {
    let mut payload = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Some(map) = payload.as_object_mut() {
        map.insert("legs".into(), report.legs.to_json());
        map.insert("summary".into(), Value::from(report.legs.summary()));
        map.insert("complete".into(), Value::from(report.legs.complete()));
    }
    NewEvent::new(GAMEDAY_REPORTED, &report.by, report.at_ms)
        .payload(payload)
        .release(&report.release_id)
}

/// A report read back from its event (`None` for a payload this version cannot read).
pub fn report_of(event: &Event) -> Option<Report> {
    if event.kind != GAMEDAY_REPORTED {
        return None;
    }
    let mut payload = event.payload.clone();
    if let Some(legs) = payload.get_mut("legs").and_then(Value::as_object_mut) {
        legs.remove("durations_ms");
    }
    serde_json::from_value(payload).ok()
}

/// Every game-day report of `service`, oldest first (the journal's order).
pub async fn reports_of(store: &dyn Store, service: &str) -> Result<Vec<Report>, ExecError> {
    let mut reports = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .events_of_kinds(after, &[GAMEDAY_REPORTED], 1000)
            .await?;
        reports.extend(
            page.iter()
                .filter_map(report_of)
                .filter(|r| r.service == service),
        );
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => return Ok(reports),
        }
    }
}

/// The line Q9 shows beside the rehearsal: "last game day (2026-12-02T11:40:00Z, staging):
/// detection 48 s, decision 6 m (fallback reached), …".
pub fn q9_line(report: &Report) -> String {
    format!(
        "last game day ({}, {}{}): {}",
        crate::time::utc(report.at_ms),
        report.environment,
        if report.legs.complete() {
            String::new()
        } else {
            format!(", ended {}", report.outcome)
        },
        report.legs.summary()
    )
}
