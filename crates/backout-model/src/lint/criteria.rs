//! Criteria and checks: unique ids, exactly one source each, conditions that parse, make sense
//! for the source and do not contradict each other, and sensible cadences.

use super::{Checker, duplicate_ids, step_lists};
use crate::codes;
use crate::condition::Condition;
use crate::decode::{Section, Spanned};
use crate::diagnostic::{Diagnostic, Span};
use crate::duration::Duration;
use crate::spec::{CriteriaSpec, HttpCheckSpec, PlanSpec};

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    if let Some(Section::Given(criteria)) = spec.criteria.as_deref() {
        duplicate_ids(
            criteria.rollback_when.iter().map(|c| &c.id),
            "criterion",
            checker,
        );
        for c in &criteria.rollback_when {
            let sources = super::given(&[
                ("prometheus", c.prometheus.is_some()),
                ("alertmanager", c.alertmanager.is_some()),
                ("http", c.http.is_some()),
                ("command", c.command.is_some()),
            ]);
            let what = format!("criterion `{}`", c.id.value);
            source_count(&sources, c.id.span, &what, checker);
            let needs_condition =
                c.prometheus.is_some() || c.http.as_ref().is_some_and(|h| h.json_pointer.is_some());
            conditions(
                &what,
                c.id.span,
                c.fails_if.as_ref(),
                c.passes_if.as_ref(),
                needs_condition,
                checker,
            );
            super::baseline::criterion(c, checker);
            if c.alertmanager.is_some()
                && let Some(cond) = c.fails_if.as_ref().or(c.passes_if.as_ref())
            {
                checker.push(
                    Diagnostic::error(
                        codes::CONDITION,
                        cond.span,
                        "an alertmanager criterion takes no condition",
                    )
                    .with_help(
                        "the criterion fails while the alert fires; remove fails_if/passes_if",
                    ),
                );
            }
            if let Some(http) = &c.http {
                http_check(http, checker);
            }
            for (field, value) in [("every", &c.every), ("timeout", &c.timeout)] {
                if let Some(d) = value
                    && d.value.is_zero()
                {
                    checker.push(
                        Diagnostic::error(
                            codes::ZERO_DURATION,
                            d.span,
                            format!("`{field}` must be longer than zero"),
                        )
                        .with_help("measure at most every few seconds, e.g. `every: 30s`"),
                    );
                }
            }
            for (field, value) in [
                ("trips_after", &c.trips_after),
                ("errors_after", &c.errors_after),
            ] {
                if let Some(n) = value
                    && n.value == 0
                {
                    checker.push(
                        Diagnostic::error(
                            codes::INVALID_VALUE,
                            n.span,
                            format!("`{field}` must be at least 1"),
                        )
                        .with_help(
                            "it counts consecutive measurements; 1 means the first one decides",
                        ),
                    );
                }
            }
            if let Some(every) = &c.every
                && !every.value.is_zero()
                && every.value < Duration::from_secs(1)
            {
                // Below the executor's own floor (100ms) it is an error: `every: 1ms` ran a shell
                // command 1,344 times in 5 s. Between that and a second it is a warning, since
                // tests measure that fast on purpose.
                let error = every.value < Duration::from_millis(100);
                let message = format!(
                    "criterion `{}` would be measured every {}, more than {} a second",
                    c.id.value,
                    every.value,
                    if error { "ten times" } else { "once" }
                );
                let help = "each measurement is a query or a process; measure every 1s at the most, usually every 30s or 1m";
                checker.push(
                    if error {
                        Diagnostic::error(codes::TOO_FREQUENT, every.span, message)
                    } else {
                        Diagnostic::warning(codes::TOO_FREQUENT, every.span, message)
                    }
                    .with_help(help),
                );
            }
            if let (Some(every), Some(timeout)) = (&c.every, &c.timeout)
                && timeout.value > every.value
            {
                checker.push(Diagnostic::warning(
                    codes::INVALID_VALUE,
                    timeout.span,
                    format!(
                        "a measurement may take {} but one is due every {}",
                        timeout.value, every.value
                    ),
                ));
            }
        }
        trials_and_totals(spec, criteria, checker);
        if let Some(success) = &criteria.success_when
            && success.checks.is_empty()
        {
            checker.push(
                Diagnostic::error(
                    codes::SUCCESS_EMPTY,
                    success.span,
                    "success_when lists no checks",
                )
                .with_help(
                    "list the criteria that must pass for `hold` to call the deployment a success",
                ),
            );
        }
    }
    if let Some(Section::Given(procedure)) = spec.procedure.as_deref()
        && let Some(verify_after) = &procedure.verify_after
        && verify_after.checks.is_empty()
    {
        checker.push(
            Diagnostic::error(
                codes::SUCCESS_EMPTY,
                verify_after.span,
                "verify_after lists no checks",
            )
            .with_help(
                "list the criteria that must hold after the backout, or remove verify_after",
            ),
        );
    }
    for list in step_lists(spec) {
        for step in list.steps {
            let Some(verify) = &step.verify else { continue };
            let sources = super::given(&[
                ("http", verify.http.is_some()),
                ("command", verify.command.is_some()),
                ("prometheus", verify.prometheus.is_some()),
                ("criterion", verify.criterion.is_some()),
            ]);
            let what = format!("the verify of step `{}`", step.id.value);
            source_count(&sources, verify.span, &what, checker);
            let needs_condition = verify.prometheus.is_some()
                || verify
                    .http
                    .as_ref()
                    .is_some_and(|h| h.json_pointer.is_some());
            conditions(
                &what,
                verify.span,
                verify.fails_if.as_ref(),
                verify.passes_if.as_ref(),
                needs_condition,
                checker,
            );
            super::baseline::verify(
                &what,
                verify.fails_if.as_ref(),
                verify.passes_if.as_ref(),
                checker,
            );
            if verify.criterion.is_some()
                && let Some(cond) = verify.fails_if.as_ref().or(verify.passes_if.as_ref())
            {
                checker.push(
                    Diagnostic::error(
                        codes::CONDITION,
                        cond.span,
                        "a verify by criterion takes no condition",
                    )
                    .with_help("the criterion's own conditions apply"),
                );
            }
            if let Some(http) = &verify.http {
                http_check(http, checker);
            }
        }
    }
}

