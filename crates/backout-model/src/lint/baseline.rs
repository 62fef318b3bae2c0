//! Baseline-relative conditions (`"> 1.5x baseline"`): they need a `baseline:` to compare
//! with, which only a Prometheus criterion can measure (the same query at an earlier time).

use super::Checker;
use crate::codes;
use crate::condition::Condition;
use crate::decode::Spanned;
use crate::diagnostic::Diagnostic;
use crate::spec::CriterionSpec;

/// A criterion's `baseline:` and its conditions agree, and the baseline is well formed.
pub(super) fn criterion(c: &CriterionSpec, checker: &mut Checker) {
    let what = format!("criterion `{}`", c.id.value);
    if let Some(b) = &c.baseline {
        if c.prometheus.is_none() {
            checker.push(
                Diagnostic::error(
                    codes::BASELINE_SOURCE,
                    b.span,
                    format!("{what} has a baseline but is not a Prometheus query"),
                )
                .with_help(
                    "only a Prometheus criterion can measure its own past (the same query at an \
                     earlier time); remove `baseline:` or compare with a fixed number",
                ),
            );
        }
        match (&b.value.offset, &b.value.before_deploy) {
            (Some(d), None) | (None, Some(d)) if d.value.is_zero() => checker.push(
                Diagnostic::error(
                    codes::BASELINE_SPEC,
                    d.span,
                    format!("the baseline of {what} must lie in the past, not 0s away"),
                )
                .with_help("e.g. `baseline: {offset: 1d}` or `baseline: {before_deploy: 1h}`"),
            ),
            (Some(_), None) | (None, Some(_)) => {}
            (given_offset, _) => checker.push(
                Diagnostic::error(
                    codes::BASELINE_SPEC,
                    b.span,
                    if given_offset.is_some() {
                        format!("the baseline of {what} has both offset and before_deploy")
                    } else {
                        format!("the baseline of {what} has neither offset nor before_deploy")
                    },
                )
                .with_help(
                    "`offset: 1d` compares with the value a day before each measurement; \
                     `before_deploy: 1h` with the value an hour before the window opened",
                ),
            ),
        }
    } else {
        relative_without_baseline(
            &what,
            c.fails_if.as_ref(),
            c.passes_if.as_ref(),
            if c.prometheus.is_some() {
                "add `baseline: {offset: 1d}` (or `{before_deploy: 1h}`) to the criterion"
            } else {
                "only a Prometheus criterion can have a baseline: compare with a number"
            },
            checker,
        );
    }
}

/// A check that can have no baseline (a step's verify) must not compare with one.
pub(super) fn verify(
    what: &str,
    fails_if: Option<&Spanned<Condition>>,
    passes_if: Option<&Spanned<Condition>>,
    checker: &mut Checker,
) {
    relative_without_baseline(
        what,
        fails_if,
        passes_if,
        "a verify has no baseline: compare with a number, or name a criterion that has one \
         with `criterion:`",
        checker,
    );
}

fn relative_without_baseline(
    what: &str,
    fails_if: Option<&Spanned<Condition>>,
    passes_if: Option<&Spanned<Condition>>,
    help: &str,
    checker: &mut Checker,
) {
    for (field, cond) in [("fails_if", fails_if), ("passes_if", passes_if)] {
        if let Some(cond) = cond
            && cond.value.is_relative()
        {
            checker.push(
                Diagnostic::error(
                    codes::BASELINE_MISSING,
                    cond.span,
                    format!(
                        "`{field}: {}` of {what} compares with a baseline it does not have",
                        cond.value
                    ),
                )
                .with_help(help),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use test_case::test_case;

    fn plan(criterion: &str, verify: &str) -> String {
        format!(
            r#"
version: 1
release: {{ service: s, version: "2", rollback_to: "1", environment: test }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  rollback_when:
    - {criterion}
window: {{ closes_after: 4h }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure:
  steps:
    - {{ id: roll, exec: ["true"], idempotent: true, verify: {verify} }}
contingency: {{ not_applicable: "t" }}
workarounds: []
expected_duration: {{ not_applicable: "t" }}
communication: {{ not_applicable: "t" }}
testing: {{ not_applicable: "t" }}
"#
        )
    }

    fn codes(criterion: &str, verify: &str) -> Vec<&'static str> {
        let mut codes: Vec<_> = crate::lint(&plan(criterion, verify))
            .diagnostics
            .iter()
            .filter(|d| d.code.starts_with("B11"))
            .map(|d| d.code)
            .collect();
        codes.dedup();
        codes
    }

    const OK_VERIFY: &str = r#"{ prometheus: "q", fails_if: "> 1" }"#;

    #[test_case(r#"{ id: e, prometheus: q, baseline: { offset: 1d }, fails_if: "> 1.5x baseline" }"#, &[]; "offset")]
    #[test_case(r#"{ id: e, prometheus: q, baseline: { before_deploy: 1h }, fails_if: "> baseline + 0.01", passes_if: "<= baseline" }"#, &[]; "before deploy")]
    #[test_case(r#"{ id: e, prometheus: q, baseline: { offset: 1d }, fails_if: "> 0.02" }"#, &[]; "absolute with a baseline is allowed")]
    #[test_case(r#"{ id: e, prometheus: q, fails_if: "> 1.5x baseline" }"#, &["B112"]; "no baseline")]
    #[test_case(r#"{ id: e, command: "echo 1", baseline: { offset: 1d }, fails_if: "> 1.5x baseline" }"#, &["B113"]; "command source")]
    #[test_case(r#"{ id: e, prometheus: q, baseline: { offset: 1d, before_deploy: 1h }, fails_if: "> 1.5x baseline" }"#, &["B114"]; "both")]
    #[test_case(r#"{ id: e, prometheus: q, baseline: {}, fails_if: "> 1.5x baseline" }"#, &["B114"]; "neither")]
    #[test_case(r#"{ id: e, prometheus: q, baseline: { offset: 0s }, fails_if: "> 1.5x baseline" }"#, &["B114"]; "zero")]
    fn criterion_baselines(criterion: &str, expected: &[&str]) {
        assert_eq!(codes(criterion, OK_VERIFY), expected);
    }

    #[test]
    fn a_verify_has_no_baseline() {
        let ok = r#"{ id: e, prometheus: q, fails_if: "> 1" }"#;
        assert_eq!(
            codes(ok, r#"{ prometheus: "q", fails_if: "> 2x baseline" }"#),
            ["B112"]
        );
    }

    #[test]
    fn render_explains_the_baseline_in_words() {
        let text = plan(
            r#"{ id: e, prometheus: q, baseline: { offset: 1d }, fails_if: "> 1.5x baseline" }"#,
            OK_VERIFY,
        );
        let linted = crate::lint(&text);
        let errors: Vec<_> = linted
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::Severity::Error)
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        let plan = linted.plan.unwrap_or_else(|| panic!("{errors:?}"));
        let md = crate::render::markdown(&plan, &crate::render::DocumentInfo::new("p.yaml", "h"));
        assert!(
            md.contains("is above 1.5× its value 1d earlier"),
            "rendered: {md}"
        );
    }
}
