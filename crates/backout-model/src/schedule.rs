//! The ideal schedule of a procedure: when each step starts if every step takes its `expected`
//! time and starts the moment its needs are done, and which chain of steps decides the total.
//!
//! Lint checks the total against `expected_duration` and the window; render draws it; the
//! executor compares actual times with it. Steps without `expected` count as zero, which lint
//! reports separately. Unlimited parallelism is assumed (`max_parallel` is a throughput bound,
//! not a promise about duration).
//!
//! [`WorstCase`] is the same schedule on the bad night: every attempt of every step runs into
//! its timeout, every retry is used (with its delay), and a step whose `on_failure` names a
//! contingency then runs that branch's own worst case before its dependants may start. All
//! arithmetic saturates, so no plan (not even one lint refuses) can make it overflow.

use std::collections::{HashMap, HashSet};

use crate::duration::Duration;

/// One step's place in the ideal schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub start: Duration,
    pub finish: Duration,
    pub critical: bool,
}

/// The ideal schedule of a set of steps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// In the order of the input steps.
    pub slots: Vec<Slot>,
    /// The longest chain of needs, first step first.
    pub critical_path: Vec<String>,
    /// When the last step finishes.
    pub total: Duration,
}

/// The minimal view of a step the schedule needs.
pub struct Task<'a> {
    pub id: &'a str,
    pub needs: Vec<&'a str>,
    pub expected: Duration,
}

impl Schedule {
    /// Computes the schedule. Unknown needs are ignored and steps on a cycle get start zero; lint
    /// reports both, so the schedule never fails.
    pub fn compute(tasks: &[Task<'_>]) -> Schedule {
        let index: HashMap<&str, usize> =
            tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let mut finish: Vec<Option<Duration>> = vec![None; tasks.len()];
        let mut start = vec![Duration::ZERO; tasks.len()];
        let mut via: Vec<Option<usize>> = vec![None; tasks.len()];
        // Iterative depth-first evaluation; `visiting` breaks cycles.
        let mut visiting = vec![false; tasks.len()];
        for root in 0..tasks.len() {
            let mut stack = vec![(root, false)];
            while let Some((i, expanded)) = stack.pop() {
                if finish[i].is_some() {
                    continue;
                }
                let deps: Vec<usize> = tasks[i]
                    .needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .collect();
                if !expanded {
                    if visiting[i] {
                        continue;
                    }
                    visiting[i] = true;
                    stack.push((i, true));
                    stack.extend(
                        deps.iter()
                            .filter(|d| finish[**d].is_none())
                            .map(|d| (*d, false)),
                    );
                    continue;
                }
                let mut best: Option<(Duration, usize)> = None;
                for d in deps {
                    if let Some(f) = finish[d]
                        && best.is_none_or(|(b, _)| f > b)
                    {
                        best = Some((f, d));
                    }
                }
                start[i] = best.map_or(Duration::ZERO, |(f, _)| f);
                via[i] = best.map(|(_, d)| d);
                finish[i] = Some(start[i] + tasks[i].expected);
            }
        }
        let finish: Vec<Duration> = finish.into_iter().map(Option::unwrap_or_default).collect();
        let last = (0..tasks.len()).max_by(|a, b| finish[*a].cmp(&finish[*b]).then(b.cmp(a)));
        let mut path = Vec::new();
        let mut at = last;
        let mut on_path = vec![false; tasks.len()];
        while let Some(i) = at {
            if on_path[i] {
                break;
            }
            on_path[i] = true;
            path.push(i);
            at = via[i];
        }
        path.reverse();
        let mut critical = vec![false; tasks.len()];
        for i in &path {
            critical[*i] = true;
        }
        let slots = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| Slot {
                id: t.id.to_string(),
                start: start[i],
                finish: finish[i],
                critical: critical[i],
            })
            .collect();
        Schedule {
            slots,
            critical_path: path.iter().map(|i| tasks[*i].id.to_string()).collect(),
            total: last.map_or(Duration::ZERO, |i| finish[i]),
        }
    }

    /// The schedule of a validated plan's steps.
    pub fn of_steps(steps: &[crate::plan::Step]) -> Schedule {
        let tasks: Vec<Task<'_>> = steps
            .iter()
            .map(|s| Task {
                id: &s.id,
                needs: s.needs.iter().map(String::as_str).collect(),
                expected: s.expected.unwrap_or_default(),
            })
            .collect();
        Schedule::compute(&tasks)
    }
}

/// One step as the worst case sees it.
#[derive(Clone, Debug)]
pub struct WorstTask<'a> {
    pub id: &'a str,
    pub needs: Vec<&'a str>,
    pub expected: Duration,
    /// The longest one attempt may take (the step's `timeout`, or a wait's own limit); `None`
    /// when nothing bounds it, and then the attempt is assumed to take `expected`.
    pub limit: Option<Duration>,
    pub retries: u32,
    pub retry_delay: Duration,
    /// The contingency branch `on_failure` runs when the last attempt fails.
    pub branch: Option<&'a str>,
}

