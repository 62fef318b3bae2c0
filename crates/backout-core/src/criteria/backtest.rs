//! Backtest: how a criterion would have behaved on its own history. Pure: samples in (one
//! observation per `every`, fetched by `sources::query_range`), a report out.
//!
//! The replay is the watcher's own evaluation (`CriterionState::observe`, hence `classify`,
//! `no_data`, `delay`, `trips_after`, `errors_after`), never a copy of it:
//!
//! - With deploy times (`--deploy-at`), each is a release whose window opens then and lasts the
//!   plan's `window.closes_after`: a fresh state, `delay` after the deploy, and its first trip.
//! - Without, a release is deployed at every step (a sliding window): every measurement is
//!   judged by some release past its `delay`. One state runs through the history (its `delay`
//!   applies once, at the start); a trip is counted once per failing episode: the state is
//!   re-armed, as a decider's denial would, at the first measurement that is not failing, so a
//!   long incident is one trip, and a release deployed during it would have tripped on the same
//!   episode. `trips_after_total` counts the failures of the last window (`closes_after`)
//!   before each measurement, as the youngest release still watching would.
//!
//! An incident is caught by the first trip at or after it, within one window.
//!
//! A `baseline: {offset}` criterion is replayed with a second history fetched `offset` earlier
//! ([`attach_baselines`] pairs step k with step k of it). A `baseline: {before_deploy}` one is
//! not replayed: its baseline is fixed per release, which the sliding replay has no release for
//! ([`skipped`] says so).

use backout_model::condition::Op;
use backout_model::plan::{Baseline, Criterion};
use serde::Serialize;

use super::sources::Sample;
use super::{CriterionState, CriterionStatus, Measured, Observation, classify};

/// What to replay besides the samples.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Deploy times (ms); empty: a release at every step.
    pub deploys: Vec<i64>,
    /// The plan's window (`closes_after`), in ms.
    pub window_ms: i64,
    /// Times (ms) at which real incidents began.
    pub incidents: Vec<i64>,
}

/// A trip the criterion would have made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trip {
    pub at_ms: i64,
    /// The release it would have rolled back (deploy mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_ms: Option<i64>,
    /// The deciding value, when the measurement had one.
    pub value: Option<f64>,
    /// The watcher's own reason (`0.05 is above 0.02`).
    pub reason: String,
    /// The incident it caught, if any (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_ms: Option<i64>,
}

/// Whether an incident was caught, and how long after it began.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Caught {
    pub incident_ms: i64,
    pub tripped_ms: Option<i64>,
    pub after_ms: Option<i64>,
}

/// The signal's distribution over the history (finite values of the deciding series).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signal {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One criterion's backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub criterion: String,
    pub measurements: usize,
    pub failing: usize,
    pub passing: usize,
    pub inconclusive: usize,
    pub no_data: usize,
    pub trips: Vec<Trip>,
    /// Trips that caught no given incident (all of them when no incident is given).
    pub false_trips: usize,
    pub incidents: Vec<Caught>,
    pub signal: Option<Signal>,
}

impl Report {
    /// Share of measurements that were inconclusive (no data included), 0..=1.
    pub fn inconclusive_fraction(&self) -> f64 {
        fraction(self.inconclusive, self.measurements)
    }
    /// Share of measurements without data, 0..=1.
    pub fn no_data_fraction(&self) -> f64 {
        fraction(self.no_data, self.measurements)
    }
}

fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Why a criterion cannot be backtested, if it cannot (a `before_deploy` baseline).
pub fn skipped(criterion: &Criterion) -> Option<String> {
    match criterion.baseline {
        Some(Baseline::BeforeDeploy(d)) => Some(format!(
            "criterion `{}` is skipped: its baseline (`before_deploy: {d}`) is fixed per release, \
             and the backtest replays no release opening to measure it from; `baseline: {{offset}}` \
             criteria are backtested",
            criterion.id
        )),
        _ => None,
    }
}

