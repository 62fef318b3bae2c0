//! HTTP checks as criteria: one request, judged by its status and body, or a number read from
//! its JSON body at a pointer (then judged by the criterion's conditions).
//!
//! URLs, headers, the request body and the expected body are resolved at each measurement, so a
//! rotated secret is picked up. Two variables are set only there: `${BACKOUT_NOW}`, the
//! measurement's time in Unix seconds, and `${BACKOUT_SINCE}`, that time less the criterion's
//! `every` — the window a query API that wants absolute times (Datadog's `from`/`to`) reads.
//! Messages never name the URL.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use backout_model::plan::HttpCheck;
use reqwest::{Client, Method};

use super::{Source, client, fetch, headers, parse_url, snippet};
use crate::criteria::{Observation, Series};
use crate::env::Resolver;

/// One HTTP check.
pub struct HttpSource {
    check: HttpCheck,
    method: Method,
    /// The criterion has conditions: a number is expected even without a JSON pointer.
    numeric: bool,
    /// The criterion's `every`: `${BACKOUT_SINCE}` is this long before `${BACKOUT_NOW}`.
    every: Duration,
    resolver: Arc<Resolver>,
    timeout: Duration,
    client: Client,
}

impl HttpSource {
    pub fn new(
        check: HttpCheck,
        numeric: bool,
        every: Duration,
        resolver: Arc<Resolver>,
        timeout: Duration,
    ) -> Result<HttpSource, String> {
        let method = check.method.trim();
        let method = if method.is_empty() {
            Method::GET
        } else {
            method
                .to_ascii_uppercase()
                .parse::<Method>()
                .map_err(|_| format!("`{method}` is not an HTTP method"))?
        };
        // The scheme is only known once `${VAR}`s are resolved; a client able to do TLS is
        // needed unless the URL is plainly http.
        let client = client(!check.url.starts_with("http://"))?;
        Ok(HttpSource {
            check,
            method,
            numeric,
            every,
            resolver,
            timeout,
            client,
        })
    }
}

#[async_trait]
impl Source for HttpSource {
    async fn observe(&self) -> Observation {
        match self.measure().await {
            Ok(observation) => observation,
            Err(message) => Observation::Error { message },
        }
    }
}

impl HttpSource {
    async fn measure(&self) -> Result<Observation, String> {
        let c = &self.check;
        let resolver = self.measurement_resolver();
        let url = resolver.resolve_url(&c.url).map_err(|e| e.to_string())?;
        let url = parse_url(&url)?;
        let headers = headers(&resolver, &c.headers)?;
        let body = c
            .body
            .as_deref()
            .map(|b| resolver.resolve(b))
            .transpose()
            .map_err(|e| e.to_string())?;
        let expect_body = c
            .expect_body
            .as_deref()
            .map(|b| resolver.resolve(b))
            .transpose()
            .map_err(|e| e.to_string())?;
        let fetched = fetch(
            &self.client,
            self.method.clone(),
            url,
            headers,
            body,
            self.timeout,
        )
        .await?;
        let status = fetched.status;
        let status_ok = match c.expect_status {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        };
        let expected = c.expect_status.map_or("2xx".to_string(), |s| s.to_string());
        if c.json_pointer.is_none() && !self.numeric {
            if !status_ok {
                return Ok(Observation::Judged {
                    failing: true,
                    detail: format!("HTTP {status}, expected {expected}"),
                });
            }
            if let Some(needle) = expect_body
                && !fetched.body.contains(&needle)
            {
                return Ok(Observation::Judged {
                    failing: true,
                    detail: format!("HTTP {status}, body does not contain {needle:?}"),
                });
            }
            return Ok(Observation::Judged {
                failing: false,
                detail: format!("HTTP {status}"),
            });
        }
        // A number is wanted: an unexpected answer means it could not be read, which is a source
        // error rather than a value.
        if !status_ok {
            return Err(format!(
                "HTTP {status}, expected {expected}: {}",
                snippet(&fetched.body)
            ));
        }
        let value = number_in(&fetched.body, c.json_pointer.as_deref())
            .map_err(|why| format!("HTTP {status}, {why}"))?;
        Ok(Observation::Values {
            series: vec![Series {
                labels: Vec::new(),
                value,
                baseline: None,
            }],
        })
    }
}

impl HttpSource {
    /// The plan's variables plus this measurement's `BACKOUT_NOW` and `BACKOUT_SINCE`.
    fn measurement_resolver(&self) -> Resolver {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let since = now.saturating_sub(self.every.as_secs());
        let mut resolver = (*self.resolver).clone();
        resolver.extend([
            ("BACKOUT_NOW".to_string(), now.to_string()),
            ("BACKOUT_SINCE".to_string(), since.to_string()),
        ]);
        resolver
    }
}

/// The number at a JSON pointer (a JSON number or a numeric string), or the whole body.
fn number_in(body: &str, pointer: Option<&str>) -> Result<f64, String> {
    let Some(pointer) = pointer else {
        return super::parse_number(body).ok_or_else(|| "the body is not a number".to_string());
    };
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let found = json
        .pointer(pointer)
        .ok_or_else(|| format!("the body has no value at `{pointer}`"))?;
    let value = match found {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => super::parse_number(s),
        _ => None,
    };
    value.ok_or_else(|| {
        format!(
            "the value at `{pointer}` is not a number: {}",
            snippet(&found.to_string())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_at_pointers() {
        let body = r#"{"a":{"n":5,"s":"0.5","x":"no","b":true}}"#;
        assert_eq!(number_in(body, Some("/a/n")), Ok(5.0));
        assert_eq!(number_in(body, Some("/a/s")), Ok(0.5));
        assert_eq!(
            number_in(body, Some("/a/x")),
            Err("the value at `/a/x` is not a number: \"no\"".into())
        );
        assert!(number_in(body, Some("/a/b")).is_err());
        assert_eq!(
            number_in(body, Some("/missing")),
            Err("the body has no value at `/missing`".into())
        );
        assert_eq!(number_in(" 42\n", None), Ok(42.0));
    }
}
