//! History of a Prometheus criterion: `GET /api/v1/query_range` at the criterion's `every`, for
//! the backtest (`criteria::backtest`).
//!
//! A range query evaluates the expression at `start + k·step` exactly as an instant query at
//! that time would (same lookback), so each step is the observation the watcher would have
//! made then. Prometheus refuses more than 11,000 points per series, so long ranges are fetched
//! in chunks of at most [`CHUNK_POINTS`] steps. A step at which no series has a sample is
//! `NoData`, as an empty instant vector is. A failed chunk is an error of the whole fetch: a
//! history with holes would report false figures.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use super::{Resolved, fetch, parse_number, snippet};
use crate::criteria::{Observation, Series};

/// Steps per request: below Prometheus' 11,000 points per series, with room to spare.
pub const CHUNK_POINTS: i64 = 10_000;

/// One observation of a history, at a step's time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub observation: Observation,
}

/// The chunks `[start, end]` (inclusive, in ms) a range of `step_ms` steps is fetched in, each
/// at most [`CHUNK_POINTS`] steps, without overlap.
pub fn chunks(start_ms: i64, end_ms: i64, step_ms: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if step_ms <= 0 || end_ms < start_ms {
        return out;
    }
    let mut from = start_ms;
    while from <= end_ms {
        let to = (from + (CHUNK_POINTS - 1) * step_ms).min(end_ms);
        out.push((from, to));
        from = to + step_ms;
    }
    out
}

/// Fetches the history of `query` from `start_ms` to `end_ms` at `step_ms`, one sample per step
/// (`NoData` where nothing was returned). `progress` is told after each chunk (done, total).
pub async fn query_range(
    endpoint: &Resolved,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Sample>, String> {
    let chunks = chunks(start_ms, end_ms, step_ms);
    let mut samples = Vec::new();
    for (done, (from, to)) in chunks.iter().enumerate() {
        let mut url = endpoint.url("/api/v1/query_range");
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("start", &seconds(*from))
            .append_pair("end", &seconds(*to))
            .append_pair("step", &seconds(step_ms));
        let fetched = fetch(
            &endpoint.client,
            Method::GET,
            url,
            endpoint.headers.clone(),
            None,
            endpoint.timeout,
        )
        .await
        .map_err(|e| format!("query_range {}..{}: {e}", utc(*from), utc(*to)))?;
        let by_time = parse_range_response(&fetched.body).map_err(|e| {
            format!(
                "query_range {}..{}: HTTP {}, {e}",
                utc(*from),
                utc(*to),
                fetched.status
            )
        })?;
        samples.extend(steps(by_time, *from, *to, step_ms));
        progress(done + 1, chunks.len());
    }
    Ok(samples)
}

fn utc(ms: i64) -> String {
    crate::time::utc(ms)
}

/// Unix seconds with milliseconds, as Prometheus reads times.
fn seconds(ms: i64) -> String {
    if ms.rem_euclid(1000) == 0 {
        format!("{}", ms.div_euclid(1000))
    } else {
        format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
    }
}

/// One observation per step of `[from, to]`: the series with a sample at that time, or `NoData`.
fn steps(mut by_time: BTreeMap<i64, Vec<Series>>, from: i64, to: i64, step_ms: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut at = from;
    while at <= to {
        let observation = match by_time.remove(&at) {
            Some(mut series) => {
                series.sort_by(|a, b| a.labels.cmp(&b.labels));
                Observation::Values { series }
            }
            None => Observation::NoData,
        };
        out.push(Sample {
            at_ms: at,
            observation,
        });
        at += step_ms;
    }
    out
}

#[derive(Deserialize)]
struct Response {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// The usual answer, read straight into its types (a detour through `serde_json::Value` cost
/// most of a backtest's time).
#[derive(Deserialize)]
struct MatrixResponse {
    status: String,
    data: MatrixData,
}

#[derive(Deserialize)]
struct MatrixData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<MatrixSeries>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The series of a `query_range` answer by time (ms): what was seen at each step.
pub fn parse_range_response(body: &str) -> Result<BTreeMap<i64, Vec<Series>>, String> {
    let matrix = match serde_json::from_str::<MatrixResponse>(body) {
        Ok(m) if m.status == "success" && m.data.result_type == "matrix" => m.data.result,
        _ => explain(body)?,
    };
    let mut by_time: BTreeMap<i64, Vec<Series>> = BTreeMap::new();
    for series in matrix {
        let labels: Vec<(String, String)> = series.metric.into_iter().collect();
        for (at, text) in series.values {
            let value = parse_number(&text)
                .ok_or_else(|| format!("the sample value {text:?} is not a number"))?;
            // Prometheus writes times as seconds with at most three decimals.
            let at_ms = (at * 1000.0).round() as i64;
            by_time.entry(at_ms).or_default().push(Series {
                labels: labels.clone(),
                value,
                baseline: None,
            });
        }
    }
    Ok(by_time)
}

/// An answer that is not a plain successful matrix: the matrix when it is one after all, else
/// what Prometheus (or whatever answered) said.
fn explain(body: &str) -> Result<Vec<MatrixSeries>, String> {
    let response: Response = serde_json::from_str(body).map_err(|e| {
        format!(
            "the answer is not a Prometheus query_range response ({e}): {}",
            snippet(body)
        )
    })?;
    if response.status != "success" {
        return Err(format!(
            "prometheus: {}: {}",
            response.error_type.as_deref().unwrap_or("error"),
            response.error.as_deref().unwrap_or("no message")
        ));
    }
    let data = response.data.ok_or("the prometheus response has no data")?;
    if data.result_type != "matrix" {
        return Err(format!(
            "query_range returned a {}, not a matrix",
            data.result_type
        ));
    }
    serde_json::from_value(data.result).map_err(|e| format!("the matrix result is malformed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_within_the_point_limit_and_never_overlap() {
        let minute = 60_000;
        let fourteen_days = 14 * 24 * 60 * minute;
        let got = chunks(0, fourteen_days, minute);
        assert_eq!(got.len(), 3, "20,161 steps need three chunks of 10,000");
        assert_eq!(got[0], (0, 9_999 * minute));
        assert_eq!(got[1].0, 10_000 * minute);
        assert_eq!(got[2].1, fourteen_days);
        for (from, to) in &got {
            assert!((to - from) / minute < CHUNK_POINTS);
        }
        assert_eq!(chunks(5, 5, minute), vec![(5, 5)]);
        assert!(chunks(10, 5, minute).is_empty());
    }

    #[test]
    fn a_matrix_becomes_one_observation_per_step_with_gaps_as_no_data() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"b"},"values":[[60,"0.5"],[180,"NaN"]]},
            {"metric":{"pod":"a"},"values":[[60,"0.25"]]}
        ]}}"#;
        let by_time = parse_range_response(body).unwrap();
        let samples = steps(by_time, 60_000, 180_000, 60_000);
        assert_eq!(samples.len(), 3);
        match &samples[0].observation {
            Observation::Values { series } => {
                assert_eq!(series.len(), 2);
                assert_eq!(series[0].labels, vec![("pod".into(), "a".into())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(samples[1].observation, Observation::NoData);
        assert_eq!(samples[2].at_ms, 180_000);
    }

    #[test]
    fn errors_say_what_prometheus_said() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#;
        assert_eq!(
            parse_range_response(body).unwrap_err(),
            "prometheus: bad_data: exceeded maximum resolution of 11,000 points per timeseries"
        );
        assert!(parse_range_response("<html>").is_err());
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(seconds(60_000), "60");
        assert_eq!(seconds(60_250), "60.250");
    }
}
