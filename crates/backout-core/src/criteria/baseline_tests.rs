//! Classification of baseline-relative conditions (`"> 1.5x baseline"`).

use super::{Measured, Observation, Series, classify};
use backout_model::plan::{Baseline, Criterion};

const PLAN: &str = r#"
version: 1
release: { service: s, version: "2", rollback_to: "1", environment: test }
owners: { deployment_engineer: a@example.com }
people: { ops: [a@example.com] }
criteria:
  rollback_when:
    - { id: ratio, prometheus: "q", baseline: { offset: 1d }, fails_if: "> 1.5x baseline" }
    - { id: plus, prometheus: "q", baseline: { before_deploy: 1h }, fails_if: "> baseline + 0.01", passes_if: "<= baseline" }
    - { id: strict, prometheus: "q", baseline: { offset: 1d }, fails_if: "> 2x baseline", no_data: fail }
window: { closes_after: 4h }
authorization: { deciders: ops }
execution: { performers: ops }
procedure: { not_applicable: "t" }
contingency: { not_applicable: "t" }
workarounds: []
expected_duration: { not_applicable: "t" }
communication: { not_applicable: "t" }
testing: { not_applicable: "t" }
"#;

fn criterion(id: &str) -> Criterion {
    let linted = backout_model::lint(PLAN);
    let plan = linted.plan.expect("test plan lints");
    plan.criterion(id).cloned().expect("known criterion")
}

fn one(value: f64, baseline: Option<f64>) -> Observation {
    Observation::Values {
        series: vec![Series {
            labels: vec![],
            value,
            baseline,
        }],
    }
}

#[test]
fn baselines_reach_the_plan() {
    assert_eq!(
        criterion("ratio").baseline,
        Some(Baseline::Offset(backout_model::Duration::from_secs(86_400)))
    );
    assert_eq!(
        criterion("plus").baseline,
        Some(Baseline::BeforeDeploy(backout_model::Duration::from_secs(
            3600
        )))
    );
}

#[test]
fn ratio_trips_above_one_and_a_half_times_the_baseline() {
    let c = criterion("ratio");
    assert_eq!(
        classify(&c, &one(0.031, Some(0.012))),
        (
            Measured::Failing,
            "0.031 is above 1.5x baseline 0.012 (2.6x)".into()
        )
    );
    assert_eq!(
        classify(&c, &one(0.017, Some(0.012))),
        (Measured::Passing, "0.017 (baseline 0.012, 1.4x)".into())
    );
    // Exactly 1.5x is not above it.
    assert_eq!(classify(&c, &one(3.0, Some(2.0))).0, Measured::Passing);
}

#[test]
fn plus_bands_compare_with_the_baseline() {
    let c = criterion("plus");
    assert_eq!(classify(&c, &one(0.025, Some(0.01))).0, Measured::Failing);
    assert_eq!(classify(&c, &one(0.009, Some(0.01))).0, Measured::Passing);
    let (class, reason) = classify(&c, &one(0.015, Some(0.01)));
    assert_eq!(class, Measured::Inconclusive);
    assert!(
        reason.contains("baseline 0.01"),
        "the reason names the baseline: {reason}"
    );
}

#[test]
fn no_baseline_data_follows_no_data() {
    assert_eq!(
        classify(&criterion("ratio"), &one(100.0, None)),
        (Measured::Inconclusive, "no baseline data".into())
    );
    assert_eq!(
        classify(&criterion("ratio"), &one(100.0, Some(f64::NAN))).0,
        Measured::Inconclusive
    );
    assert_eq!(
        classify(&criterion("strict"), &one(0.0, None)),
        (Measured::Failing, "no baseline data (no_data: fail)".into())
    );
}

#[test]
fn old_journal_series_without_baseline_still_decode() {
    let series: Series = serde_json::from_str(r#"{"labels":[],"value":0.5}"#).unwrap();
    assert_eq!(series.baseline, None);
    let with = serde_json::to_string(&Series {
        labels: vec![],
        value: 1.0,
        baseline: Some(0.5),
    })
    .unwrap();
    assert_eq!(with, r#"{"labels":[],"value":1.0,"baseline":0.5}"#);
}
