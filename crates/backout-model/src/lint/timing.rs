//! Time (Q7 against Q2): the critical path of the procedure fits `expected_duration`, the
//! reversion plus its allowed start delay fits the window, timeouts are not shorter than what a
//! step is expected to take, and every step says how long it takes.

use super::{Checker, step_lists};
use crate::codes;
use crate::decode::Section;
use crate::diagnostic::Diagnostic;
use crate::duration::Duration;
use crate::schedule::{Schedule, Task};
use crate::spec::PlanSpec;

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
