//! Rehearsals: a run of the procedure in a test environment (`testing.overrides.<env>` applied)
//! whose success becomes **evidence** bound to the plan's content hash; the dry run that only
//! simulates (`simulate`); and the round trip's forward deployment command.
//!
//! A rehearsal is an ordinary run of kind `rehearsal` (journal, resume, manual steps,
//! contingency are the executor's). This module adds what happens around it: the environment
//! it runs with, and [`conclude`], which records the evidence once the run succeeded — after
//! `start`, or after the `resume` that finished it. It never judges evidence (that is lint's
//! `check_evidence`, which is pure).

mod document;
mod seal;
mod simulate;

use std::collections::{BTreeSet, HashMap};

use backout_model::Plan;
use backout_model::plan::Answer;
use backout_store::{
    Evidence, ForwardRun, NewEvent, RoundTrip, RunKind, RunState, StepEvidence, StepState, Store,
    StoreError,
};
use serde_json::json;

use crate::env::Resolver;
use crate::errors::ExecError;
use crate::executor::RunSummary;
use crate::process::{self, Exit, Program};

pub use document::{document_info, for_document};
pub use seal::{Unsealed, channels_said, for_run, host_of, reached, seal, unsealed_urls};
pub use simulate::{SimulatedStep, Simulation, SimulationOptions, simulate};

/// The variables `testing.overrides.<environment>.env` sets, with `${VAR}` references resolved
/// from `resolver`. None when the plan has no overrides for the environment.
pub fn overrides(
    plan: &Plan,
    environment: &str,
    resolver: &Resolver,
) -> Result<Vec<(String, String)>, ExecError> {
    let Answer::Given(testing) = &plan.testing else {
        return Ok(Vec::new());
    };
    let Some((_, found)) = testing.overrides.iter().find(|(env, _)| env == environment) else {
        return Ok(Vec::new());
    };
    found
        .env
        .iter()
        .map(|(name, value)| {
            resolver
                .resolve(value)
                .map(|value| (name.clone(), value))
                .map_err(|e| {
                    ExecError::Refused(format!("testing.overrides.{environment}.env.{name}: {e}"))
                })
        })
        .collect()
}

/// The URL prefix rewrites of `testing.overrides.<environment>.urls`.
pub fn url_rewrites(plan: &Plan, environment: &str) -> Vec<(String, String)> {
    plan.testing
        .given()
        .and_then(|t| t.overrides.iter().find(|(env, _)| env == environment))
        .map(|(_, o)| o.urls.clone())
        .unwrap_or_default()
}

/// The evidence a finished run is, if it is a rehearsal that succeeded. Pure: the caller
/// chooses the id and the recording time.
pub fn evidence_of(
    plan: &Plan,
    plan_hash: &str,
    summary: &RunSummary,
    id: String,
    recorded_at_ms: i64,
) -> Option<Evidence> {
    let run = &summary.run;
    if run.kind != RunKind::Rehearsal || run.state != RunState::Succeeded {
        return None;
    }
    let branch_of: HashMap<&str, &str> = plan
        .contingency
        .given()
        .into_iter()
        .flatten()
        .flat_map(|c| c.steps.iter().map(move |s| (s.id.as_str(), c.id.as_str())))
        .collect();
    let procedure: BTreeSet<&str> = plan.steps().iter().map(|s| s.id.as_str()).collect();
    let mut contingencies: Vec<String> = Vec::new();
    let steps = summary
        .steps
        .iter()
        .filter(|r| r.state != StepState::Pending)
        .map(|r| {
            // Procedure ids win: a contingency step can share no id with the procedure (lint).
            let contingency = (!procedure.contains(r.step_id.as_str()))
                .then(|| branch_of.get(r.step_id.as_str()).map(|c| (*c).to_string()))
                .flatten();
            if let Some(c) = &contingency
                && !contingencies.contains(c)
            {
                contingencies.push(c.clone());
            }
            StepEvidence {
                step_id: r.step_id.clone(),
                state: r.state,
                attempts: r.attempt,
                duration_ms: r
                    .started_at_ms
                    .zip(r.finished_at_ms)
                    .map(|(s, f)| (f - s).max(0)),
                contingency,
            }
        })
        .collect();
    Some(Evidence {
        id,
        run_id: run.id.clone(),
        plan_hash: plan_hash.to_string(),
        service: plan.release.service.clone(),
        environment: run.environment.clone(),
        actor: run.actor.clone(),
        started_at_ms: run.created_at_ms,
        finished_at_ms: run.finished_at_ms.unwrap_or(run.updated_at_ms),
        steps,
        contingencies,
        round_trip: None,
        recorded_at_ms,
    })
}

