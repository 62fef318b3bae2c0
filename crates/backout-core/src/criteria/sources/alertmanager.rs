//! Alertmanager: a criterion fails while its alert fires, `GET /api/v2/alerts`.
//!
//! Only active alerts count: silenced or inhibited alerts are someone's decision to ignore them.
//! The alert name and every matcher become equality filters; Alertmanager does the matching.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;

use super::{Resolved, Source, fetch, format_labels, snippet};
use crate::criteria::Observation;

/// Whether one alert (narrowed by label matchers) is firing.
pub struct AlertmanagerSource {
    endpoint: Resolved,
    alert: String,
    matchers: Vec<(String, String)>,
}

impl AlertmanagerSource {
    pub fn new(
        endpoint: Resolved,
        alert: String,
        matchers: Vec<(String, String)>,
    ) -> AlertmanagerSource {
        AlertmanagerSource {
            endpoint,
            alert,
            matchers,
        }
    }
}

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// An equality matcher in Alertmanager's filter syntax, the value quoted and escaped.
fn matcher(name: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{name}=\"{escaped}\"")
}

#[async_trait]
impl Source for AlertmanagerSource {
    async fn observe(&self) -> Observation {
        let mut url = self.endpoint.url("/api/v2/alerts");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("active", "true")
                .append_pair("silenced", "false")
                .append_pair("inhibited", "false")
                .append_pair("filter", &matcher("alertname", &self.alert));
            for (name, value) in &self.matchers {
                query.append_pair("filter", &matcher(name, value));
            }
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
        if !(200..300).contains(&fetched.status) {
            return Observation::Error {
                message: format!(
                    "alertmanager: HTTP {}: {}",
                    fetched.status,
                    snippet(&fetched.body)
                ),
            };
        }
        let alerts: Vec<Alert> = match serde_json::from_str(&fetched.body) {
            Ok(a) => a,
            Err(e) => {
                return Observation::Error {
                    message: format!("the answer is not a list of alerts ({e})"),
                };
            }
        };
        let Some(first) = alerts.first() else {
            return Observation::Judged {
                failing: false,
                detail: format!("alert {} not firing", self.alert),
            };
        };
        let labels: Vec<(String, String)> = first
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let more = match alerts.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Observation::Judged {
            failing: true,
            detail: format!(
                "alert {} firing: {}{more}",
                self.alert,
                format_labels(&labels)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_quoted_and_escaped() {
        assert_eq!(matcher("alertname", "High"), r#"alertname="High""#);
        assert_eq!(matcher("path", r#"a"b\c"#), r#"path="a\"b\\c""#);
    }
}
