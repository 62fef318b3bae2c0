//! Time (Q7 against Q2): the critical path of the procedure fits `expected_duration`, the
//! reversion plus its allowed start delay fits the window, timeouts are not shorter than what a
//! step is expected to take, and every step says how long it takes. The worst case (timeouts,
//! retries, contingency branches, `verify_after.hold`; see [`WorstCase`]) is held against the
//! same two limits, as warnings: it is what the bad night may cost, not what is promised.

use super::{Checker, step_lists};
use crate::codes;
use crate::decode::Section;
use crate::diagnostic::Diagnostic;
use crate::duration::Duration;
use crate::schedule::{Schedule, Task, WorstCase, WorstTask, shorter};
use crate::spec::{OnFailure, PlanSpec, StepSpec};

/// The most retries a step may ask for. Bounded like durations (B038), so that attempt counts
/// and worst cases stay small numbers wherever they are computed.
const MAX_RETRIES: u32 = 100;

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let expected_duration = match spec.expected_duration.as_deref() {
        Some(Section::Given(d)) => Some(d),
        _ => None,
    };
    let window = match spec.window.as_deref() {
        Some(Section::Given(w)) => Some(w),
        _ => None,
    };
    let start_within = match spec.execution.as_deref() {
        Some(Section::Given(e)) => e.start_within.as_ref(),
        _ => None,
    };

    for list in step_lists(spec) {
        for step in list.steps {
            if let (Some(expected), Some(timeout)) = (&step.expected, &step.timeout)
                && timeout.value < expected.value
            {
                checker.push(
                    Diagnostic::error(
                        codes::TIMEOUT_BELOW_EXPECTED,
                        timeout.span,
                        format!(
                            "step `{}` times out after {} but is expected to take {}",
                            step.id.value, timeout.value, expected.value
                        ),
                    )
                    .with_help("a normal run would be killed; raise the timeout above `expected`"),
                );
            }
            if let Some(retries) = &step.retries
                && retries.value > MAX_RETRIES
            {
                checker.push(
                    Diagnostic::error(
                        codes::TOO_MANY_RETRIES,
                        retries.span,
                        format!(
                            "step `{}` would be retried {} times",
                            step.id.value, retries.value
                        ),
                    )
                    .with_help(format!("at most {MAX_RETRIES} retries: a step that fails that often needs a person or a contingency, not more attempts")),
                );
            }
            if step.expected.is_none() && !list.label.starts_with("workaround") {
                checker.push(
                    Diagnostic::warning(
                        codes::NO_EXPECTED,
                        step.id.span,
                        format!("step `{}` in {} has no `expected` duration", step.id.value, list.label),
                    )
                    .with_help("Q7 (how long the reversion takes) cannot be answered without it; add e.g. `expected: 2m`"),
                );
            }
            if let Some(timeout) = &step.timeout
                && timeout.value.is_zero()
            {
                checker.push(Diagnostic::error(
                    codes::ZERO_DURATION,
                    timeout.span,
                    "a timeout of zero kills the step at once",
                ));
            }
        }
        if !list.is_procedure || !checker.resolve {
            continue;
        }
        let tasks: Vec<Task<'_>> = list
            .steps
            .iter()
            .map(|s| Task {
                id: &s.id.value,
                needs: s.needs.iter().flatten().map(|n| n.value.as_str()).collect(),
                expected: s.expected.as_ref().map_or(Duration::ZERO, |e| e.value),
            })
            .collect();
        let schedule = Schedule::compute(&tasks);
        if let Some(budget) = expected_duration
            && schedule.total > budget.value
        {
            checker.push(
                Diagnostic::error(
                    codes::OVER_BUDGET,
                    budget.span,
                    format!(
                        "the critical path takes {} ({}) but expected_duration is {}",
                        schedule.total,
                        schedule.critical_path.join(" → "),
                        budget.value
                    ),
                )
                .with_help("shorten or parallelise the steps on the critical path, or promise a longer expected_duration"),
            );
        }
    }

    if let Some(window) = window {
        if window.closes_after.value.is_zero() {
            checker.push(Diagnostic::error(
                codes::ZERO_DURATION,
                window.closes_after.span,
                "a window that closes after 0s leaves no time to roll back",
            ));
        }
        if let Some(budget) = expected_duration {
            let start = start_within.map_or(Duration::ZERO, |s| s.value);
            let needed = start + budget.value;
            if needed > window.closes_after.value {
                let how = match start_within {
                    Some(s) => format!(
                        "starting up to {} after approval plus {} of reversion",
                        s.value, budget.value
                    ),
                    None => format!("{} of reversion", budget.value),
                };
                checker.push(
                    Diagnostic::error(
                        codes::OUTSIDE_WINDOW,
                        window.closes_after.span,
                        format!("{how} needs {needed}, but the window closes after {}", window.closes_after.value),
                    )
                    .with_help("a rollback approved late would not finish in time; widen the window or shorten the procedure"),
                );
            }
        }
        if let Some(Section::Given(criteria)) = spec.criteria.as_deref()
            && let Some(success) = &criteria.success_when
            && success.hold.value > window.closes_after.value
        {
            checker.push(
                Diagnostic::error(
                    codes::HOLD_OVER_WINDOW,
                    success.hold.span,
                    format!(
                        "success needs {} of passing checks but the window closes after {}",
                        success.hold.value, window.closes_after.value
                    ),
                )
                .with_help("success could never be declared inside the window; shorten `hold` or widen the window"),
            );
        }
    }
    if let Some(budget) = expected_duration
        && budget.value.is_zero()
    {
        checker.push(Diagnostic::error(
            codes::ZERO_DURATION,
            budget.span,
            "expected_duration is zero",
        ));
    }
}

