//! Signal sources of rollback criteria: one measurement of one criterion, as an [`Observation`].
//!
//! A source only observes: it never classifies (that is `criteria::classify`), never retries and
//! never schedules (that is the watcher's job). Every observation is bounded by the criterion's
//! `timeout`; a timeout, a refused connection or an unreadable answer is `Observation::Error`,
//! never a passing measurement. Messages never name the URL, which may carry credentials.

mod alertmanager;
mod command;
mod http;
mod prometheus;
mod range;

use crate::runner::http::{causes, chain};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use backout_model::plan::{Criterion, Endpoint, Source as SourceSpec, Sources};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};

use super::Observation;
use crate::env::Resolver;

pub use alertmanager::AlertmanagerSource;
pub use command::CommandSource;
pub use http::HttpSource;
pub use prometheus::{PrometheusSource, pair_baselines, parse_query_response};
pub use range::{CHUNK_POINTS, Sample, chunks, parse_range_response, query_range};

/// The largest response body a source reads; anything longer is an error, not a truncated parse.
const BODY_CAP: usize = 16 * 1024 * 1024;

/// Measures one criterion.
#[async_trait]
pub trait Source: Send + Sync {
    /// One measurement, within the criterion's timeout.
    async fn observe(&self) -> Observation;
}

/// Builds the source of a criterion. Fails when a monitoring endpoint is not configured or its
/// URL or headers cannot be resolved; the message says what to set. Without a release there is
/// no opening time, so a `baseline: {before_deploy}` criterion reads no baseline (no data); use
/// [`for_criterion_at`] for a release's criteria.
pub fn for_criterion(
    criterion: &Criterion,
    sources: &Sources,
    resolver: Arc<Resolver>,
) -> Result<Box<dyn Source>, String> {
    for_criterion_at(criterion, sources, resolver, None)
}

/// Like [`for_criterion`], for a release whose window opened at `opened_at_ms` (ms since the
/// epoch), which `baseline: {before_deploy}` is measured from.
pub fn for_criterion_at(
    criterion: &Criterion,
    sources: &Sources,
    resolver: Arc<Resolver>,
    opened_at_ms: Option<i64>,
) -> Result<Box<dyn Source>, String> {
    let timeout = criterion.timeout.0;
    match &criterion.source {
        SourceSpec::Prometheus(query) => {
            let endpoint = endpoint(
                sources.prometheus.as_ref(),
                "prometheus",
                "PROMETHEUS_URL",
                &resolver,
                timeout,
            )?;
            Ok(Box::new(
                PrometheusSource::new(endpoint, query.clone())
                    .with_baseline(criterion.baseline, opened_at_ms),
            ))
        }
        SourceSpec::Alertmanager { alert, matchers } => {
            let endpoint = endpoint(
                sources.alertmanager.as_ref(),
                "alertmanager",
                "ALERTMANAGER_URL",
                &resolver,
                timeout,
            )?;
            Ok(Box::new(AlertmanagerSource::new(
                endpoint,
                alert.clone(),
                matchers.clone(),
            )))
        }
        SourceSpec::Http(check) => Ok(Box::new(HttpSource::new(
            check.clone(),
            criterion.fails_if.is_some() || criterion.passes_if.is_some(),
            criterion.every.0,
            resolver,
            timeout,
        )?)),
        SourceSpec::Command(script) => Ok(Box::new(CommandSource::new(
            script.clone(),
            criterion.fails_if.is_some() || criterion.passes_if.is_some(),
            resolver,
            timeout,
        ))),
    }
}

/// The Prometheus endpoint of a plan (`criteria.sources.prometheus`, else `PROMETHEUS_URL`),
/// each request bounded by `timeout`: what a backtest reads history from.
pub fn prometheus_endpoint(
    sources: &Sources,
    resolver: &Resolver,
    timeout: Duration,
) -> Result<Resolved, String> {
    endpoint(
        sources.prometheus.as_ref(),
        "prometheus",
        "PROMETHEUS_URL",
        resolver,
        timeout,
    )
}

/// Where a plan's criteria read their signals: `criteria.sources` (empty when criteria do not
/// apply, so the environment variables are used).
pub fn of_plan(plan: &backout_model::Plan) -> Sources {
    plan.criteria
        .given()
        .map(|c| c.sources.clone())
        .unwrap_or_default()
}

/// One measurement of `criterion` now. A source that cannot be built is an error observation,
/// never a pass.
pub async fn measure(
    criterion: &Criterion,
    sources: &Sources,
    resolver: Arc<Resolver>,
) -> Observation {
    measure_at(criterion, sources, resolver, None).await
}

/// Like [`measure`], for a release whose window opened at `opened_at_ms` (the origin of
/// `baseline: {before_deploy}`).
pub async fn measure_at(
    criterion: &Criterion,
    sources: &Sources,
    resolver: Arc<Resolver>,
    opened_at_ms: Option<i64>,
) -> Observation {
    // Evidence is redacted before anyone sees it (env.rs).
    let redactor = crate::env::Redactor::of_criterion(criterion, sources, &resolver);
    let observation = match for_criterion_at(criterion, sources, resolver, opened_at_ms) {
        Ok(source) => source.observe().await,
        Err(message) => Observation::Error { message },
    };
    redactor.observation(observation)
}

