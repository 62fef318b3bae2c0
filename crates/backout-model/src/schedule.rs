//! The ideal schedule of a procedure: when each step starts if every step takes its `expected`
//! time and starts the moment its needs are done, and which chain of steps decides the total.
//!
//! Lint checks the total against `expected_duration` and the window; render draws it; the
//! executor compares actual times with it. Steps without `expected` count as zero, which lint
//! reports separately. Unlimited parallelism is assumed (`max_parallel` is a throughput bound,
//! not a promise about duration).

use std::collections::HashMap;

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

    #[test]
    fn empty_is_zero() {
        assert_eq!(Schedule::compute(&[]).total, Duration::ZERO);
    }
}
