//! Suggestions, not magic: a `fails_if` threshold (and `trips_after`) that would have tripped at
//! most N times on the history while still catching every given incident, with the figures
//! behind it. Every candidate is judged by replaying it (`backtest::replay`), so a suggestion is
//! only as good as the history and the incidents given, and says so.
//!
//! The candidates are the signal's own values: a threshold between two neighbouring values
//! behaves as the lower one. The lowest candidate with at most N false trips and the highest
//! that still catches every incident bound the range that would have done; the suggestion is a
//! round number near their geometric mean (arithmetic when a bound is not positive), so it keeps
//! a margin on both sides instead of sitting on the edge of a false trip.

use backout_model::Condition;
use backout_model::condition::Op;
use backout_model::plan::Criterion;
use serde::Serialize;

use super::backtest::{Options, Report, higher_is_worse, replay, signal_of};
use super::sources::Sample;

/// The trips_after values tried when the criterion's own cannot do.
const TRIPS_AFTER_TRIED: [u32; 5] = [1, 2, 3, 4, 5];

/// A suggested change to one criterion, with what it would have done.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    pub criterion: String,
    pub fails_if: Condition,
    pub trips_after: u32,
    /// Thresholds from `range.0` (inclusive) to `range.1` (exclusive) would have done the same job.
    pub range: (f64, f64),
    /// `passes_if` dropped because it would contradict the new `fails_if`.
    pub drops_passes_if: bool,
    /// The replay of the suggestion over the same history.
    pub report: Report,
}

/// Why no threshold would do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoSuggestion {
    pub criterion: String,
    pub reason: String,
}

/// The suggestion for `criterion` on `samples`: at most `max_false_trips` trips outside the
/// incidents of `options`, every incident caught.
pub fn suggest(
    criterion: &Criterion,
    samples: &[Sample],
    options: &Options,
    max_false_trips: usize,
) -> Result<Suggestion, NoSuggestion> {
    let no = |reason: String| NoSuggestion {
        criterion: criterion.id.clone(),
        reason,
    };
    let higher = higher_is_worse(criterion);
    let mut values: Vec<f64> = samples
        .iter()
        .filter_map(|s| signal_of(criterion, &s.observation))
        .filter(|v| v.is_finite())
        .collect();
    // In severity order: the last candidate is the most extreme value seen.
    values.sort_by(|a, b| {
        if higher {
            a.total_cmp(b)
        } else {
            b.total_cmp(a)
        }
    });
    values.dedup();
    if values.is_empty() {
        return Err(no("the history has no values to set a threshold on".into()));
    }
    let op = if higher { Op::Gt } else { Op::Lt };
    let mut tried = vec![criterion.trips_after];
    tried.extend(
        TRIPS_AFTER_TRIED
            .iter()
            .filter(|k| **k != criterion.trips_after),
    );
    let mut last_reason = String::new();
    for trips_after in tried {
        let judge = |threshold: f64| {
            let candidate = with(criterion, Condition::absolute(op, threshold), trips_after);
            replay(&candidate, samples, options)
        };
        // The lowest candidate with few enough false trips.
        let Some(lo) = first(values.len(), |i| {
            judge(values[i]).false_trips <= max_false_trips
        }) else {
            last_reason = format!(
                "even at its most extreme value ({}) the signal trips more than {max_false_trips} \
                 time(s) outside the incidents",
                values[values.len() - 1]
            );
            continue;
        };
        // The highest candidate from `lo` on that still catches every incident. Below `lo` the
        // search would not be monotonic: a threshold low enough to be tripped already when an
        // incident begins does not catch it as a new trip.
        let catches = |i: usize| {
            judge(values[i])
                .incidents
                .iter()
                .all(|c| c.tripped_ms.is_some())
        };
        let hi = match first(values.len() - lo, |j| !catches(lo + j)) {
            Some(0) => lo.saturating_sub(1),
            Some(miss) => lo + miss - 1,
            None => values.len() - 1,
        };
        if lo > hi || !catches(lo) {
            last_reason = format!(
                "no threshold that trips at most {max_false_trips} time(s) outside the \
                 incidents ({} or beyond) catches every incident",
                values[lo]
            );
            continue;
        }
        let upper = values.get(hi + 1).copied();
        let threshold = round_within(values[lo], upper);
        let fails_if = Condition::absolute(op, threshold);
        let report = judge(threshold);
        if report.false_trips > max_false_trips
            || report.incidents.iter().any(|c| c.tripped_ms.is_none())
        {
            last_reason = format!("the threshold {threshold} does not hold up when replayed");
            continue;
        }
        let drops_passes_if = criterion
            .passes_if
            .is_some_and(|p| !Condition::can_pass(&p, &fails_if));
        return Ok(Suggestion {
            criterion: criterion.id.clone(),
            fails_if,
            trips_after,
            range: (values[lo], upper.unwrap_or(values[hi])),
            drops_passes_if,
            report,
        });
    }
    Err(no(last_reason))
}

/// The criterion with another `fails_if` and `trips_after` (and no `passes_if` that would
/// contradict it).
fn with(criterion: &Criterion, fails_if: Condition, trips_after: u32) -> Criterion {
    let mut c = criterion.clone();
    c.fails_if = Some(fails_if);
    c.trips_after = trips_after;
    if c.passes_if
        .is_some_and(|p| !Condition::can_pass(&p, &fails_if))
    {
        c.passes_if = None;
    }
    c
}

/// The first index in `0..n` where `yes` holds, when `yes` is false then true (binary search).
fn first(n: usize, yes: impl Fn(usize) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if yes(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (lo < n).then_some(lo)
}

/// A round number in `[low, high)` near their geometric mean (or `low` when nothing rounder
/// fits); with no `high`, a round number at or beyond `low`.
fn round_within(low: f64, high: Option<f64>) -> f64 {
    let Some(high) = high else {
        return low;
    };
    let (a, b) = if low <= high {
        (low, high)
    } else {
        (high, low)
    };
    let target = if a > 0.0 && b > 0.0 {
        (a * b).sqrt()
    } else {
        (a + b) / 2.0
    };
    let inside = |x: f64| {
        if low <= high {
            x >= low && x < high
        } else {
            x <= low && x > high
        }
    };
    for digits in 1..=6 {
        let rounded = round_to(target, digits);
        if inside(rounded) {
            return rounded;
        }
    }
    low
}

/// `value` to `digits` significant digits, as a number a person would write.
fn round_to(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0);
    let text = format!("{value:.prec$}", prec = decimals as usize);
    text.parse().unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers_inside_the_range() {
        assert_eq!(round_within(0.023, Some(0.1)), 0.05);
        assert_eq!(round_within(0.023, Some(0.0265)), 0.025);
        assert_eq!(round_within(5.0, None), 5.0);
        // Lower is worse: the range runs downwards.
        assert_eq!(round_within(0.9, Some(0.5)), 0.7);
    }

    #[test]
    fn binary_search_finds_the_first_true() {
        assert_eq!(first(10, |i| i >= 7), Some(7));
        assert_eq!(first(10, |_| false), None);
        assert_eq!(first(10, |_| true), Some(0));
    }
}
