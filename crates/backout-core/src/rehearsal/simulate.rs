//! The dry run: the procedure walked on paper. Every step "takes" its `expected` (manual steps
//! confirm themselves, waits take their `for`), `when_checkpoint` steps follow the given
//! checkpoints, and failures can be injected to walk `on_failure` and the contingency branches.
//! The same graph rules as the executor decide what is ready, what a failure unblocks and the
//! run's verdict (`executor::graph`), so the walk matches what a real run would do.
//!
//! Pure: no store, no clock, no processes. A dry run is never evidence.

use std::collections::BTreeSet;

use backout_model::Plan;
use backout_model::plan::{StepKind, Wait};
use backout_store::{RunState, StepState};
use serde::Serialize;

use crate::errors::ExecError;
use crate::executor::graph::{Graph, Origin};
use crate::executor::steps_to_run;

/// What to simulate.
#[derive(Clone, Debug, Default)]
pub struct SimulationOptions {
    /// Checkpoints the forward deployment reached.
    pub checkpoints: Vec<String>,
    /// Steps that fail (every attempt), to walk their `on_failure`.
    pub fail: Vec<String>,
    pub workaround: Option<String>,
}

/// One step in the simulated timeline (milliseconds from the start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimulatedStep {
    pub step_id: String,
    /// The contingency branch it belongs to, when it is not a procedure step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contingency: Option<String>,
    pub state: StepState,
    pub attempts: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub note: String,
}

/// The simulated run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Simulation {
    /// In the order steps started (skipped steps at the time they were reached).
    pub steps: Vec<SimulatedStep>,
    pub outcome: RunState,
    pub total_ms: u64,
    /// Steps never reached (a halting failure stopped the run before them).
    pub not_reached: Vec<String>,
}

/// Walks the procedure (or a workaround) of `plan`. Unknown step ids in `fail` are refused.
pub fn simulate(plan: &Plan, options: &SimulationOptions) -> Result<Simulation, ExecError> {
    let steps = steps_to_run(plan, options.workaround.as_deref())?;
    let known: BTreeSet<&str> = plan.all_steps().map(|s| s.id.as_str()).collect();
    if let Some(unknown) = options.fail.iter().find(|f| !known.contains(f.as_str())) {
        return Err(ExecError::Usage(format!(
            "--fail {unknown}: the plan has no step `{unknown}`"
        )));
    }
    let mut graph = Graph::new(plan, steps);
    let mut out: Vec<SimulatedStep> = Vec::new();
    // Running steps: (end time, graph index, outcome, attempts, note).
    let mut running: Vec<(u64, usize, StepState, u32, String)> = Vec::new();
    let mut now: u64 = 0;
    loop {
        // Start (or skip) everything ready now; skips can unblock more at once.
        loop {
            let ready = graph.ready(running.len());
            if ready.is_empty() {
                break;
            }
            for index in ready {
                let step = graph.nodes[index].step.clone();
                let contingency = match &graph.nodes[index].origin {
                    Origin::Main => None,
                    Origin::Contingency { id, .. } => Some(id.clone()),
                };
                if let Some(checkpoint) = &step.when_checkpoint
                    && !options.checkpoints.contains(checkpoint)
                {
                    let mut record = graph.record(index, "dry-run", 0);
                    record.state = StepState::Skipped;
                    graph.set(index, record);
                    out.push(SimulatedStep {
                        step_id: step.id.clone(),
                        contingency,
                        state: StepState::Skipped,
                        attempts: 0,
                        start_ms: now,
                        end_ms: now,
                        note: format!("checkpoint `{checkpoint}` not reached"),
                    });
                    continue;
                }
                let took = takes(&step.kind, step.expected.map(|e| e.as_millis()));
                let (state, attempts, elapsed, note) = if options.fail.contains(&step.id) {
                    let attempts = step.retries + 1;
                    let elapsed = took * u64::from(attempts)
                        + step.retry_delay.as_millis() * u64::from(step.retries);
                    (
                        StepState::Failed,
                        attempts,
                        elapsed,
                        format!("injected failure; on_failure: {}", on_failure(&step)),
                    )
                } else {
                    let note = match &step.kind {
                        StepKind::Manual { by, .. } => format!("manual, confirmed for {by}"),
                        _ if step.expected.is_none() => "no expected: counts as 0s".to_string(),
                        _ => String::new(),
                    };
                    (StepState::Succeeded, 1, took, note)
                };
                graph.mark_running(index);
                out.push(SimulatedStep {
                    step_id: step.id.clone(),
                    contingency,
                    state: StepState::Running,
                    attempts,
                    start_ms: now,
                    end_ms: now + elapsed,
                    note: note.clone(),
                });
                running.push((now + elapsed, index, state, attempts, note));
            }
        }
        // Finish the step(s) that end first.
        let Some(next) = running.iter().map(|r| r.0).min() else {
            break;
        };
        now = next;
        let (done, rest): (Vec<_>, Vec<_>) = running.into_iter().partition(|r| r.0 == next);
        running = rest;
        for (_, index, state, attempts, _) in done {
            let mut record = graph.record(index, "dry-run", 0);
            record.state = state;
            record.attempt = attempts;
            graph.set(index, record);
            let id = &graph.nodes[index].step.id;
            if let Some(entry) = out.iter_mut().rev().find(|s| &s.step_id == id) {
                entry.state = state;
            }
        }
    }
    let reached: BTreeSet<&str> = out.iter().map(|s| s.step_id.as_str()).collect();
    let not_reached = graph
        .nodes
        .iter()
        .filter(|n| n.origin == Origin::Main && !reached.contains(n.step.id.as_str()))
        .map(|n| n.step.id.clone())
        .collect();
    Ok(Simulation {
        outcome: graph.verdict(),
        total_ms: now,
        steps: out,
        not_reached,
    })
}

