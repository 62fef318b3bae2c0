//! `backout report PLAN --durations`: Q7 measured. Per step of the plan, its `expected` next to
//! the median and worst duration measured in successful rehearsals (evidence) and in real runs
//! (release and ad hoc runs of the same service), and the whole procedure against
//! `expected_duration`.

use std::collections::BTreeMap;
use std::path::Path;

use backout_model::lint::evidence::{SLOW_FACTOR, median_and_worst};
use backout_model::{Duration, Plan};
use backout_store::{RunKind, RunState, StepState, Store};
use serde::Serialize;

use crate::cli::LintFormat;
use crate::commands::context::Context;
use crate::commands::shared::evidence::of_service;
use crate::commands::shared::plan::load_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// How many recent runs are searched for real runs of the plan's service.
const RECENT_RUNS: u32 = 500;

/// Measurements of one step (or of the whole procedure), in milliseconds.
#[derive(Debug, Default, Serialize)]
struct Measured {
    samples: usize,
    median_ms: Option<u64>,
    worst_ms: Option<u64>,
}

impl Measured {
    fn of(samples: &[u64]) -> Measured {
        let found = median_and_worst(samples);
        Measured {
            samples: samples.len(),
            median_ms: found.map(|f| f.0),
            worst_ms: found.map(|f| f.1),
        }
    }

    fn cells(&self) -> (String, String, String) {
        let d = |ms: Option<u64>| {
            ms.map_or("-".to_string(), |ms| Duration::from_millis(ms).to_string())
        };
        (
            self.samples.to_string(),
            d(self.median_ms),
            d(self.worst_ms),
        )
    }
}

#[derive(Debug, Serialize)]
struct Row {
    step: String,
    expected_ms: Option<u64>,
    rehearsals: Measured,
    real_runs: Measured,
    /// The rehearsals' median is more than 50% over `expected` (lint's B086).
    slower_than_expected: bool,
}

pub fn report(path: &Path, format: LintFormat, ctx: &Context) -> Result<ExitCode, CommandError> {
    let (_, plan, hash) = load_plan(path)?;
    ctx.runtime()?.block_on(async {
        let store = ctx.open_existing().await?;
        let (rehearsal_steps, rehearsal_totals, this_version) = match &store {
            Some(store) => {
                let evidence = of_service(store.as_ref(), &plan.release.service).await?;
                let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                for e in &evidence {
                    for s in e.steps.iter().filter(|s| s.state == StepState::Succeeded) {
                        if let Some(ms) = s.duration_ms.and_then(|ms| u64::try_from(ms).ok()) {
                            steps.entry(s.step_id.clone()).or_default().push(ms);
                        }
                    }
                }
                let totals: Vec<u64> = evidence
                    .iter()
                    .map(|e| u64::try_from(e.took_ms()).unwrap_or(0))
                    .collect();
                let this = evidence.iter().filter(|e| e.plan_hash == hash).count();
                (steps, totals, this)
            }
            None => Default::default(),
        };
        let (real_steps, real_totals) = match &store {
            Some(store) => real_runs(store.as_ref(), &plan).await?,
            None => Default::default(),
        };
        let rows: Vec<Row> = plan
            .all_steps()
            .filter(|s| {
                plan.steps().iter().any(|p| p.id == s.id)
                    || rehearsal_steps.contains_key(&s.id)
                    || real_steps.contains_key(&s.id)
            })
            .map(|s| {
                let rehearsals = Measured::of(rehearsal_steps.get(&s.id).map_or(&[][..], Vec::as_slice));
                let expected_ms = s.expected.map(Duration::as_millis);
                let slower_than_expected = match (rehearsals.median_ms, expected_ms) {
                    (Some(m), Some(e)) if e > 0 => m as f64 > e as f64 * SLOW_FACTOR,
                    _ => false,
                };
                Row {
                    step: s.id.clone(),
                    expected_ms,
                    rehearsals,
                    real_runs: Measured::of(real_steps.get(&s.id).map_or(&[][..], Vec::as_slice)),
                    slower_than_expected,
                }
            })
            .collect();
        let total_rehearsals = Measured::of(&rehearsal_totals);
        let total_real = Measured::of(&real_totals);
        let promised = plan.expected_duration.given().map(|d| d.as_millis());
        if format == LintFormat::Json {
            let value = serde_json::json!({
                "service": plan.release.service,
                "plan_hash": hash,
                "rehearsals_of_this_version": this_version,
                "expected_duration_ms": promised,
                "procedure": { "rehearsals": total_rehearsals, "real_runs": total_real },
                "steps": rows,
            });
            output::out(&format!("{}\n", output::json(&value)?));
            return Ok(ExitCode::Ok);
        }
        let mut out = format!(
            "# Durations of {} — expected vs measured\n\nRehearsals: {} ({} of this version of the plan); real runs: {}. Measured over every version of the plan, by step id.\n\n",
            plan.release.service,
            total_rehearsals.samples,
            this_version,
            total_real.samples
        );
        out.push_str("| step | expected | rehearsals | median | worst | real runs | median | worst | |\n|---|---|---|---|---|---|---|---|---|\n");
        for row in &rows {
            let (rn, rm, rw) = row.rehearsals.cells();
            let (qn, qm, qw) = row.real_runs.cells();
            out.push_str(&format!(
                "| {} | {} | {rn} | {rm} | {rw} | {qn} | {qm} | {qw} | {} |\n",
                row.step,
                row.expected_ms.map_or("-".into(), |e| Duration::from_millis(e).to_string()),
                if row.slower_than_expected { "⚠ median over expected by more than 50%" } else { "" }
            ));
        }
        let (rn, rm, rw) = total_rehearsals.cells();
        let (qn, qm, qw) = total_real.cells();
        out.push_str(&format!(
            "| **whole procedure** | {} | {rn} | {rm} | {rw} | {qn} | {qm} | {qw} | |\n",
            promised.map_or("n/a".into(), |e| format!("{} (expected_duration)", Duration::from_millis(e)))
        ));
        if total_rehearsals.samples == 0 && total_real.samples == 0 {
            out.push_str("\nNothing measured yet: rehearse with `backout rehearse PLAN --env E`.\n");
        }
        output::out(&out);
        Ok(ExitCode::Ok)
    })
}

/// Step durations and whole-run durations of the succeeded release and ad hoc runs of the
/// plan's service among the recent runs.
async fn real_runs(
    store: &dyn Store,
    plan: &Plan,
) -> Result<(BTreeMap<String, Vec<u64>>, Vec<u64>), CommandError> {
    let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut totals = Vec::new();
    for run in store.list_runs(RECENT_RUNS).await? {
        if !matches!(run.kind, RunKind::Release | RunKind::Adhoc)
            || run.state != RunState::Succeeded
        {
            continue;
        }
        let same_service = backout_model::lint(&run.plan_source)
            .plan
            .is_some_and(|p| p.release.service == plan.release.service);
        if !same_service {
            continue;
        }
        if let Some(finished) = run.finished_at_ms {
            totals.push(u64::try_from(finished - run.created_at_ms).unwrap_or(0));
        }
        for record in store.list_steps(&run.id).await? {
            if record.state != StepState::Succeeded {
                continue;
            }
            if let Some(ms) = record
                .started_at_ms
                .zip(record.finished_at_ms)
                .and_then(|(s, f)| u64::try_from(f - s).ok())
            {
                steps.entry(record.step_id).or_default().push(ms);
            }
        }
    }
    Ok((steps, totals))
}
