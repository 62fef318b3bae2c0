//! Evaluation semantics of plan format v1 (DESIGN.md "criteria"), as pure functions.
//!
//! - A measurement is `failing` (`fails_if` holds for any series; failing wins), `passing` (not
//!   failing and `passes_if` holds when given), or `inconclusive` (between the bands, no data under
//!   `no_data: inconclusive`, NaN, or the source erred `errors_after` times in a row). With only
//!   `passes_if`, a value outside it is failing: the band is the definition of healthy. Under
//!   `on_error: fail` a source error is a failing measurement (the service itself is down), with
//!   the error as its reason, and counts toward `trips_after`.
//! - A criterion is `pending` until its first measurement after `delay`; `tripped` after
//!   `trips_after` consecutive failing measurements, and stays tripped until re-armed (a decider
//!   denied the rollback) or the rollback ran; `failing` while fewer failures than that are in a
//!   row; `erring` after a source error, while fewer than `errors_after` are in a row (never
//!   `passing`: an error since the last good measurement is not health); otherwise what its
//!   latest measurement was.
//! - `trips_after_total`: the criterion also trips after that many failing measurements since
//!   the window opened (or it was re-armed), in a row or not (Argo Rollouts' failureLimit).
//! - A `shadow` criterion runs through the same states (it may read `tripped`: it would have
//!   tripped) but the verdict leaves it out: it never trips a rollback or decides.
//! - Release verdict: `rollback_required` (any tripped, or requested) > `inconclusive` (any
//!   inconclusive) > `degrading` (any failing below `trips_after`, or erring) > `success` (every
//!   `success_when` check passing for `hold`) > `healthy`; after the window closed, `closed`.

use backout_model::Condition;
use backout_model::plan::{Criterion, NoData, OnError};
use serde::{Deserialize, Serialize};

/// One labelled value of a query result (a scalar has no labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The same series' baseline value (criteria with `baseline:`); absent in journals written
    /// before baselines existed and for sources that have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
}

/// What a source saw in one measurement. Stored in the journal, so a criterion's state can be
/// replayed from its measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// Numbers to judge by the criterion's conditions.
    Values { series: Vec<Series> },
    /// A source that judges by itself: a firing alert, an exit status, an HTTP status.
    Judged { failing: bool, detail: String },
    /// An empty result.
    NoData,
    /// The source could not be read (timeout, connection refused, bad query).
    Error { message: String },
}

/// How one measurement is classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measured {
    Failing,
    Passing,
    Inconclusive,
    /// A source error not yet counted as inconclusive (fewer than `errors_after` in a row).
    Erred,
}

/// Classifies one observation under a criterion's conditions and `no_data`; returns the class and
/// a one-line reason (with the labels of the deciding series).
pub fn classify(criterion: &Criterion, observation: &Observation) -> (Measured, String) {
    match observation {
        Observation::Judged {
            failing: true,
            detail,
        } => (Measured::Failing, detail.clone()),
        Observation::Judged {
            failing: false,
            detail,
        } => (Measured::Passing, detail.clone()),
        Observation::Error { message } => match criterion.on_error {
            OnError::Fail => (
                Measured::Failing,
                format!("source error: {message} (on_error: fail)"),
            ),
            OnError::Inconclusive => (Measured::Erred, format!("source error: {message}")),
        },
        Observation::NoData => no_data(criterion),
        Observation::Values { series } if series.is_empty() => no_data(criterion),
        Observation::Values { series } => {
            let mut worst = (Measured::Passing, String::new());
            for s in series {
                let (class, reason) = judge(criterion, s);
                match class {
                    Measured::Failing => return (class, reason),
                    Measured::Inconclusive if worst.0 == Measured::Passing => {
                        worst = (class, reason)
                    }
                    _ if worst.1.is_empty() => worst.1 = reason,
                    _ => {}
                }
            }
            worst
        }
    }
}

