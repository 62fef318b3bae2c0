//! `on_error` of a criterion: under `fail` a source error is a failing measurement, so
//! `errors_after` (how many errors in a row make the criterion inconclusive) can never apply;
//! a plan that sets both says something it does not mean (B092).

use super::Checker;
use crate::codes;
use crate::decode::Section;
use crate::diagnostic::Diagnostic;
use crate::spec::{OnError, PlanSpec};

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let Some(Section::Given(criteria)) = spec.criteria.as_deref() else {
        return;
    };
    for criterion in &criteria.rollback_when {
        if criterion.on_error == Some(OnError::Fail)
            && let Some(errors_after) = &criterion.errors_after
        {
            checker.push(
                Diagnostic::warning(
                    codes::ERRORS_AFTER_UNUSED,
                    errors_after.span,
                    format!(
                        "criterion `{}` has on_error: fail, so its errors_after never applies: every source error is a failing measurement",
                        criterion.id.value
                    ),
                )
                .with_help("remove errors_after, or use on_error: inconclusive if an unreachable source should only make it inconclusive"),
            );
        }
    }
}
