//! Prometheus: one PromQL instant query per measurement, `GET /api/v1/query`.
//!
//! A criterion with `baseline:` makes a second instant query of the same PromQL at the baseline
//! instant (`time=` now − offset, or the window's opening − before_deploy); each series gets the
//! baseline value of the series with the same labels (a lone series pairs with a lone one).
//! Both queries carry an explicit `time=`, so they compare instants exactly `offset` apart.
//!
//! Sample values arrive as strings (`"0.02"`, `"NaN"`, `"+Inf"`); an empty vector is no data.
//! Only vector and scalar results can be judged; a range or string result is a source error, as
//! is a Prometheus `status: error`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

use backout_model::plan::Baseline;

use super::{Resolved, Source, fetch, parse_number, snippet};
use crate::criteria::{Observation, Series};

/// A PromQL instant query against one Prometheus.
pub struct PrometheusSource {
    endpoint: Resolved,
    query: String,
    baseline: Option<Baseline>,
    opened_at_ms: Option<i64>,
}

impl PrometheusSource {
    pub fn new(endpoint: Resolved, query: String) -> PrometheusSource {
        PrometheusSource {
            endpoint,
            query,
            baseline: None,
            opened_at_ms: None,
        }
    }

    /// Also measures the baseline (when given); `before_deploy` needs the window's opening.
    pub fn with_baseline(mut self, baseline: Option<Baseline>, opened_at_ms: Option<i64>) -> Self {
        self.baseline = baseline;
        self.opened_at_ms = opened_at_ms;
        self
    }

    /// One instant query at `at_ms` (Prometheus's own now when `None`).
    async fn query_at(&self, at_ms: Option<i64>) -> Observation {
        let mut url = self.endpoint.url("/api/v1/query");
        url.query_pairs_mut().append_pair("query", &self.query);
        if let Some(ms) = at_ms {
            url.query_pairs_mut().append_pair(
                "time",
                &format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000)),
            );
        }
        let fetched = match fetch(
            &self.endpoint.client,
            Method::GET,
            url,
            self.endpoint.headers.clone(),
            None,
            self.endpoint.timeout,
        )
        .await
        {
            Ok(f) => f,
            Err(message) => return Observation::Error { message },
        };
        // Prometheus answers errors (400 bad_data, 422 execution, 503 timeout) with a JSON body
        // that says why, so the body is read whatever the status.
        match parse_query_response(&fetched.body) {
            Observation::Error { message } if fetched.status != 200 => Observation::Error {
                message: format!("HTTP {}, {message}", fetched.status),
            },
            observation => observation,
        }
    }
}

#[async_trait]
impl Source for PrometheusSource {
    async fn observe(&self) -> Observation {
        let Some(baseline) = self.baseline else {
            return self.query_at(None).await;
        };
        let now_ms = now_ms();
        let current = self.query_at(Some(now_ms)).await;
        let Observation::Values { mut series } = current else {
            return current;
        };
        let at_ms = match (baseline, self.opened_at_ms) {
            (Baseline::BeforeDeploy(_), None) => None,
            (_, opened) => Some(baseline.at_ms(now_ms, opened.unwrap_or(now_ms))),
        };
        // No baseline instant, no baseline data, or an error reading it: the series keep no
        // baseline, and classify applies the criterion's no_data rule to them.
        let past = match at_ms {
            Some(ms) => self.query_at(Some(ms)).await,
            None => Observation::NoData,
        };
        let past = match past {
            Observation::Values { series } => series,
            _ => Vec::new(),
        };
        pair_baselines(&mut series, &past);
        Observation::Values { series }
    }
}