/// The cost of one step in the worst case, and how it is made up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorstStep {
    pub id: String,
    /// `1 + retries`.
    pub attempts: u32,
    /// What one attempt costs: the limit, or `expected` when the step has none.
    pub attempt: Duration,
    /// True when the step has no timeout and its attempt was assumed to take `expected`.
    pub assumed: bool,
    pub retry_delay: Duration,
    /// The contingency branch run after the last failed attempt, with its own worst case.
    pub branch: Option<WorstBranch>,
    /// attempts × attempt + retries × retry_delay + the branch.
    pub total: Duration,
}

/// A contingency branch's worst case, as part of the step that runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorstBranch {
    pub name: String,
    pub total: Duration,
    /// The branch's own longest chain of steps.
    pub path: Vec<String>,
}

/// The worst case of a list of steps (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorstCase {
    /// The schedule with each step's worst cost: its `critical_path` is the worst path.
    pub schedule: Schedule,
    /// Each input step's worst cost, in input order.
    pub steps: Vec<WorstStep>,
    /// When the last step finishes in the worst case.
    pub total: Duration,
}

impl WorstCase {
    /// The worst case of `steps`, taking the contingency branches in `branches` (by name) where
    /// a step's `on_failure` names one. A branch that is unknown, or that would run itself again
    /// (a cycle through `on_failure`), counts as nothing: lint reports those on their own.
    pub fn compute(steps: &[WorstTask<'_>], branches: &[(&str, Vec<WorstTask<'_>>)]) -> WorstCase {
        let mut memo: HashMap<String, WorstBranch> = HashMap::new();
        let mut visiting: HashSet<String> = HashSet::new();
        worst_of(steps, branches, &mut memo, &mut visiting)
    }

    /// The worst case of a validated plan's procedure and its contingencies.
    pub fn of_plan(plan: &crate::plan::Plan) -> Option<WorstCase> {
        let procedure = plan.procedure.given()?;
        let branches: Vec<(&str, Vec<WorstTask<'_>>)> = plan
            .contingency
            .given()
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.id.as_str(), c.steps.iter().map(worst_task).collect()))
                    .collect()
            })
            .unwrap_or_default();
        let tasks: Vec<WorstTask<'_>> = procedure.steps.iter().map(worst_task).collect();
        Some(WorstCase::compute(&tasks, &branches))
    }
}

/// A validated step as the worst case sees it.
pub fn worst_task(s: &crate::plan::Step) -> WorstTask<'_> {
    use crate::plan::{OnFailure, StepKind, Wait};
    let own_limit = match &s.kind {
        StepKind::Wait(Wait::For(d)) => Some(*d),
        StepKind::Wait(Wait::Until { timeout, .. }) => *timeout,
        _ => None,
    };
    WorstTask {
        id: &s.id,
        needs: s.needs.iter().map(String::as_str).collect(),
        expected: s.expected.unwrap_or_default(),
        limit: shorter(s.timeout, own_limit),
        retries: s.retries,
        retry_delay: s.retry_delay,
        branch: match &s.on_failure {
            OnFailure::Contingency(name) => Some(name.as_str()),
            _ => None,
        },
    }
}

