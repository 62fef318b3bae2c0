//! The run's step graph and each step's latest state: which steps are ready, which are
//! satisfied for their dependants, when a contingency branch joins the graph, and the run's
//! verdict. Pure bookkeeping: no I/O.

use std::collections::{BTreeMap, HashMap};

use backout_model::Plan;
use backout_model::plan::{Contingency, OnFailure, Step};
use backout_store::{RunState, StepRecord, StepState};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A step of the procedure or workaround being run.
    Main,
    /// A step of contingency `id`, run because `for_step` failed.
    Contingency { id: String, for_step: String },
}

pub struct Node {
    pub step: Step,
    pub origin: Origin,
    pub record: Option<StepRecord>,
    pub running: bool,
}

pub struct Graph {
    pub nodes: Vec<Node>,
    index: HashMap<String, usize>,
    contingencies: Vec<Contingency>,
    max_parallel: usize,
}

impl Graph {
    pub fn new(plan: &Plan, steps: Vec<Step>) -> Graph {
        let mut graph = Graph {
            nodes: Vec::new(),
            index: HashMap::new(),
            contingencies: plan.contingency.given().cloned().unwrap_or_default(),
            max_parallel: plan
                .procedure
                .given()
                .map_or(16, |p| p.max_parallel as usize)
                .max(1),
        };
        for step in steps {
            graph.add(step, Origin::Main);
        }
        graph
    }

    fn add(&mut self, step: Step, origin: Origin) {
        if self.index.contains_key(&step.id) {
            return;
        }
        self.index.insert(step.id.clone(), self.nodes.len());
        self.nodes.push(Node {
            step,
            origin,
            record: None,
            running: false,
        });
    }

    /// A step's `expected`, in milliseconds.
    pub fn expected_ms(&self, id: &str) -> Option<u64> {
        self.index(id)
            .and_then(|i| self.nodes[i].step.expected)
            .map(|e| e.as_millis())
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn state(&self, index: usize) -> StepState {
        self.nodes[index]
            .record
            .as_ref()
            .map_or(StepState::Pending, |r| r.state)
    }

    /// Applies stored records (at start, on resume, and when people acted), leaving steps this
    /// executor is running alone: their intermediate records are its own.
    pub fn load(&mut self, records: &[StepRecord]) {
        loop {
            let before = self.nodes.len();
            for record in records {
                if let Some(i) = self.index(&record.step_id)
                    && !self.nodes[i].running
                {
                    self.set(i, record.clone());
                }
            }
            if self.nodes.len() == before {
                break;
            }
        }
    }

    /// Records a step's new state; a failure with `on_failure: contingency.<id>` adds the branch.
    pub fn set(&mut self, index: usize, record: StepRecord) {
        self.nodes[index].running = false;
        let failed = record.state == StepState::Failed;
        self.nodes[index].record = Some(record);
        if failed && let OnFailure::Contingency(id) = self.nodes[index].step.on_failure.clone() {
            let for_step = self.nodes[index].step.id.clone();
            if let Some(c) = self.contingencies.iter().find(|c| c.id == id).cloned() {
                for step in c.steps {
                    self.add(
                        step,
                        Origin::Contingency {
                            id: id.clone(),
                            for_step: for_step.clone(),
                        },
                    );
                }
            }
        }
    }

    pub fn mark_running(&mut self, index: usize) {
        self.nodes[index].running = true;
    }

    /// The record to continue from: the stored one, or a fresh pending one.
    pub fn record(&self, index: usize, run_id: &str, now: i64) -> StepRecord {
        self.nodes[index]
            .record
            .clone()
            .unwrap_or_else(|| StepRecord::pending(run_id, self.nodes[index].step.id.clone(), now))
    }

    fn branch(&self, id: &str, for_step: &str) -> impl Iterator<Item = usize> + '_ {
        let origin = Origin::Contingency {
            id: id.to_string(),
            for_step: for_step.to_string(),
        };
        (0..self.nodes.len()).filter(move |i| self.nodes[*i].origin == origin)
    }