/// `shadow` and `trips_after_total`: a shadow criterion never decides, so naming it where a
/// criterion decides is an error (B110); a total limit at or below the consecutive one makes the
/// latter dead (B111, a warning).
fn trials_and_totals(spec: &PlanSpec, criteria: &CriteriaSpec, checker: &mut Checker) {
    let automatic: Vec<&Spanned<String>> = match spec.authorization.as_deref() {
        Some(Section::Given(a)) => a.automatic.iter().flatten().collect(),
        _ => Vec::new(),
    };
    let verify: Vec<&Spanned<String>> = match spec.procedure.as_deref() {
        Some(Section::Given(p)) => p.verify_after.iter().flat_map(|v| &v.checks).collect(),
        _ => Vec::new(),
    };
    let success: Vec<&Spanned<String>> = criteria
        .success_when
        .iter()
        .flat_map(|s| &s.checks)
        .collect();
    for c in &criteria.rollback_when {
        if let Some(total) = &c.trips_after_total {
            // Without trips_after, the consecutive limit defaults to the total (convert.rs).
            let consecutive = c.trips_after.as_ref().map_or(0, |t| t.value);
            if total.value == 0 {
                checker.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        total.span,
                        "`trips_after_total` must be at least 1",
                    )
                    .with_help("it counts failing measurements in the window, in a row or not"),
                );
            } else if total.value <= consecutive {
                checker.push(
                    Diagnostic::warning(
                        codes::TOTAL_NOT_ABOVE_CONSECUTIVE,
                        total.span,
                        format!(
                            "criterion `{}` trips after {} failing measurements in all, so \
                             `trips_after: {consecutive}` in a row never trips it first",
                            c.id.value, total.value
                        ),
                    )
                    .with_help("raise trips_after_total above trips_after, or drop trips_after"),
                );
            }
        }
        let Some(shadow) = c.shadow.as_ref().filter(|s| s.value) else {
            continue;
        };
        if c.authorize.is_some() {
            checker.push(shadow_decides(
                &c.id.value,
                "`authorize: automatic`",
                shadow.span,
            ));
        }
        for (list, place) in [
            (&automatic, "authorization.automatic"),
            (&success, "success_when.checks"),
            (&verify, "procedure.verify_after.checks"),
        ] {
            for named in list.iter().filter(|n| n.value == c.id.value) {
                checker.push(shadow_decides(&c.id.value, place, named.span));
            }
        }
    }
}