fn no_data(criterion: &Criterion) -> (Measured, String) {
    match criterion.no_data {
        NoData::Fail => (Measured::Failing, "no data (no_data: fail)".into()),
        NoData::Inconclusive => (Measured::Inconclusive, "no data".into()),
    }
}

fn judge(criterion: &Criterion, s: &Series) -> (Measured, String) {
    let (fails_if, passes_if) = (criterion.fails_if, criterion.passes_if);
    let labels = if s.labels.is_empty() {
        String::new()
    } else {
        format!(
            " {{{}}}",
            s.labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let value = shown(s.value);
    if s.value.is_nan() {
        return (Measured::Inconclusive, format!("value NaN{labels}"));
    }
    let relative =
        fails_if.is_some_and(|c| c.is_relative()) || passes_if.is_some_and(|c| c.is_relative());
    let baseline = s.baseline.filter(|b| !b.is_nan());
    if relative && baseline.is_none() {
        // Nothing to compare with is no data, whatever the value is now.
        let (class, reason) = no_data(criterion);
        return (
            class,
            reason.replacen("no data", &format!("no baseline data{labels}"), 1),
        );
    }
    let describe = |c: Condition| match (c.is_relative(), baseline) {
        (true, Some(b)) => {
            let ratio = if b == 0.0 {
                String::new()
            } else {
                format!(" ({}x)", ratio(s.value / b))
            };
            format!(
                "{}{ratio}",
                c.describe_baseline("x", &format!("baseline {}", shown(b)))
            )
        }
        _ => c.describe(),
    };
    if let Some(f) = fails_if
        && f.holds_against(s.value, baseline)
    {
        return (
            Measured::Failing,
            format!("{value}{labels} {}", describe(f)),
        );
    }
    match (fails_if, passes_if) {
        (_, Some(p)) if p.holds_against(s.value, baseline) => (
            Measured::Passing,
            format!("{value}{labels} {}", describe(p)),
        ),
        (Some(_), Some(p)) => (
            Measured::Inconclusive,
            format!(
                "{value}{labels} is between the bands (passing needs it to be {})",
                describe(p).trim_start_matches("is ")
            ),
        ),
        (None, Some(p)) => (
            Measured::Failing,
            format!("{value}{labels} does not hold `{p}`{}", {
                let b = baseline.filter(|_| p.is_relative());
                b.map_or(String::new(), |b| format!(" (baseline {})", shown(b)))
            }),
        ),
        (Some(f), None) if f.is_relative() => (
            Measured::Passing,
            format!(
                "{value}{labels} (baseline {}{})",
                baseline.map_or("?".into(), shown),
                baseline
                    .filter(|b| *b != 0.0)
                    .map_or(String::new(), |b| format!(", {}x", ratio(s.value / b)))
            ),
        ),
        (_, None) => (Measured::Passing, format!("{value}{labels}")),
    }
}

/// A value/baseline ratio as people read it: `2.6`, `0.42`, `12`.
fn ratio(r: f64) -> String {
    if !r.is_finite() {
        return shown(r);
    }
    let text = if r.abs() >= 10.0 {
        format!("{r:.0}")
    } else if r.abs() >= 1.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A measured value as people read it: six significant digits (`0.000999001`, not
/// `0.0009990009990009992`); the journal keeps the exact value in the observation.
fn shown(value: f64) -> String {
    if !value.is_finite() || value.fract() == 0.0 {
        return backout_model::condition::format_number(value);
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = usize::try_from((5 - magnitude).clamp(0, 17)).unwrap_or(0);
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A criterion's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionStatus {
    Pending,
    Passing,
    /// Failing, but fewer than `trips_after` times in a row.
    Failing,
    /// The source erred since the last good measurement, fewer than `errors_after` times in a
    /// row: not yet inconclusive, but not passing either.
    Erring,
    Inconclusive,
    Tripped,
}

impl CriterionStatus {
    /// The status's name, as in JSON (`tripped`).
    pub fn as_str(self) -> &'static str {
        match self {
            CriterionStatus::Pending => "pending",
            CriterionStatus::Passing => "passing",
            CriterionStatus::Failing => "failing",
            CriterionStatus::Erring => "erring",
            CriterionStatus::Inconclusive => "inconclusive",
            CriterionStatus::Tripped => "tripped",
        }
    }
}

/// Everything the evaluation remembers about one criterion between measurements (also what a
/// `criteria_snapshot` event keeps of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionState {
    pub status: CriterionStatus,
    pub consecutive_failures: u32,
    pub consecutive_errors: u32,
    /// Since when (ms) every measurement passed, for `success_when.hold`.
    pub passing_since_ms: Option<i64>,
    /// The latest reason, for status and notifications.
    pub last_reason: Option<String>,
    pub last_measured_ms: Option<i64>,
    /// Failing measurements since the window opened or the criterion was re-armed, for
    /// `trips_after_total`.
    #[serde(default)]
    pub total_failures: u32,
    /// A shadow criterion's state: how it would have voted, left out of the verdict.
    #[serde(default)]
    pub shadow: bool,
}

impl Default for CriterionState {
    fn default() -> Self {
        CriterionState {
            status: CriterionStatus::Pending,
            consecutive_failures: 0,
            consecutive_errors: 0,
            passing_since_ms: None,
            last_reason: None,
            last_measured_ms: None,
            total_failures: 0,
            shadow: false,
        }
    }
}

impl CriterionState {
    /// Applies one measurement taken at `at_ms`. Measurements during the warm-up (`delay` after
    /// the window opened at `opened_ms`) are ignored.
    pub fn observe(
        &mut self,
        criterion: &Criterion,
        observation: &Observation,
        at_ms: i64,
        opened_ms: i64,
    ) {
        self.shadow = criterion.shadow;
        if at_ms < opened_ms + i64::try_from(criterion.delay.as_millis()).unwrap_or(i64::MAX) {
            return;
        }
        self.apply(criterion, classify(criterion, observation), at_ms);
    }

    /// [`observe`](Self::observe) of a measurement already classified (`classify`'s answer):
    /// a backtest classifies each measurement of a history once and replays it many times.
    pub fn observe_classified(
        &mut self,
        criterion: &Criterion,
        classified: (Measured, String),
        at_ms: i64,
        opened_ms: i64,
    ) {
        self.shadow = criterion.shadow;
        if at_ms < opened_ms + i64::try_from(criterion.delay.as_millis()).unwrap_or(i64::MAX) {
            return;
        }
        self.apply(criterion, classified, at_ms);
    }

    fn apply(&mut self, criterion: &Criterion, (class, reason): (Measured, String), at_ms: i64) {
        self.last_reason = Some(reason);
        self.last_measured_ms = Some(at_ms);
        if class == Measured::Erred {
            self.consecutive_errors += 1;
            self.passing_since_ms = None;
            self.status = match self.status {
                // Tripped stays tripped; failing and inconclusive say more than an error does.
                CriterionStatus::Tripped => CriterionStatus::Tripped,
                _ if self.consecutive_errors >= criterion.errors_after => {
                    CriterionStatus::Inconclusive
                }
                CriterionStatus::Failing => CriterionStatus::Failing,
                CriterionStatus::Inconclusive => CriterionStatus::Inconclusive,
                CriterionStatus::Pending | CriterionStatus::Passing | CriterionStatus::Erring => {
                    CriterionStatus::Erring
                }
            };
            return;
        }
        self.consecutive_errors = 0;
        if class == Measured::Failing {
            self.consecutive_failures += 1;
            self.total_failures += 1;
            self.passing_since_ms = None;
        } else {
            self.consecutive_failures = 0;
        }
        if self.status == CriterionStatus::Tripped {
            return;
        }
        self.status = match class {
            Measured::Failing
                if self.consecutive_failures >= criterion.trips_after
                    || criterion
                        .trips_after_total
                        .is_some_and(|n| self.total_failures >= n) =>
            {
                CriterionStatus::Tripped
            }
            Measured::Failing => CriterionStatus::Failing,
            Measured::Inconclusive => {
                self.passing_since_ms = None;
                CriterionStatus::Inconclusive
            }
            Measured::Passing | Measured::Erred => {
                self.passing_since_ms.get_or_insert(at_ms);
                CriterionStatus::Passing
            }
        };
    }

    /// Re-arms a tripped criterion after a decider denied the rollback.
    pub fn rearm(&mut self) {
        if self.status == CriterionStatus::Tripped {
            self.status = CriterionStatus::Pending;
            self.consecutive_failures = 0;
            self.total_failures = 0;
            self.passing_since_ms = None;
        }
    }
}

/// The release verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    RollbackRequired,
    Inconclusive,
    /// A criterion is failing below `trips_after`, or its source erred since its last good
    /// measurement: not yet a rollback, not healthy either.
    Degrading,
    Success,
    Healthy,
    Closed,
}

impl Verdict {
    /// The verdict's name, as in JSON and metrics (`rollback_required`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::RollbackRequired => "rollback_required",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Degrading => "degrading",
            Verdict::Success => "success",
            Verdict::Healthy => "healthy",
            Verdict::Closed => "closed",
        }
    }
}