/// The shorter of two optional limits.
pub fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn worst_of(
    steps: &[WorstTask<'_>],
    branches: &[(&str, Vec<WorstTask<'_>>)],
    memo: &mut HashMap<String, WorstBranch>,
    visiting: &mut HashSet<String>,
) -> WorstCase {
    let mut costs = Vec::with_capacity(steps.len());
    for t in steps {
        let attempts = t.retries.saturating_add(1);
        let attempt = t.limit.unwrap_or(t.expected);
        let own = attempt.saturating_mul(attempts) + t.retry_delay.saturating_mul(t.retries);
        let branch = t
            .branch
            .and_then(|name| branch_worst(name, branches, memo, visiting));
        let total = own + branch.as_ref().map_or(Duration::ZERO, |b| b.total);
        costs.push(WorstStep {
            id: t.id.to_string(),
            attempts,
            attempt,
            assumed: t.limit.is_none(),
            retry_delay: t.retry_delay,
            branch,
            total,
        });
    }
    let tasks: Vec<Task<'_>> = steps
        .iter()
        .zip(&costs)
        .map(|(t, c)| Task {
            id: t.id,
            needs: t.needs.clone(),
            expected: c.total,
        })
        .collect();
    let schedule = Schedule::compute(&tasks);
    WorstCase {
        total: schedule.total,
        schedule,
        steps: costs,
    }
}

fn branch_worst(
    name: &str,
    branches: &[(&str, Vec<WorstTask<'_>>)],
    memo: &mut HashMap<String, WorstBranch>,
    visiting: &mut HashSet<String>,
) -> Option<WorstBranch> {
    if let Some(done) = memo.get(name) {
        return Some(done.clone());
    }
    if !visiting.insert(name.to_string()) {
        return None;
    }
    let (_, steps) = branches.iter().find(|(n, _)| *n == name)?;
    let worst = worst_of(steps, branches, memo, visiting);
    visiting.remove(name);
    let branch = WorstBranch {
        name: name.to_string(),
        total: worst.total,
        path: worst.schedule.critical_path,
    };
    memo.insert(name.to_string(), branch.clone());
    Some(branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task<'a>(id: &'a str, needs: &[&'a str], minutes: u64) -> Task<'a> {
        Task {
            id,
            needs: needs.to_vec(),
            expected: Duration::from_secs(minutes * 60),
        }
    }

    #[test]
    fn critical_path_is_the_longest_chain() {
        let s = Schedule::compute(&[
            task("a", &[], 1),
            task("b", &[], 5),
            task("c", &["a", "b"], 2),
            task("d", &["a"], 1),
        ]);
        assert_eq!(s.total, Duration::from_secs(7 * 60));
        assert_eq!(s.critical_path, ["b", "c"]);
        assert_eq!(s.slots[2].start, Duration::from_secs(5 * 60));
        assert!(!s.slots[3].critical);
    }

    #[test]
    fn cycles_and_unknown_needs_do_not_hang() {
        let s = Schedule::compute(&[task("a", &["b", "zz"], 1), task("b", &["a"], 1)]);
        assert!(s.total <= Duration::from_secs(120));
    }

    fn worst<'a>(
        id: &'a str,
        needs: &[&'a str],
        expected: u64,
        limit: Option<u64>,
        retries: u32,
        branch: Option<&'a str>,
    ) -> WorstTask<'a> {
        WorstTask {
            id,
            needs: needs.to_vec(),
            expected: Duration::from_secs(expected * 60),
            limit: limit.map(|m| Duration::from_secs(m * 60)),
            retries,
            retry_delay: Duration::from_secs(30),
            branch,
        }
    }

    #[test]
    fn worst_case_adds_retries_timeouts_and_the_branch() {
        // a (2m, timeout 5m, 1 retry) → b (1m, no timeout, fails into `restore`: 25m, timeout 45m).
        let steps = [
            worst("a", &[], 2, Some(5), 1, None),
            worst("b", &["a"], 1, None, 0, Some("restore")),
            worst("c", &[], 3, Some(4), 0, None),
        ];
        let branches = [(
            "restore",
            vec![worst("snapshot", &[], 25, Some(45), 0, None)],
        )];
        let w = WorstCase::compute(&steps, &branches);
        let min = |m: u64| Duration::from_secs(m * 60);
        // a: 2 × 5m + 30s; b: 1m (assumed: no timeout) + 45m.
        assert_eq!(w.steps[0].total, min(10) + Duration::from_secs(30));
        assert_eq!(w.steps[0].attempts, 2);
        assert!(w.steps[1].assumed);
        assert_eq!(w.steps[1].total, min(46));
        let branch = w.steps[1].branch.as_ref().expect("b runs restore");
        assert_eq!(
            (branch.total, branch.path.clone()),
            (min(45), vec!["snapshot".to_string()])
        );
        assert_eq!(w.total, min(56) + Duration::from_secs(30));
        assert_eq!(w.schedule.critical_path, ["a", "b"]);
        // The expected schedule of the same steps is far shorter.
        let expected =
            Schedule::compute(&[task("a", &[], 2), task("b", &["a"], 1), task("c", &[], 3)]);
        assert_eq!(expected.total, min(3));
    }

    #[test]
    fn branches_that_run_themselves_do_not_recurse_forever() {
        let steps = [worst("a", &[], 1, Some(1), 0, Some("x"))];
        let branches = [
            ("x", vec![worst("x1", &[], 1, Some(2), 0, Some("y"))]),
            ("y", vec![worst("y1", &[], 1, Some(3), 0, Some("x"))]),
        ];
        let w = WorstCase::compute(&steps, &branches);
        // a 1m + x (x1 2m + y (y1 3m + x again: nothing)).
        assert_eq!(w.total, Duration::from_secs(6 * 60));
    }

    #[test]
    fn huge_values_saturate() {
        let mut t = worst("a", &[], 1, None, u32::MAX, None);
        t.limit = Some(Duration(std::time::Duration::MAX));
        let w = WorstCase::compute(&[t], &[]);
        assert_eq!(w.total, Duration(std::time::Duration::MAX));
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Schedule::compute(&[]).total, Duration::ZERO);
    }
}
