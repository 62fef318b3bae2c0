//! Rehearsal evidence as the commands use it: looking it up for a plan's service (`lint`,
//! `render`, `start`, `report --durations`), what it says about the plan's current content, and
//! telling what a finished rehearsal proved (`rehearse`, `resume`).

use backout_model::lint::evidence::{EvidencePolicy, Rehearsed, check_evidence};
use backout_model::{Diagnostic, Duration, Plan, codes};
use backout_store::{Evidence, EvidenceFilter, RunKind, Store};

use crate::cli::RunFormat;
use crate::exit_codes::CommandError;
use crate::output;

/// How many pieces of evidence of one service are read at most.
pub const LIMIT: u32 = 10_000;

/// Every piece of evidence of `service`, newest first.
pub async fn of_service(store: &dyn Store, service: &str) -> Result<Vec<Evidence>, CommandError> {
    let filter = EvidenceFilter {
        service: Some(service.to_string()),
        ..EvidenceFilter::default()
    };
    Ok(store.list_evidence(&filter, LIMIT).await?)
}

/// What lint's pure check needs of a piece of evidence.
pub fn rehearsed(e: &Evidence) -> Rehearsed {
    Rehearsed {
        plan_hash: e.plan_hash.clone(),
        environment: e.environment.clone(),
        actor: e.actor.clone(),
        finished_at_ms: e.finished_at_ms,
        steps: e
            .steps
            .iter()
            .filter(|s| s.state == backout_store::StepState::Succeeded)
            .filter_map(|s| Some((s.step_id.clone(), u64::try_from(s.duration_ms?).ok()?)))
            .collect(),
    }
}

/// The diagnostics of `source` given `evidence` (B084 untested, B085 stale, B086 slow).
pub fn diagnostics(
    source: &str,
    plan: &Plan,
    evidence: &[Evidence],
    require_tested: bool,
    now_ms: i64,
) -> Vec<Diagnostic> {
    let rehearsals: Vec<Rehearsed> = evidence.iter().map(rehearsed).collect();
    check_evidence(
        source,
        plan,
        &rehearsals,
        EvidencePolicy {
            now_ms,
            require_tested,
        },
    )
}

/// Whether the plan is untested or stale: the B084/B085 diagnostic that says so.
pub fn untested(
    source: &str,
    plan: &Plan,
    evidence: &[Evidence],
    now_ms: i64,
) -> Option<Diagnostic> {
    diagnostics(source, plan, evidence, true, now_ms)
        .into_iter()
        .find(|d| d.code == codes::UNTESTED || d.code == codes::STALE)
}

/// Tells what a finished rehearsal proved (or that it is not evidence yet).
pub fn announce(evidence: Option<&Evidence>, run: &backout_store::Run, format: RunFormat) {
    match (evidence, format) {
        (Some(e), RunFormat::Json) => {
            let line = serde_json::json!({
                "event": "evidence_recorded",
                "evidence_id": e.id,
                "run_id": e.run_id,
                "plan_hash": e.plan_hash,
                "environment": e.environment,
                "took_ms": e.took_ms(),
            });
            output::out(&format!("{line}\n"));
        }
        (Some(e), RunFormat::Human) => eprintln!(
            "evidence {} recorded: {} rehearsed in {} by {}, took {} (plan hash {}…){}",
            e.id,
            e.service,
            e.environment,
            e.actor,
            Duration::from_millis(u64::try_from(e.took_ms()).unwrap_or(0)),
            e.plan_hash.get(..12).unwrap_or(&e.plan_hash),
            if e.round_trip.is_some() {
                "; round trip: forward, backout and forward again all succeeded"
            } else {
                ""
            }
        ),
        (None, RunFormat::Human) if run.kind == RunKind::Rehearsal => {
            if !run.state.is_terminal() {
                eprintln!(
                    "not evidence yet: the rehearsal is {}; evidence is recorded when it succeeds (`backout resume {}`)",
                    run.state, run.id
                );
            } else {
                eprintln!("no evidence: the rehearsal {}", run.state);
            }
        }
        (None, _) => {}
    }
}