/// The history `baseline: {offset}` needs, as `(start, end)` in ms: the criterion's range moved
/// `offset` earlier (same step, so step k of both are `offset` apart). `None` without one.
pub fn baseline_range(criterion: &Criterion, start_ms: i64, end_ms: i64) -> Option<(i64, i64)> {
    match criterion.baseline {
        Some(Baseline::Offset(d)) => {
            let ms = i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
            Some((start_ms.saturating_sub(ms), end_ms.saturating_sub(ms)))
        }
        _ => None,
    }
}

/// Gives each sample's series the value of the same series `offset_ms` earlier, from `past`
/// (the history [`baseline_range`] names): series with equal labels pair, a lone series with a
/// lone one. A step with no past sample keeps no baseline (no data under classify).
pub fn attach_baselines(samples: &mut [Sample], past: &[Sample], offset_ms: i64) {
    let by_time: std::collections::HashMap<i64, &Observation> =
        past.iter().map(|p| (p.at_ms, &p.observation)).collect();
    for sample in samples.iter_mut() {
        let Observation::Values { series } = &mut sample.observation else {
            continue;
        };
        let before = match by_time.get(&(sample.at_ms - offset_ms)) {
            Some(Observation::Values { series }) => series.as_slice(),
            _ => &[],
        };
        super::sources::pair_baselines(series, before);
    }
}

/// Replays `criterion` over `samples` (in time order, from the range's start).
pub fn replay(criterion: &Criterion, samples: &[Sample], options: &Options) -> Report {
    let mut report = Report {
        criterion: criterion.id.clone(),
        measurements: samples.len(),
        failing: 0,
        passing: 0,
        inconclusive: 0,
        no_data: 0,
        trips: Vec::new(),
        false_trips: 0,
        incidents: Vec::new(),
        signal: None,
    };
    let mut values = Vec::with_capacity(samples.len());
    // Classified once; every replay below reuses it.
    let classified: Vec<(Measured, String)> = samples
        .iter()
        .map(|s| classify(criterion, &s.observation))
        .collect();
    for (sample, (class, _)) in samples.iter().zip(&classified) {
        match class {
            Measured::Failing => report.failing += 1,
            Measured::Passing => report.passing += 1,
            Measured::Inconclusive | Measured::Erred => report.inconclusive += 1,
        }
        if is_empty(&sample.observation) {
            report.no_data += 1;
        }
        if let Some(v) = signal_of(criterion, &sample.observation)
            && v.is_finite()
        {
            values.push(v);
        }
    }
    report.signal = percentiles(values);
    report.trips = if options.deploys.is_empty() {
        sliding(criterion, samples, &classified, options.window_ms)
    } else {
        options
            .deploys
            .iter()
            .filter_map(|d| deployed(criterion, samples, &classified, *d, options.window_ms))
            .collect()
    };
    for incident in &options.incidents {
        let caught = report
            .trips
            .iter_mut()
            .find(|t| t.at_ms >= *incident && t.at_ms <= incident + options.window_ms);
        let tripped_ms = caught.map(|t| {
            t.incident_ms.get_or_insert(*incident);
            t.at_ms
        });
        report.incidents.push(Caught {
            incident_ms: *incident,
            tripped_ms,
            after_ms: tripped_ms.map(|t| t - incident),
        });
    }
    report.false_trips = report
        .trips
        .iter()
        .filter(|t| t.incident_ms.is_none())
        .count();
    report
}

fn is_empty(observation: &Observation) -> bool {
    match observation {
        Observation::NoData => true,
        Observation::Values { series } => series.is_empty(),
        _ => false,
    }
}