/// How long a step takes on paper: its `expected`, else a wait's `for`, else nothing.
fn takes(kind: &StepKind, expected_ms: Option<u64>) -> u64 {
    match (expected_ms, kind) {
        (Some(ms), _) => ms,
        (None, StepKind::Wait(Wait::For(d))) => d.as_millis(),
        _ => 0,
    }
}

fn on_failure(step: &backout_model::plan::Step) -> String {
    match &step.on_failure {
        backout_model::plan::OnFailure::Halt => "halt".into(),
        backout_model::plan::OnFailure::Continue => "continue".into(),
        backout_model::plan::OnFailure::Ask => "ask".into(),
        backout_model::plan::OnFailure::Contingency(id) => format!("contingency.{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
version: 1
release: { service: s, version: "2", rollback_to: "1", environment: test, checkpoints: [expand] }
owners: { deployment_engineer: a@example.com }
people: { ops: [a@example.com] }
criteria: { not_applicable: "t" }
window: { not_applicable: "t" }
authorization: { deciders: ops }
execution: { performers: ops }
procedure:
  max_parallel: 4
  steps:
    - { id: drain, run: "true", expected: 2m, idempotent: true }
    - { id: revert-db, needs: [drain], run: "true", expected: 5m, when_checkpoint: expand, on_failure: contingency.restore }
    - { id: confirm, needs: [drain], manual: { by: ops, instructions: "look" }, expected: 3m }
    - { id: deploy, needs: [revert-db, confirm], run: "true", expected: 4m, retries: 1, retry_delay: 30s, on_failure: halt }
    - { id: smoke, needs: [deploy], run: "true", expected: 1m, idempotent: true }
contingency:
  restore: { description: d, steps: [ { id: restore-backup, run: "true", expected: 10m, on_failure: halt } ] }
workarounds: { not_applicable: "t" }
expected_duration: 30m
communication: { not_applicable: "t" }
testing: { not_applicable: "t" }
"#;

    fn plan() -> Plan {
        backout_model::lint(PLAN).plan.expect("the test plan lints")
    }

    fn options(checkpoints: &[&str], fail: &[&str]) -> SimulationOptions {
        SimulationOptions {
            checkpoints: checkpoints.iter().map(|s| s.to_string()).collect(),
            fail: fail.iter().map(|s| s.to_string()).collect(),
            workaround: None,
        }
    }

    fn timeline(sim: &Simulation) -> Vec<(&str, StepState, u64, u64)> {
        sim.steps
            .iter()
            .map(|s| {
                (
                    s.step_id.as_str(),
                    s.state,
                    s.start_ms / 60_000,
                    s.end_ms / 60_000,
                )
            })
            .collect()
    }

    #[test]
    fn each_step_takes_its_expected_along_the_needs() {
        let sim = simulate(&plan(), &options(&["expand"], &[])).expect("simulates");
        assert_eq!(sim.outcome, RunState::Succeeded);
        assert_eq!(
            timeline(&sim),
            [
                ("drain", StepState::Succeeded, 0, 2),
                ("revert-db", StepState::Succeeded, 2, 7),
                ("confirm", StepState::Succeeded, 2, 5),
                ("deploy", StepState::Succeeded, 7, 11),
                ("smoke", StepState::Succeeded, 11, 12),
            ]
        );
        assert_eq!(sim.total_ms, 12 * 60_000);
        assert!(
            sim.steps[2].note.contains("manual"),
            "manual steps confirm themselves"
        );
    }

    #[test]
    fn steps_of_checkpoints_not_reached_are_skipped() {
        let sim = simulate(&plan(), &options(&[], &[])).expect("simulates");
        assert_eq!(sim.outcome, RunState::Succeeded);
        assert_eq!(sim.steps[1].step_id, "revert-db");
        assert_eq!(sim.steps[1].state, StepState::Skipped);
        assert_eq!(sim.total_ms, 10 * 60_000, "drain, confirm, deploy, smoke");
    }

    #[test]
    fn an_injected_failure_walks_the_contingency_branch() {
        let sim = simulate(&plan(), &options(&["expand"], &["revert-db"])).expect("simulates");
        assert_eq!(sim.outcome, RunState::Succeeded, "the branch recovered");
        let restore = sim
            .steps
            .iter()
            .find(|s| s.step_id == "restore-backup")
            .expect("the branch ran");
        assert_eq!(restore.contingency.as_deref(), Some("restore"));
        assert_eq!(
            (restore.start_ms, restore.end_ms),
            (7 * 60_000, 17 * 60_000)
        );
        assert!(sim.steps[1].note.contains("contingency.restore"));
        assert_eq!(sim.total_ms, 22 * 60_000, "deploy waits for the branch");
    }

    #[test]
    fn a_failing_branch_or_halting_step_fails_the_run() {
        let sim = simulate(
            &plan(),
            &options(&["expand"], &["revert-db", "restore-backup"]),
        )
        .expect("simulates");
        assert_eq!(sim.outcome, RunState::Failed);
        assert!(sim.not_reached.contains(&"deploy".to_string()));

        let sim = simulate(&plan(), &options(&["expand"], &["deploy"])).expect("simulates");
        assert_eq!(sim.outcome, RunState::Failed);
        let deploy = sim
            .steps
            .iter()
            .find(|s| s.step_id == "deploy")
            .expect("ran");
        assert_eq!(deploy.attempts, 2);
        assert_eq!(
            deploy.end_ms - deploy.start_ms,
            8 * 60_000 + 30_000,
            "two attempts and a retry delay"
        );
        assert_eq!(sim.not_reached, ["smoke"]);
    }

    #[test]
    fn unknown_failures_are_refused() {
        let error = simulate(&plan(), &options(&[], &["nope"])).expect_err("unknown step");
        assert!(error.to_string().contains("no step `nope`"), "{error}");
    }
}
