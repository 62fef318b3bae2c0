//! `http` steps and preconditions, and HTTP checks for `verify`: one request, judged by its status,
//! a substring of its body, or a number read from its JSON body.
//!
//! Runners only run: the deadline and cancellation come from the executor, and nothing here
//! retries. Messages never name the URL, which may carry credentials or a resolved secret.
//! TLS uses rustls with the ring provider only, and the platform's root certificates.

use std::sync::Once;

use super::{Invocation, Outcome, StepRunner};
use crate::env::Resolver;
use crate::process::OUTPUT_CAP;
use async_trait::async_trait;
use backout_model::Condition;
use backout_model::plan::{HttpCheck, HttpRequest};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};

/// Installs rustls' ring provider as the process default. A provider installed earlier (by
/// `main`, or an earlier call) stays, so calling this more than once is harmless.
pub fn install_crypto_provider() {
    // The error only says a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the request of an `http` step or precondition.
pub struct HttpRunner {
    request: HttpRequest,
}

impl HttpRunner {
    pub fn new(request: HttpRequest) -> HttpRunner {
        HttpRunner { request }
    }
}

/// Runs an HTTP check of a `verify`: status and body, then optionally a number judged by
/// conditions.
pub struct HttpCheckRunner {
    check: HttpCheck,
    fails_if: Option<Condition>,
    passes_if: Option<Condition>,
}

impl HttpCheckRunner {
    pub fn new(
        check: HttpCheck,
        fails_if: Option<Condition>,
        passes_if: Option<Condition>,
    ) -> HttpCheckRunner {
        HttpCheckRunner {
            check,
            fails_if,
            passes_if,
        }
    }
}

#[async_trait]
impl StepRunner for HttpRunner {
    async fn run(&self, inv: Invocation) -> Outcome {
        let r = &self.request;
        let expect_body = match r
            .expect_body
            .as_deref()
            .map(|b| inv.resolver.resolve(b))
            .transpose()
        {
            Ok(b) => b,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let prepared = match prepare(
            &inv.resolver,
            &r.method,
            &r.url,
            &r.headers,
            r.body.as_deref(),
        ) {
            Ok(p) => p,
            Err(detail) => return Outcome::failed(detail),
        };
        let (mut outcome, response) = match exchange(prepared, inv).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        match expectations(&response, r.expect_status, expect_body.as_deref()) {
            Ok(()) => outcome.ok = true,
            Err(detail) => outcome.detail = detail,
        }
        outcome
    }
}

#[async_trait]
impl StepRunner for HttpCheckRunner {
    async fn run(&self, inv: Invocation) -> Outcome {
        let c = &self.check;
        let expect_body = match c
            .expect_body
            .as_deref()
            .map(|b| inv.resolver.resolve(b))
            .transpose()
        {
            Ok(b) => b,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let prepared = match prepare(
            &inv.resolver,
            &c.method,
            &c.url,
            &c.headers,
            c.body.as_deref(),
        ) {
            Ok(p) => p,
            Err(detail) => return Outcome::failed(detail),
        };
        let (mut outcome, response) = match exchange(prepared, inv).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        if let Err(detail) = expectations(&response, c.expect_status, expect_body.as_deref()) {
            outcome.detail = detail;
            return outcome;
        }
        if c.json_pointer.is_none() && self.fails_if.is_none() && self.passes_if.is_none() {
            outcome.ok = true;
            return outcome;
        }
        let (value, found) = match number_in(&response.body, c.json_pointer.as_deref()) {
            Ok(found) => found,
            Err(why) => {
                outcome.detail = format!("HTTP {}, {why}", response.status);
                return outcome;
            }
        };
        let fails = self.fails_if.is_some_and(|f| f.holds(value));
        let passes = self.passes_if.is_none_or(|p| p.holds(value));
        outcome.ok = !fails && passes;
        outcome.detail = match (fails, passes, self.fails_if, self.passes_if) {
            (true, _, Some(f), _) => format!("HTTP {}, {found} fails `{f}`", response.status),
            (false, false, _, Some(p)) => {
                format!("HTTP {}, {found} does not pass `{p}`", response.status)
            }
            _ => format!("HTTP {}, {found} passes", response.status),
        };
        outcome
    }
}

/// A request with every `${VAR}` resolved and every part validated.
struct Prepared {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<String>,
}

/// What came back: the status and the body as kept (cut at the output cap).
struct Response {
    status: u16,
    body: String,
}

fn prepare(
    resolver: &Resolver,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Prepared, String> {
    let method = method.trim();
    let method = if method.is_empty() {
        Method::GET
    } else {
        method
            .to_ascii_uppercase()
            .parse::<Method>()
            .map_err(|_| format!("`{method}` is not an HTTP method"))?
    };
    let url = resolver.resolve_url(url).map_err(|e| e.to_string())?;
    // The parse error never quotes the URL, so it is safe to show.
    let url = Url::parse(&url).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme `{}` is not http or https",
            url.scheme()
        ));
    }
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
    let body = body
        .map(|b| resolver.resolve(b))
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Prepared {
        method,
        url,
        headers: map,
        body,
    })
}

/// The HTTP client, with ring installed first so no caller can forget it.
fn client(https: bool) -> Result<Client, String> {
    static CRYPTO: Once = Once::new();
    CRYPTO.call_once(install_crypto_provider);
    match Client::builder().build() {
        Ok(client) => Ok(client),
        // Building fails when the machine has no CA certificates. Plain http needs none, so it
        // still works; https says why it cannot.
        Err(e) if https => Err(format!("could not set up TLS: {}", chain(&e))),
        Err(_) => Client::builder()
            .tls_certs_only(Vec::new())
            .build()
            .map_err(|e| format!("could not set up the HTTP client: {}", chain(&e))),
    }
}