fn shadow_decides(id: &str, place: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::SHADOW_DECIDES,
        span,
        format!("criterion `{id}` is a shadow (measured, never deciding) but is named in {place}"),
    )
    .with_help("remove it there, or drop `shadow: true` once the criterion is trusted")
}

fn source_count(sources: &[&str], span: Span, what: &str, checker: &mut Checker) {
    match sources.len() {
        1 => {}
        0 => checker.push(
            Diagnostic::error(
                codes::CRITERION_SOURCE,
                span,
                format!("{what} has no source"),
            )
            .with_help("give it exactly one of prometheus, alertmanager, http, command"),
        ),
        _ => checker.push(
            Diagnostic::error(
                codes::CRITERION_SOURCE,
                span,
                format!("{what} has several sources: {}", sources.join(", ")),
            )
            .with_help("split it into one criterion per source"),
        ),
    }
}

fn conditions(
    what: &str,
    span: Span,
    fails_if: Option<&Spanned<Condition>>,
    passes_if: Option<&Spanned<Condition>>,
    needs_condition: bool,
    checker: &mut Checker,
) {
    if needs_condition && fails_if.is_none() && passes_if.is_none() {
        checker.push(
            Diagnostic::error(
                codes::CONDITION,
                span,
                format!("{what} reads a number but has no condition"),
            )
            .with_help("add `fails_if: \"> 0.02\"` and/or `passes_if: \"<= 0.005\"`"),
        );
    }
    let (Some(fails), Some(passes)) = (fails_if, passes_if) else {
        return;
    };
    if !Condition::can_pass(&passes.value, &fails.value) {
        checker.push(
            Diagnostic::error(
                codes::CONTRADICTION,
                passes.span,
                format!(
                    "{what} can never pass: every value that passes `{}` also fails `{}`",
                    passes.value, fails.value
                ),
            )
            .with_help(
                "failing wins when both hold; make the passing band lie outside the failing one",
            ),
        );
    } else if Condition::overlaps(&passes.value, &fails.value) {
        checker.push(
            Diagnostic::warning(
                codes::CONTRADICTION,
                passes.span,
                format!(
                    "`passes_if: {}` overlaps `fails_if: {}`; in the overlap failing wins",
                    passes.value, fails.value
                ),
            )
            .with_help("make the bands disjoint so the passing band means what it says"),
        );
    }
}

fn http_check(http: &Spanned<HttpCheckSpec>, checker: &mut Checker) {
    if let Some(pointer) = &http.json_pointer
        && !pointer.value.is_empty()
        && !pointer.value.starts_with('/')
    {
        checker.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                pointer.span,
                format!("`{}` is not a JSON pointer", pointer.value),
            )
            .with_help("a JSON pointer starts with `/`, e.g. /data/error_rate"),
        );
    }
    super::http_method_and_body(http.method.as_ref(), http.body.as_ref(), checker);
    super::http_status(http.expect_status.as_ref(), checker);
    super::http_url(&http.url, checker);
}