/// The worst case of the procedure against `expected_duration` (B039), and `start_within`
/// plus that worst case plus `verify_after.hold` (the time until the rollback is verified)
/// against the window (B046). Warnings: a plan may knowingly promise its expected time and
/// accept a worse night, but it must say so with open eyes.
///
/// Only for a plan without errors (the caller sees to it), like the rendered document: with
/// errors, the numbers would rest on broken values (unknown branches, cycles, bad durations).
pub(super) fn worst_case(spec: &PlanSpec, checker: &mut Checker) {
    let Some(Section::Given(procedure)) = spec.procedure.as_deref() else {
        return;
    };
    let steps = &procedure.steps;
    let expected_duration = match spec.expected_duration.as_deref() {
        Some(Section::Given(d)) => Some(d),
        _ => None,
    };
    let window = match spec.window.as_deref() {
        Some(Section::Given(w)) => Some(w),
        _ => None,
    };
    let start_within = match spec.execution.as_deref() {
        Some(Section::Given(e)) => e.start_within.as_ref(),
        _ => None,
    };
    let branches: Vec<(&str, Vec<WorstTask<'_>>)> = match spec.contingency.as_deref() {
        Some(Section::Given(contingencies)) => contingencies
            .0
            .iter()
            .map(|(id, c)| {
                (
                    id.value.as_str(),
                    c.steps.iter().map(|s| worst_task(s)).collect(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let tasks: Vec<WorstTask<'_>> = steps.iter().map(|s| worst_task(s)).collect();
    let worst = WorstCase::compute(&tasks, &branches);
    let hold = procedure
        .verify_after
        .as_ref()
        .and_then(|v| v.hold.as_ref())
        .map_or(Duration::ZERO, |h| h.value);
    let mut how = describe(&worst);
    if let Some(budget) = expected_duration
        && worst.total > budget.value
        && !budget.value.is_zero()
    {
        checker.push(
            Diagnostic::warning(
                codes::WORST_OVER_BUDGET,
                budget.span,
                format!(
                    "in the worst case the procedure takes {} ({how}), but expected_duration is {}",
                    worst.total, budget.value
                ),
            )
            .with_help("the worst case lets every attempt run into its timeout (or take `expected` where there is none), uses every retry and runs the contingency a failing step names; promise what the bad night costs, or shorten those timeouts, retries or branches"),
        );
    }
    let total = worst.total + hold;
    if !hold.is_zero() {
        how.push_str(&format!(" + verify_after.hold {hold}"));
    }
    if let Some(window) = window
        && !window.closes_after.value.is_zero()
    {
        let start = start_within.map_or(Duration::ZERO, |s| s.value);
        let needed = start + total;
        if needed > window.closes_after.value {
            let from = if start.is_zero() {
                String::new()
            } else {
                format!("starting up to {start} after approval, then ")
            };
            checker.push(
                Diagnostic::warning(
                    codes::WORST_OUTSIDE_WINDOW,
                    window.closes_after.span,
                    format!(
                        "in the worst case a rollback needs {needed} ({from}{total}: {how}), but the window closes after {}",
                        window.closes_after.value
                    ),
                )
                .with_help("a rollback approved late on a bad night would not finish inside the window; widen the window or bound the worst case (timeouts, retries, contingency branches)"),
            );
        }
    }
}

/// "drain 5m → migrate 15m then contingency `restore-db` 45m → confirm 5m".
fn describe(worst: &WorstCase) -> String {
    let mut parts: Vec<String> = Vec::new();
    for id in &worst.schedule.critical_path {
        let Some(step) = worst.steps.iter().find(|s| &s.id == id) else {
            continue;
        };
        let own = step.total;
        let part = match &step.branch {
            Some(b) => format!(
                "{id} {} then contingency `{}` {}",
                minus(own, b.total),
                b.name,
                b.total
            ),
            None => format!("{id} {own}"),
        };
        parts.push(part);
    }
    if parts.is_empty() {
        "no steps".to_string()
    } else {
        parts.join(" → ")
    }
}

fn minus(a: Duration, b: Duration) -> Duration {
    Duration(a.0.saturating_sub(b.0))
}

/// A step of the spec as the worst case sees it.
fn worst_task(s: &StepSpec) -> WorstTask<'_> {
    let own_limit = s.wait.as_ref().and_then(|w| match (&w.r#for, &w.timeout) {
        (Some(d), _) => Some(d.value),
        (None, t) => t.as_ref().map(|t| t.value),
    });
    WorstTask {
        id: &s.id.value,
        needs: s.needs.iter().flatten().map(|n| n.value.as_str()).collect(),
        expected: s.expected.as_ref().map_or(Duration::ZERO, |e| e.value),
        limit: shorter(s.timeout.as_ref().map(|t| t.value), own_limit),
        retries: s.retries.as_ref().map_or(0, |r| r.value),
        retry_delay: s
            .retry_delay
            .as_ref()
            .map_or(crate::convert::defaults::RETRY_DELAY, |r| r.value),
        branch: match s.on_failure.as_ref().map(|o| &o.value) {
            Some(OnFailure::Contingency(name)) => Some(name.as_str()),
            _ => None,
        },
    }
}