/// Sends the request and reads the response within the deadline, unless cancelled. `Ok` carries
/// an outcome (not yet ok) already filled with status, body and "HTTP <status>".
async fn exchange(prepared: Prepared, inv: Invocation) -> Result<(Outcome, Response), Outcome> {
    let client = client(prepared.url.scheme() == "https").map_err(Outcome::failed)?;
    let mut request = client
        .request(prepared.method, prepared.url)
        .headers(prepared.headers);
    if let Some(body) = prepared.body {
        request = request.body(body);
    }

    let mut got = Received::default();
    let deadline = inv.deadline;
    let mut cancel = inv.cancel;
    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        loop {
            if *cancel.borrow_and_update() {
                return;
            }
            if cancel.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let ended = tokio::select! {
        result = receive(request, &mut got) => Ended::Done(result),
        () = sleep_until => Ended::TimedOut,
        () = cancelled => Ended::Cancelled,
    };

    let status = got.status;
    let mut outcome = Outcome {
        exit_status: status.map(i32::from),
        stdout: got.text(),
        ..Outcome::default()
    };
    let waiting_for = match status {
        Some(s) => format!("the body of HTTP {s}"),
        None => "the response".to_string(),
    };
    match ended {
        Ended::Done(Ok(())) => {}
        Ended::Done(Err(e)) => {
            outcome.detail = match status {
                Some(s) => format!("HTTP {s}, reading the body failed: {}", causes(e)),
                None if e.is_connect() => format!("could not connect: {}", causes(e)),
                None => format!("request failed: {}", causes(e)),
            };
            return Err(outcome);
        }
        Ended::TimedOut => {
            outcome.timed_out = true;
            outcome.detail =
                format!("timed out waiting for {waiting_for}; the request was abandoned");
            return Err(outcome);
        }
        Ended::Cancelled => {
            outcome.cancelled = true;
            outcome.detail =
                format!("aborted while waiting for {waiting_for}; the request was abandoned");
            return Err(outcome);
        }
    }
    let Some(status) = status else {
        // `receive` returns Ok only after recording the status.
        outcome.detail = "request failed: no response".into();
        return Err(outcome);
    };
    outcome.detail = format!("HTTP {status}");
    let response = Response {
        status,
        body: outcome.stdout.clone(),
    };
    Ok((outcome, response))
}

enum Ended {
    Done(Result<(), reqwest::Error>),
    TimedOut,
    Cancelled,
}

/// What has arrived so far; kept outside the request future so a timeout still reports it.
#[derive(Default)]
struct Received {
    status: Option<u16>,
    kept: Vec<u8>,
    dropped: u64,
}

impl Received {
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                "\n[output cut: {} more bytes not kept]\n",
                self.dropped
            ));
        }
        text
    }
}

async fn receive(
    request: reqwest::RequestBuilder,
    got: &mut Received,
) -> Result<(), reqwest::Error> {
    let mut response = request.send().await?;
    got.status = Some(response.status().as_u16());
    while let Some(chunk) = response.chunk().await? {
        let room = OUTPUT_CAP.saturating_sub(got.kept.len());
        let take = chunk.len().min(room);
        got.kept.extend_from_slice(&chunk[..take]);
        got.dropped += (chunk.len() - take) as u64;
    }
    Ok(())
}

/// The status (exact, or any 2xx) and the expected substring of the body.
fn expectations(
    response: &Response,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
) -> Result<(), String> {
    let status = response.status;
    match expect_status {
        Some(expected) if status != expected => {
            return Err(format!("HTTP {status}, expected {expected}"));
        }
        None if !(200..300).contains(&status) => {
            return Err(format!("HTTP {status}, expected 2xx"));
        }
        _ => {}
    }
    if let Some(needle) = expect_body
        && !response.body.contains(needle)
    {
        return Err(format!("HTTP {status}, body does not contain {needle:?}"));
    }
    Ok(())
}

/// The number to judge: at a JSON pointer when given, else the whole body. Returns the value
/// and how to describe it.
fn number_in(body: &str, pointer: Option<&str>) -> Result<(f64, String), String> {
    let Some(pointer) = pointer else {
        let value = body
            .trim()
            .parse::<f64>()
            .map_err(|_| "the body is not a number".to_string())?;
        return Ok((value, format!("value {value}")));
    };
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let found = json
        .pointer(pointer)
        .ok_or_else(|| format!("the body has no value at `{pointer}`"))?;
    let value = match found {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let value = value.ok_or_else(|| {
        format!(
            "the value at `{pointer}` is not a number: {}",
            snippet(found)
        )
    })?;
    Ok((value, format!("value {value} at `{pointer}`")))
}

/// A short rendering of a JSON value for a one-line message.
fn snippet(value: &serde_json::Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The causes of a request error on one line, never the URL. hyper's wrapper ("client error
/// (Connect)") and causes repeating an earlier one add nothing, so they are left out.
pub(crate) fn causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.starts_with("client error (") && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = cause.source();
    }
    if text.is_empty() {
        error.to_string()
    } else {
        text
    }
}

/// An error and its causes on one line, skipping causes whose text repeats their parent's.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