/// Combines criterion states into the release verdict. `success_checks` and `hold_ms` come from
/// `success_when` (none: success is never declared early).
pub fn verdict(
    states: &[(&str, &CriterionState)],
    requested: bool,
    window_closed: bool,
    success: Option<(&[String], i64)>,
    now_ms: i64,
) -> Verdict {
    if window_closed {
        return Verdict::Closed;
    }
    // Shadow criteria are measured and reported, never counted.
    let states: Vec<(&str, &CriterionState)> =
        states.iter().filter(|(_, s)| !s.shadow).copied().collect();
    if requested
        || states
            .iter()
            .any(|(_, s)| s.status == CriterionStatus::Tripped)
    {
        return Verdict::RollbackRequired;
    }
    if states
        .iter()
        .any(|(_, s)| s.status == CriterionStatus::Inconclusive)
    {
        return Verdict::Inconclusive;
    }
    if states
        .iter()
        .any(|(_, s)| matches!(s.status, CriterionStatus::Failing | CriterionStatus::Erring))
    {
        return Verdict::Degrading;
    }
    if let Some((checks, hold_ms)) = success
        && !checks.is_empty()
        && checks.iter().all(|id| {
            states.iter().find(|(c, _)| c == id).is_some_and(|(_, s)| {
                s.status == CriterionStatus::Passing
                    && s.passing_since_ms.is_some_and(|t| now_ms - t >= hold_ms)
            })
        })
    {
        return Verdict::Success;
    }
    Verdict::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_to_six_significant_digits() {
        assert_eq!(shown(0.000_999_000_999_000_999_2), "0.000999001");
        assert_eq!(shown(0.656_123_456), "0.656123");
        assert_eq!(shown(1234.5678), "1234.57");
        assert_eq!(shown(0.03), "0.03");
        assert_eq!(shown(-0.25), "-0.25");
        assert_eq!(shown(3.0), "3");
        assert_eq!(
            shown(f64::INFINITY),
            backout_model::condition::format_number(f64::INFINITY)
        );
    }

    const PLAN: &str = r#"
version: 1
release: { service: s, version: "2", rollback_to: "1", environment: test }
owners: { deployment_engineer: a@example.com }
people: { ops: [a@example.com] }
criteria:
  rollback_when:
    - { id: both, prometheus: "q", fails_if: "> 0.02", passes_if: "<= 0.005", trips_after: 2, delay: 1m }
    - { id: fails-only, prometheus: "q", fails_if: "> 5" }
    - { id: passes-only, prometheus: "q", passes_if: ">= 0.95" }
    - { id: strict, prometheus: "q", fails_if: "> 1", no_data: fail, errors_after: 2 }
    - { id: alert, alertmanager: { alert: A } }
    - { id: down, http: { url: "http://127.0.0.1:9/health" }, on_error: fail, trips_after: 2 }
    - { id: total, prometheus: "q", fails_if: "> 1", trips_after: 3, trips_after_total: 4 }
    - { id: trial, prometheus: "q", fails_if: "> 1", shadow: true }
  success_when: { hold: 10m, checks: [both, fails-only] }
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
        let plan = backout_model::lint(PLAN).plan.expect("test plan lints");
        plan.criterion(id).cloned().expect("known criterion")
    }

    fn values(v: &[f64]) -> Observation {
        Observation::Values {
            series: v
                .iter()
                .map(|v| Series {
                    labels: vec![],
                    value: *v,
                    baseline: None,
                })
                .collect(),
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn classification_table() {
        use Measured::*;
        let table: &[(&str, Observation, Measured)] = &[
            ("both", values(&[0.03]), Failing),
            ("both", values(&[0.001]), Passing),
            ("both", values(&[0.01]), Inconclusive),
            ("both", values(&[0.001, 0.03]), Failing),
            ("both", values(&[0.001, 0.01]), Inconclusive),
            ("both", values(&[f64::NAN]), Inconclusive),
            ("both", values(&[]), Inconclusive),
            ("both", Observation::NoData, Inconclusive),
            ("fails-only", values(&[5.0]), Passing),
            ("fails-only", values(&[f64::INFINITY]), Failing),
            ("passes-only", values(&[0.99]), Passing),
            ("passes-only", values(&[0.5]), Failing),
            ("strict", Observation::NoData, Failing),
            (
                "strict",
                Observation::Error {
                    message: "timeout".into(),
                },
                Erred,
            ),
            (
                "alert",
                Observation::Judged {
                    failing: true,
                    detail: "firing".into(),
                },
                Failing,
            ),
            (
                "alert",
                Observation::Judged {
                    failing: false,
                    detail: "not firing".into(),
                },
                Passing,
            ),
        ];
        for (id, obs, expected) in table {
            assert_eq!(classify(&criterion(id), obs).0, *expected, "{id} {obs:?}");
        }
    }

    #[test]
    fn failing_series_is_reported_with_its_labels() {
        let obs = Observation::Values {
            series: vec![
                Series {
                    labels: vec![("pod".into(), "a".into())],
                    value: 0.001,
                    baseline: None,
                },
                Series {
                    labels: vec![("pod".into(), "b".into())],
                    value: 0.5,
                    baseline: None,
                },
            ],
        };
        let (class, reason) = classify(&criterion("both"), &obs);
        assert_eq!(class, Measured::Failing);
        assert_eq!(reason, "0.5 {pod=\"b\"} is above 0.02");
    }

    #[test]
    fn trips_after_consecutive_failures_and_stays_tripped_until_rearmed() {
        let c = criterion("both");
        let mut s = CriterionState::default();
        s.observe(&c, &values(&[0.5]), 30_000, 0);
        assert_eq!(s.status, CriterionStatus::Pending, "inside the 1m delay");
        s.observe(&c, &values(&[0.5]), MIN, 0);
        assert_eq!(s.status, CriterionStatus::Failing);
        s.observe(&c, &values(&[0.001]), 2 * MIN, 0);
        assert_eq!(
            s.status,
            CriterionStatus::Passing,
            "not consecutive: the count restarts"
        );
        s.observe(&c, &values(&[0.5]), 3 * MIN, 0);
        s.observe(&c, &values(&[0.5]), 4 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Tripped);
        s.observe(&c, &values(&[0.001]), 5 * MIN, 0);
        assert_eq!(
            s.status,
            CriterionStatus::Tripped,
            "a tripped criterion stays tripped"
        );
        s.rearm();
        s.observe(&c, &values(&[0.001]), 6 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Passing);
    }

    /// The worked example of the README, step by step.
    #[test]
    fn readme_worked_example() {
        let c = criterion("both"); // > 0.02 fails, <= 0.005 passes, trips_after 2, delay 1m
        let mut s = CriterionState::default();
        let steps: &[(i64, f64, CriterionStatus)] = &[
            (0, 0.5, CriterionStatus::Pending),
            (MIN, 0.001, CriterionStatus::Passing),
            (2 * MIN, 0.03, CriterionStatus::Failing),
            (3 * MIN, 0.01, CriterionStatus::Inconclusive),
            (4 * MIN, 0.05, CriterionStatus::Failing),
            (5 * MIN, 0.04, CriterionStatus::Tripped),
            (6 * MIN, 0.001, CriterionStatus::Tripped),
        ];
        for (at, value, expected) in steps {
            s.observe(&c, &values(&[*value]), *at, 0);
            assert_eq!(s.status, *expected, "at {at} ms with {value}");
        }
    }

    #[test]
    fn errors_become_inconclusive_after_errors_after_and_are_never_healthy() {
        let c = criterion("strict");
        let mut s = CriterionState::default();
        s.observe(&c, &values(&[0.0]), 0, 0);
        assert_eq!(s.status, CriterionStatus::Passing);
        let err = Observation::Error {
            message: "connection refused".into(),
        };
        s.observe(&c, &err, MIN, 0);
        assert_eq!(
            s.status,
            CriterionStatus::Erring,
            "one error is not yet inconclusive, but no longer passing"
        );
        assert_eq!(s.passing_since_ms, None, "but it breaks the passing streak");
        s.observe(&c, &err, 2 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Inconclusive);
    }

    #[test]
    fn under_on_error_fail_an_unreachable_source_fails_and_trips() {
        let c = criterion("down");
        let refused = Observation::Error {
            message: "connection refused".into(),
        };
        let (class, reason) = classify(&c, &refused);
        assert_eq!(class, Measured::Failing);
        assert_eq!(reason, "source error: connection refused (on_error: fail)");
        let mut s = CriterionState::default();
        s.observe(
            &c,
            &Observation::Judged {
                failing: false,
                detail: "HTTP 200".into(),
            },
            0,
            0,
        );
        assert_eq!(s.status, CriterionStatus::Passing);
        s.observe(&c, &refused, MIN, 0);
        assert_eq!(s.status, CriterionStatus::Failing, "1 of trips_after 2");
        s.observe(&c, &refused, 2 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Tripped);
    }

    #[test]
    fn failing_below_trips_after_or_erring_is_degrading_never_healthy() {
        let passing = CriterionState {
            status: CriterionStatus::Passing,
            passing_since_ms: Some(0),
            ..CriterionState::default()
        };
        let mut failing = CriterionState::default();
        failing.observe(&criterion("both"), &values(&[0.5]), MIN, 0);
        assert_eq!(failing.status, CriterionStatus::Failing);
        let mut erring = passing.clone();
        erring.observe(
            &criterion("both"),
            &Observation::Error {
                message: "timeout".into(),
            },
            MIN,
            0,
        );
        assert_eq!(erring.status, CriterionStatus::Erring);
        let checks = vec!["a".to_string()];
        let success = Some((checks.as_slice(), MIN));
        for other in [&failing, &erring] {
            assert_eq!(
                verdict(
                    &[("a", &passing), ("b", other)],
                    false,
                    false,
                    success,
                    10 * MIN
                ),
                Verdict::Degrading,
                "{other:?}"
            );
        }
        let unsure = CriterionState {
            status: CriterionStatus::Inconclusive,
            ..CriterionState::default()
        };
        assert_eq!(
            verdict(&[("a", &failing), ("b", &unsure)], false, false, None, MIN),
            Verdict::Inconclusive,
            "inconclusive ranks above degrading"
        );
        assert!(
            Verdict::Inconclusive < Verdict::Degrading && Verdict::Degrading < Verdict::Healthy
        );
    }

    #[test]
    fn a_failing_measurement_after_inconclusive_is_not_healthy() {
        // The field report: inconclusive, then 0.0667 above 0.05 with trips_after 3 read healthy.
        let c = criterion("both");
        let mut s = CriterionState::default();
        s.observe(&c, &values(&[0.01]), MIN, 0);
        assert_eq!(s.status, CriterionStatus::Inconclusive);
        s.observe(&c, &values(&[0.0667]), 2 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Failing);
        assert_eq!(
            verdict(&[("both", &s)], false, false, None, 2 * MIN),
            Verdict::Degrading
        );
    }

    #[test]
    fn trips_after_total_counts_failures_in_the_window_not_only_in_a_row() {
        let c = criterion("total");
        let mut s = CriterionState::default();
        for (i, v) in [5.0, 0.0, 5.0, 5.0, 0.0, 5.0].iter().enumerate() {
            s.observe(&c, &values(&[*v]), i as i64 * MIN, 0);
        }
        assert_eq!(
            s.status,
            CriterionStatus::Tripped,
            "4 failures, never 3 in a row"
        );
        assert_eq!(s.total_failures, 4);
        s.rearm();
        assert_eq!(s.total_failures, 0, "re-arming starts the count again");
        s.observe(&c, &values(&[5.0]), 7 * MIN, 0);
        assert_eq!(s.status, CriterionStatus::Failing);
    }

    #[test]
    fn a_shadow_criterion_would_trip_but_never_decides() {
        let c = criterion("trial");
        let mut s = CriterionState::default();
        s.observe(&c, &values(&[5.0]), MIN, 0);
        assert_eq!(
            s.status,
            CriterionStatus::Tripped,
            "how it would have voted"
        );
        assert!(s.shadow);
        assert_eq!(
            verdict(&[("trial", &s)], false, false, None, MIN),
            Verdict::Healthy,
            "left out of the verdict"
        );
        let mut real = CriterionState::default();
        real.observe(&criterion("fails-only"), &values(&[9.0]), MIN, 0);
        assert_eq!(
            verdict(
                &[("trial", &s), ("fails-only", &real)],
                false,
                false,
                None,
                MIN
            ),
            Verdict::RollbackRequired
        );
    }

    #[test]
    fn verdict_order_and_success_hold() {
        let passing_since = |t: i64| CriterionState {
            status: CriterionStatus::Passing,
            passing_since_ms: Some(t),
            ..CriterionState::default()
        };
        let tripped = CriterionState {
            status: CriterionStatus::Tripped,
            ..CriterionState::default()
        };
        let unsure = CriterionState {
            status: CriterionStatus::Inconclusive,
            ..CriterionState::default()
        };
        let checks = vec!["a".to_string(), "b".to_string()];
        let success = Some((checks.as_slice(), 10 * MIN));
        let (a, b) = (passing_since(0), passing_since(5 * MIN));
        assert_eq!(
            verdict(&[("a", &a), ("b", &b)], false, false, success, 12 * MIN),
            Verdict::Healthy,
            "b held only 7m"
        );
        assert_eq!(
            verdict(&[("a", &a), ("b", &b)], false, false, success, 15 * MIN),
            Verdict::Success
        );
        assert_eq!(
            verdict(
                &[("a", &a), ("b", &unsure)],
                false,
                false,
                success,
                15 * MIN
            ),
            Verdict::Inconclusive
        );
        assert_eq!(
            verdict(
                &[("a", &tripped), ("b", &unsure)],
                false,
                false,
                success,
                15 * MIN
            ),
            Verdict::RollbackRequired
        );
        assert_eq!(
            verdict(&[("a", &a), ("b", &b)], true, false, success, 15 * MIN),
            Verdict::RollbackRequired,
            "a person asked"
        );
        assert_eq!(
            verdict(&[("a", &tripped)], false, true, success, 15 * MIN),
            Verdict::Closed
        );
        assert_eq!(
            verdict(&[("a", &a), ("b", &b)], false, false, None, 15 * MIN),
            Verdict::Healthy
        );
    }
}