    /// Whether dependants of this step may start.
    fn satisfied(&self, index: usize) -> bool {
        match self.state(index) {
            StepState::Succeeded | StepState::Skipped => true,
            StepState::Failed => match &self.nodes[index].step.on_failure {
                OnFailure::Continue => true,
                OnFailure::Halt | OnFailure::Ask => false,
                OnFailure::Contingency(id) => {
                    let branch: Vec<usize> = self.branch(id, &self.nodes[index].step.id).collect();
                    !branch.is_empty() && branch.iter().all(|i| self.satisfied(*i))
                }
            },
            _ => false,
        }
    }

    /// A failure that stops the run: a halting step failed, or a contingency branch failed.
    fn halted(&self) -> bool {
        (0..self.nodes.len()).any(|i| {
            self.state(i) == StepState::Aborted
                || (self.state(i) == StepState::Failed
                    && !self.nodes[i].running
                    && match &self.nodes[i].step.on_failure {
                        // A step that asks waits for a person instead of halting the run.
                        OnFailure::Continue | OnFailure::Ask => false,
                        OnFailure::Halt => true,
                        OnFailure::Contingency(id) => {
                            self.branch(id, &self.nodes[i].step.id).next().is_none()
                        }
                    })
        })
    }

    /// Steps finished (succeeded, failed, skipped, aborted) and steps in the run now, for
    /// progress: a contingency branch adds its steps once it joins.
    pub fn counted(&self) -> (usize, usize) {
        let finished = (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].running && self.state(*i).is_finished())
            .count();
        (finished, self.nodes.len())
    }

    /// A failed step with `on_failure: ask`: the run waits for a performer's choice.
    pub fn asks(&self, index: usize) -> bool {
        self.state(index) == StepState::Failed
            && !self.nodes[index].running
            && self.nodes[index].step.on_failure == OnFailure::Ask
    }

    /// Steps that can start now, in plan order, within `max_parallel` given `running`.
    pub fn ready(&self, running: usize) -> Vec<usize> {
        if self.halted() {
            return Vec::new();
        }
        let room = self.max_parallel.saturating_sub(running);
        (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].running && self.state(*i) == StepState::Pending)
            .filter(|i| {
                self.nodes[*i]
                    .step
                    .needs
                    .iter()
                    .all(|n| self.index(n).is_some_and(|d| self.satisfied(d)))
            })
            .take(room)
            .collect()
    }

    /// Steps waiting for a person: manual confirmations, in-doubt resolutions, and failed steps
    /// with `on_failure: ask` (retry, skip or abort).
    pub fn waiting_for_people(&self) -> Vec<String> {
        (0..self.nodes.len())
            .filter(|i| {
                matches!(
                    self.state(*i),
                    StepState::WaitingManual | StepState::InDoubt
                ) || self.asks(*i)
            })
            .map(|i| self.nodes[i].step.id.clone())
            .collect()
    }

    /// `BACKOUT_OUTPUT_<STEP>_<NAME>` of every finished step with outputs.
    pub fn outputs_env(&self) -> BTreeMap<String, String> {
        self.nodes
            .iter()
            .filter_map(|n| n.record.as_ref().map(|r| (&n.step.id, r)))
            .flat_map(|(id, r)| {
                r.outputs.iter().map(move |(name, value)| {
                    (
                        backout_model::plan::output_variable(id, name),
                        value.clone(),
                    )
                })
            })
            .collect()
    }

    /// The run's state once nothing more can start.
    pub fn verdict(&self) -> RunState {
        if self.halted() {
            RunState::Failed
        } else if !self.waiting_for_people().is_empty() {
            RunState::Waiting
        } else if (0..self.nodes.len()).all(|i| {
            self.satisfied(i)
                || self.nodes[i].origin != Origin::Main
                    && self.state(i) == StepState::Failed
                    && self.satisfied_tolerated(i)
        }) {
            RunState::Succeeded
        } else {
            RunState::Failed
        }
    }

    /// A contingency step that failed with `continue` does not fail the run.
    fn satisfied_tolerated(&self, index: usize) -> bool {
        self.nodes[index].step.on_failure == OnFailure::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
version: 1
release: { service: s, version: "2", rollback_to: "1", environment: test }
owners: { deployment_engineer: a@example.com }
people: { ops: [a@example.com] }
criteria: { not_applicable: "t" }
window: { not_applicable: "t" }
authorization: { deciders: ops }
execution: { performers: ops }
procedure:
  max_parallel: 2
  steps:
    - { id: a, run: "true", expected: 1s, idempotent: true }
    - { id: b, run: "true", expected: 1s, idempotent: true }
    - { id: c, run: "true", expected: 1s, idempotent: true }
    - { id: halt, needs: [a], run: "true", expected: 1s, on_failure: halt }
    - { id: cont, needs: [a], run: "true", expected: 1s, on_failure: continue }
    - { id: branch, needs: [a], run: "true", expected: 1s, on_failure: contingency.fix }
    - { id: after, needs: [cont, branch], run: "true", expected: 1s, idempotent: true }
contingency:
  fix: { description: d, steps: [ { id: fix1, run: "true", expected: 1s } ] }
workarounds: []
expected_duration: 1m
communication: { not_applicable: "t" }
testing: { not_applicable: "t" }
"#;

    fn graph() -> Graph {
        let plan = backout_model::lint(PLAN).plan.expect("test plan lints");
        let steps = plan.steps().to_vec();
        Graph::new(&plan, steps)
    }

    fn finish(g: &mut Graph, id: &str, state: StepState) {
        let i = g.index(id).expect("known step");
        let mut r = g.record(i, "run", 0);
        r.state = state;
        g.set(i, r);
    }

    fn ids(g: &Graph, v: Vec<usize>) -> Vec<String> {
        v.into_iter().map(|i| g.nodes[i].step.id.clone()).collect()
    }

    #[test]
    fn ready_respects_needs_and_max_parallel() {
        let mut g = graph();
        assert_eq!(ids(&g, g.ready(0)), ["a", "b"]);
        assert_eq!(ids(&g, g.ready(1)), ["a"]);
        finish(&mut g, "a", StepState::Succeeded);
        assert_eq!(ids(&g, g.ready(0)), ["b", "c"]);
    }

    #[test]
    fn continue_satisfies_and_contingency_joins_the_graph() {
        let mut g = graph();
        for id in ["a", "b", "c", "halt"] {
            finish(&mut g, id, StepState::Succeeded);
        }
        finish(&mut g, "cont", StepState::Failed);
        finish(&mut g, "branch", StepState::Failed);
        assert!(g.index("fix1").is_some(), "the branch was added");
        assert_eq!(ids(&g, g.ready(0)), ["fix1"], "after waits for the branch");
        finish(&mut g, "fix1", StepState::Succeeded);
        assert_eq!(ids(&g, g.ready(0)), ["after"]);
        finish(&mut g, "after", StepState::Succeeded);
        assert_eq!(g.verdict(), RunState::Succeeded);
    }

    #[test]
    fn a_halting_failure_stops_new_work_and_fails_the_run() {
        let mut g = graph();
        finish(&mut g, "a", StepState::Succeeded);
        finish(&mut g, "halt", StepState::Failed);
        assert!(g.ready(0).is_empty());
        assert_eq!(g.verdict(), RunState::Failed);
    }

    #[test]
    fn a_failing_branch_fails_the_run() {
        let mut g = graph();
        finish(&mut g, "a", StepState::Succeeded);
        finish(&mut g, "branch", StepState::Failed);
        finish(&mut g, "fix1", StepState::Failed);
        assert_eq!(g.verdict(), RunState::Failed);
    }

    #[test]
    fn people_steps_make_the_run_wait() {
        let mut g = graph();
        finish(&mut g, "b", StepState::InDoubt);
        for id in ["a", "c", "halt", "cont", "branch", "after"] {
            finish(&mut g, id, StepState::Succeeded);
        }
        assert_eq!(g.waiting_for_people(), ["b"]);
        assert_eq!(g.verdict(), RunState::Waiting);
    }

    #[test]
    fn loading_records_expands_branches_of_failed_steps() {
        let mut g = graph();
        let mut failed = StepRecord::pending("run", "branch", 0);
        failed.state = StepState::Failed;
        let mut fixed = StepRecord::pending("run", "fix1", 0);
        fixed.state = StepState::Succeeded;
        g.load(&[fixed, failed]);
        let i = g.index("fix1").expect("branch added on load");
        assert_eq!(
            g.state(i),
            StepState::Succeeded,
            "records of branch steps apply once the branch exists"
        );
    }
}