/// The sliding window: one state through the history, re-armed after each failing episode.
fn sliding(
    criterion: &Criterion,
    samples: &[Sample],
    classified: &[(Measured, String)],
    window_ms: i64,
) -> Vec<Trip> {
    let Some(opened) = samples.first().map(|s| s.at_ms) else {
        return Vec::new();
    };
    let mut state = CriterionState::default();
    let mut trips = Vec::new();
    // Times of the failing measurements within the last window, for `trips_after_total`.
    let mut failures = std::collections::VecDeque::new();
    for (sample, classified) in samples.iter().zip(classified) {
        let class = classified.0;
        if state.status == CriterionStatus::Tripped
            && matches!(class, Measured::Passing | Measured::Inconclusive)
        {
            state.rearm();
            failures.clear();
        }
        while failures
            .front()
            .is_some_and(|t| *t <= sample.at_ms - window_ms)
        {
            failures.pop_front();
        }
        state.total_failures = u32::try_from(failures.len()).unwrap_or(u32::MAX);
        if class == Measured::Failing && sample.at_ms >= opened + delay_ms(criterion) {
            failures.push_back(sample.at_ms);
        }
        let before = state.status;
        state.observe_classified(criterion, classified.clone(), sample.at_ms, opened);
        if state.status == CriterionStatus::Tripped && before != CriterionStatus::Tripped {
            trips.push(trip(criterion, sample, &state, None));
        }
    }
    trips
}

fn delay_ms(criterion: &Criterion) -> i64 {
    i64::try_from(criterion.delay.as_millis()).unwrap_or(i64::MAX / 2)
}

/// A release deployed at `deploy_ms`: its first trip within its window.
fn deployed(
    criterion: &Criterion,
    samples: &[Sample],
    classified: &[(Measured, String)],
    deploy_ms: i64,
    window_ms: i64,
) -> Option<Trip> {
    let mut state = CriterionState::default();
    let start = samples.partition_point(|s| s.at_ms < deploy_ms);
    for (sample, classified) in samples[start..].iter().zip(&classified[start..]) {
        if sample.at_ms >= deploy_ms + window_ms {
            break;
        }
        state.observe_classified(criterion, classified.clone(), sample.at_ms, deploy_ms);
        if state.status == CriterionStatus::Tripped {
            return Some(trip(criterion, sample, &state, Some(deploy_ms)));
        }
    }
    None
}

fn trip(
    criterion: &Criterion,
    sample: &Sample,
    state: &CriterionState,
    deployed_ms: Option<i64>,
) -> Trip {
    Trip {
        at_ms: sample.at_ms,
        deployed_ms,
        value: signal_of(criterion, &sample.observation),
        reason: state.last_reason.clone().unwrap_or_default(),
        incident_ms: None,
    }
}

/// Whether larger values are worse for this criterion: a `fails_if` above a threshold, or a
/// `passes_if` below one.
pub fn higher_is_worse(criterion: &Criterion) -> bool {
    match (criterion.fails_if, criterion.passes_if) {
        (Some(f), _) => !matches!(f.op, Op::Lt | Op::Le),
        (None, Some(p)) => matches!(p.op, Op::Lt | Op::Le),
        (None, None) => true,
    }
}

/// The deciding value of a measurement: the worst series (highest when higher is worse).
pub fn signal_of(criterion: &Criterion, observation: &Observation) -> Option<f64> {
    let Observation::Values { series } = observation else {
        return None;
    };
    let finite = series.iter().map(|s| s.value).filter(|v| !v.is_nan());
    if higher_is_worse(criterion) {
        finite.fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    } else {
        finite.fold(None, |m, v| Some(m.map_or(v, |m: f64| m.min(v))))
    }
}