/// Records the evidence of `summary`'s run when it is a rehearsal that succeeded; returns it
/// (or the evidence recorded before, when another process concluded the run first). `None` for
/// any other run. The evidence and its `evidence_recorded` event commit together.
pub async fn conclude(
    store: &dyn Store,
    summary: &RunSummary,
    actor: &str,
    round_trip: Option<RoundTrip>,
    now_ms: i64,
) -> Result<Option<Evidence>, ExecError> {
    let run = &summary.run;
    if run.kind != RunKind::Rehearsal || run.state != RunState::Succeeded {
        return Ok(None);
    }
    if let Some(existing) = store.evidence_of_run(&run.id).await? {
        return Ok(Some(existing));
    }
    let linted = backout_model::lint(&run.plan_source);
    let Some(plan) = linted.plan else {
        return Err(ExecError::InvalidPlan {
            run_id: run.id.clone(),
            message: format!("{} error(s)", linted.errors()),
        });
    };
    let id = backout_store::new_evidence_id(now_ms);
    let Some(mut evidence) = evidence_of(&plan, &run.plan_hash, summary, id, now_ms) else {
        return Ok(None);
    };
    evidence.round_trip = round_trip;
    let event = NewEvent::new("evidence_recorded", actor, now_ms)
        .run(&run.id)
        .payload(json!({
            "evidence_id": evidence.id,
            "plan_hash": evidence.plan_hash,
            "environment": evidence.environment,
            "took_ms": evidence.took_ms(),
            "contingencies": evidence.contingencies,
            "round_trip": evidence.round_trip.is_some(),
        }));
    match store.record_evidence(&evidence, &event).await {
        Ok(_) => Ok(Some(evidence)),
        // Concluded meanwhile by another process (two resumes racing): keep the first.
        Err(StoreError::Conflict { .. }) => Ok(store.evidence_of_run(&run.id).await?),
        Err(e) => Err(e.into()),
    }
}

/// Runs the forward deployment command of a round trip (`sh -c`, in its own process group),
/// with `env` added to backout's environment; its output goes to backout's standard error.
pub async fn forward(
    command: &str,
    env: &[(String, String)],
    now_ms: impl Fn() -> i64,
) -> (ForwardRun, String) {
    let started_at_ms = now_ms();
    let (_, cancel) = tokio::sync::watch::channel(false);
    // The forward command is the operator's own (given on the command line, not by the plan):
    // it keeps backout's environment.
    let env: Vec<(String, String)> = std::env::vars().chain(env.iter().cloned()).collect();
    let outcome = process::run(
        Program::Shell(command),
        &env,
        None,
        cancel,
        process::KILL_GRACE,
        None,
    )
    .await;
    let exit_status = match outcome.exit {
        Exit::Code(code) => Some(code),
        _ => None,
    };
    let output = format!("{}{}", outcome.stdout, outcome.stderr);
    (
        ForwardRun {
            exit_status,
            started_at_ms,
            finished_at_ms: now_ms(),
        },
        output,
    )
}

/// Whether a forward run succeeded.
pub fn forward_ok(run: &ForwardRun) -> bool {
    run.exit_status == Some(0)
}