/// Gives each series the value of the past series with the same labels; a lone series with a
/// lone past series pairs even when their labels differ (e.g. a label that names the build).
pub fn pair_baselines(series: &mut [Series], past: &[Series]) {
    let lone = series.len() == 1 && past.len() == 1;
    for s in series.iter_mut() {
        s.baseline = past
            .iter()
            .find(|p| p.labels == s.labels)
            .or(if lone { past.first() } else { None })
            .map(|p| p.value);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// Turns the body of `/api/v1/query` into an observation.
pub fn parse_query_response(body: &str) -> Observation {
    let error = |message: String| Observation::Error { message };
    let response: Response = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => {
            return error(format!(
                "the answer is not a Prometheus query response ({e}): {}",
                snippet(body)
            ));
        }
    };
    if response.status != "success" {
        return error(format!(
            "prometheus: {}: {}",
            response.error_type.as_deref().unwrap_or("error"),
            response.error.as_deref().unwrap_or("no message")
        ));
    }
    let Some(data) = response.data else {
        return error("the prometheus response has no data".into());
    };
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = match serde_json::from_value(data.result) {
                Ok(s) => s,
                Err(e) => return error(format!("the vector result is malformed: {e}")),
            };
            if samples.is_empty() {
                return Observation::NoData;
            }
            let mut series = Vec::with_capacity(samples.len());
            for sample in samples {
                let Some(value) = parse_number(&sample.value.1) else {
                    return error(format!(
                        "the sample value {:?} is not a number",
                        sample.value.1
                    ));
                };
                // A BTreeMap iterates in name order, so the labels come out sorted.
                series.push(Series {
                    labels: sample.metric.into_iter().collect(),
                    value,
                    baseline: None,
                });
            }
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            Observation::Values { series }
        }
        "scalar" => {
            let sample: (serde_json::Value, String) = match serde_json::from_value(data.result) {
                Ok(s) => s,
                Err(e) => return error(format!("the scalar result is malformed: {e}")),
            };
            match parse_number(&sample.1) {
                Some(value) => Observation::Values {
                    series: vec![Series {
                        labels: Vec::new(),
                        value,
                        baseline: None,
                    }],
                },
                None => error(format!("the scalar value {:?} is not a number", sample.1)),
            }
        }
        other => error(format!(
            "the query returned a {other}; a criterion needs an instant query returning a vector \
             or a scalar"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(observation: Observation) -> Vec<(Vec<(String, String)>, f64)> {
        match observation {
            Observation::Values { series } => {
                series.into_iter().map(|s| (s.labels, s.value)).collect()
            }
            other => panic!("expected values, got {other:?}"),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn message(observation: Observation) -> String {
        match observation {
            Observation::Error { message } => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn vector_keeps_every_label_sorted_by_name() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"zone":"b","__name__":"errors","job":"api"},"value":[1700000000.5,"0.25"]},
            {"metric":{"job":"api","zone":"a"},"value":[1700000000.5,"3"]}
        ]}}"#;
        assert_eq!(
            values(parse_query_response(body)),
            vec![
                (
                    labels(&[("__name__", "errors"), ("job", "api"), ("zone", "b")]),
                    0.25
                ),
                (labels(&[("job", "api"), ("zone", "a")]), 3.0),
            ]
        );
    }

    #[test]
    fn special_values_parse() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"k":"a"},"value":[1,"NaN"]},
            {"metric":{"k":"b"},"value":[1,"+Inf"]},
            {"metric":{"k":"c"},"value":[1,"-Inf"]},
            {"metric":{"k":"d"},"value":[1,"1e-3"]}
        ]}}"#;
        let got = values(parse_query_response(body));
        assert!(got[0].1.is_nan());
        assert_eq!(got[1].1, f64::INFINITY);
        assert_eq!(got[2].1, f64::NEG_INFINITY);
        assert_eq!(got[3].1, 0.001);
    }

    #[test]
    fn scalar_is_one_series_without_labels() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"+Inf"]}}"#;
        assert_eq!(
            values(parse_query_response(body)),
            vec![(Vec::new(), f64::INFINITY)]
        );
        let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(values(parse_query_response(body))[0].1.is_nan());
    }

    #[test]
    fn empty_vector_is_no_data() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_query_response(body), Observation::NoData);
    }

    #[test]
    fn matrix_and_string_need_an_instant_vector_or_scalar() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]}}"#;
        assert_eq!(
            message(parse_query_response(body)),
            "the query returned a matrix; a criterion needs an instant query returning a vector \
             or a scalar"
        );
        let body = r#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#;
        assert!(message(parse_query_response(body)).starts_with("the query returned a string;"));
    }

    #[test]
    fn status_error_carries_type_and_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#;
        assert_eq!(
            message(parse_query_response(body)),
            "prometheus: bad_data: invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            message(parse_query_response("<html>502 Bad Gateway</html>"))
                .starts_with("the answer is not a Prometheus query response")
        );
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1,"many"]}]}}"#;
        assert_eq!(
            message(parse_query_response(body)),
            "the sample value \"many\" is not a number"
        );
    }
}