/// Nearest-rank percentiles.
fn percentiles(mut values: Vec<f64>) -> Option<Signal> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = values.len();
        let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        values[index]
    };
    Some(Signal {
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: values[values.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criteria::Series;

    const MIN: i64 = 60_000;

    fn criterion(line: &str) -> Criterion {
        let plan = format!(
            r#"
version: 1
release: {{ service: s, version: "2", rollback_to: "1", environment: test }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  rollback_when:
    - {line}
window: {{ closes_after: 4h }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure: {{ not_applicable: "t" }}
contingency: {{ not_applicable: "t" }}
workarounds: []
expected_duration: {{ not_applicable: "t" }}
communication: {{ not_applicable: "t" }}
testing: {{ not_applicable: "t" }}
"#
        );
        let linted = backout_model::lint(&plan);
        let plan = linted
            .plan
            .unwrap_or_else(|| panic!("{:?}", linted.diagnostics));
        plan.criteria.given().unwrap().rollback_when[0].clone()
    }

    fn history(values: &[Option<f64>]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                at_ms: i as i64 * MIN,
                observation: match v {
                    Some(v) => Observation::Values {
                        series: vec![Series {
                            labels: vec![],
                            value: *v,
                            baseline: None,
                        }],
                    },
                    None => Observation::NoData,
                },
            })
            .collect()
    }

    #[test]
    fn sliding_counts_each_failing_episode_once_after_trips_after() {
        let c = criterion(r#"{ id: e, prometheus: q, fails_if: "> 0.02", trips_after: 2 }"#);
        let ok = Some(0.001);
        let bad = Some(0.05);
        // A lone spike (no trip), a 4-step episode (one trip at its 2nd step), a gap, another.
        let samples = history(&[ok, bad, ok, bad, bad, bad, bad, ok, None, bad, bad, ok]);
        let report = replay(
            &c,
            &samples,
            &Options {
                window_ms: 240 * MIN,
                incidents: vec![3 * MIN],
                ..Options::default()
            },
        );
        let at: Vec<i64> = report.trips.iter().map(|t| t.at_ms / MIN).collect();
        assert_eq!(at, vec![4, 10]);
        assert_eq!(report.trips[0].value, Some(0.05));
        assert_eq!(report.trips[0].reason, "0.05 is above 0.02");
        assert_eq!(report.false_trips, 1);
        assert_eq!(report.incidents[0].after_ms, Some(MIN));
        assert_eq!(
            (report.failing, report.no_data, report.inconclusive),
            (7, 1, 1)
        );
        assert_eq!(report.signal.as_ref().unwrap().max, 0.05);
    }

    #[test]
    fn a_deploy_starts_a_fresh_state_with_its_delay_and_window() {
        let c =
            criterion(r#"{ id: e, prometheus: q, fails_if: "> 0.02", trips_after: 2, delay: 2m }"#);
        let bad = Some(0.05);
        let ok = Some(0.0);
        let samples = history(&[bad, bad, bad, bad, ok, ok, ok, ok]);
        let options = Options {
            deploys: vec![0, 2 * MIN, 4 * MIN],
            window_ms: 10 * MIN,
            incidents: vec![],
        };
        let report = replay(&c, &samples, &options);
        // Deployed at 0: the delay ignores 0 and 1, so 2 and 3 trip at 3. At 2m: 4 and 5 pass.
        let got: Vec<(i64, Option<i64>)> = report
            .trips
            .iter()
            .map(|t| (t.at_ms / MIN, t.deployed_ms.map(|d| d / MIN)))
            .collect();
        assert_eq!(got, vec![(3, Some(0))]);
    }

    #[test]
    fn trips_after_total_counts_the_failures_of_the_last_window() {
        let c = criterion(
            r#"{ id: e, prometheus: q, fails_if: "> 1", trips_after: 5, trips_after_total: 3 }"#,
        );
        let (ok, bad) = (Some(0.0), Some(2.0));
        // Failures at 1, 3 and 20: never three within a 10-minute window; then 22 and 24 make
        // three (20, 22, 24) within one.
        let mut values = vec![ok; 26];
        for i in [1, 3, 20, 22, 24] {
            values[i] = bad;
        }
        let options = Options {
            window_ms: 10 * MIN,
            ..Options::default()
        };
        let report = replay(&c, &history(&values), &options);
        let at: Vec<i64> = report.trips.iter().map(|t| t.at_ms / MIN).collect();
        assert_eq!(at, vec![24]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = percentiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert!(percentiles(vec![]).is_none());
    }
}