/// A monitoring endpoint with everything resolved: where to send requests, and how.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The base URL, without a trailing slash.
    base: Url,
    headers: HeaderMap,
    timeout: Duration,
    client: Client,
}

impl Resolved {
    /// A resolved endpoint from parts (tests, and sources built without a plan).
    pub fn new(url: &str, headers: HeaderMap, timeout: Duration) -> Result<Resolved, String> {
        let base = parse_url(url)?;
        let client = client(base.scheme() == "https")?;
        Ok(Resolved {
            base,
            headers,
            timeout,
            client,
        })
    }

    /// The URL of an API path below the base (which may itself have a path prefix).
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(None);
        url
    }
}

/// The endpoint of a kind of source: the plan's `criteria.sources.<kind>` when given, else the
/// `<VAR>` environment variable. The criterion's timeout bounds each request; an endpoint
/// timeout, when shorter, bounds it further.
fn endpoint(
    configured: Option<&Endpoint>,
    kind: &str,
    var: &str,
    resolver: &Resolver,
    timeout: Duration,
) -> Result<Resolved, String> {
    let Some(configured) = configured else {
        let Some(url) = resolver.vars().get(var).filter(|u| !u.trim().is_empty()) else {
            return Err(format!(
                "no {kind} endpoint: set `criteria.sources.{kind}.url` in the plan or the \
                 {var} environment variable"
            ));
        };
        return Resolved::new(url.trim(), HeaderMap::new(), timeout)
            .map_err(|e| format!("{var}: {e}"));
    };
    let url = resolver
        .resolve_url(&configured.url)
        .map_err(|e| format!("criteria.sources.{kind}.url: {e}"))?;
    let headers = headers(resolver, &configured.headers)
        .map_err(|e| format!("criteria.sources.{kind}.headers: {e}"))?;
    let timeout = configured.timeout.map_or(timeout, |t| t.0.min(timeout));
    Resolved::new(url.trim(), headers, timeout)
        .map_err(|e| format!("criteria.sources.{kind}.url: {e}"))
}

/// Parses an http(s) URL; the error never quotes it.
fn parse_url(url: &str) -> Result<Url, String> {
    let url = Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme `{}` is not http or https",
            url.scheme()
        ));
    }
    Ok(url)
}

/// Resolves `${VAR}` in header values; the values are marked sensitive so they never show in
/// debug output.
fn headers(resolver: &Resolver, headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let value = resolver.resolve(value).map_err(|e| e.to_string())?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

/// The HTTP client, with rustls' ring provider installed first. One client (one connection
/// pool, one TLS configuration) is shared by every source of the process: a watcher of
/// thousands of criteria keeps its connections alive instead of building a client each.
fn client(https: bool) -> Result<Client, String> {
    static CRYPTO: Once = Once::new();
    static TLS: OnceLock<Result<Client, String>> = OnceLock::new();
    static PLAIN: OnceLock<Result<Client, String>> = OnceLock::new();
    CRYPTO.call_once(crate::runner::http::install_crypto_provider);
    let tls = TLS.get_or_init(|| {
        Client::builder()
            .build()
            .map_err(|e| format!("could not set up TLS: {}", chain(&e)))
    });
    match tls {
        Ok(client) => Ok(client.clone()),
        Err(e) if https => Err(e.clone()),
        // Building fails when the machine has no CA certificates; plain http needs none.
        Err(_) => PLAIN
            .get_or_init(|| {
                Client::builder()
                    .tls_certs_only(Vec::new())
                    .build()
                    .map_err(|e| format!("could not set up the HTTP client: {}", chain(&e)))
            })
            .clone(),
    }
}

/// A response: its status and its whole body.
struct Fetched {
    status: u16,
    body: String,
}

/// Sends one request and reads the whole response within `timeout`. The error is a message for
/// `Observation::Error`, without the URL.
async fn fetch(
    client: &Client,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<String>,
    timeout: Duration,
) -> Result<Fetched, String> {
    let mut request = client.request(method, url).headers(headers);
    if let Some(body) = body {
        request = request.body(body);
    }
    let exchange = async {
        let mut response = request.send().await.map_err(|e| {
            if e.is_connect() {
                format!("could not connect: {}", causes(e))
            } else {
                format!("request failed: {}", causes(e))
            }
        })?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("HTTP {status}, reading the body failed: {}", causes(e)))?
        {
            if body.len() + chunk.len() > BODY_CAP {
                return Err(format!(
                    "HTTP {status}, the body is larger than {} MiB",
                    BODY_CAP / 1024 / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timed out after {}; the request was abandoned",
            backout_model::Duration(timeout)
        )),
    }
}

/// The first characters of a text, on one line, for a message.
fn snippet(text: &str) -> String {
    let text = text.trim().replace(['\n', '\r'], " ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Parses a sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf` included).
fn parse_number(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// Labels as `{a="1", b="2"}`, or nothing when there are none.
fn format_labels(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner = labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{{inner}}}")
}
