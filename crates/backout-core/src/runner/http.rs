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
        let prepared = match prepare(&inv.resolver, &c.method, &c.url, &c.headers, None) {
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
    let url = resolver.resolve(url).map_err(|e| e.to_string())?;
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
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;
    use tokio::time::Instant;

    use super::*;

    /// A tiny HTTP/1.1 server on a loopback port: each connection's request (head and body) goes to
    /// `answer`, whose text is written back verbatim; `None` means never answer.
    async fn serve(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let answer = answer.clone();
                tokio::spawn(async move { handle(stream, &*answer).await });
            }
        });
        addr
    }

    async fn handle(
        mut stream: TcpStream,
        answer: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    ) {
        let request = read_request(&mut stream).await;
        match answer(&request) {
            Some(response) => {
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
            None => tokio::time::sleep(Duration::from_secs(600)).await,
        }
    }

    /// Reads the head and, by Content-Length, the body. Header names are lowercased.
    async fn read_request(stream: &mut TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            if !data[0].is_ascii_alphabetic() {
                // Not HTTP (a TLS ClientHello): answer at once rather than wait for a head.
                break;
            }
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if data.len() >= end + 4 + length {
                    return format!("{head}\r\n\r\n{}", &text[end + 4..]);
                }
            }
        }
        String::from_utf8_lossy(&data).to_string()
    }

    fn reply(status: u16, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn invocation(deadline: Option<Instant>) -> Invocation {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Invocation {
            env: Vec::new(),
            deadline,
            cancel: rx,
            resolver: Arc::new(Resolver::default()),
        }
    }

    fn request(url: String) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: None,
            expect_status: None,
            expect_body: None,
        }
    }

    fn check(url: String, json_pointer: Option<&str>) -> HttpCheck {
        HttpCheck {
            url,
            method: "GET".into(),
            headers: Vec::new(),
            expect_status: None,
            expect_body: None,
            json_pointer: json_pointer.map(String::from),
        }
    }

    #[tokio::test]
    async fn any_2xx_passes_by_default_and_others_fail() {
        let addr = serve(|req| {
            if req.starts_with("get /ok ") {
                reply(202, "accepted")
            } else {
                reply(503, "down")
            }
        })
        .await;
        let out = HttpRunner::new(request(format!("http://{addr}/ok")))
            .run(invocation(None))
            .await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.exit_status, Some(202));
        assert_eq!(out.stdout, "accepted");
        assert_eq!(out.detail, "HTTP 202");

        let out = HttpRunner::new(request(format!("http://{addr}/down")))
            .run(invocation(None))
            .await;
        assert!(!out.ok);
        assert_eq!(out.exit_status, Some(503));
        assert_eq!(out.detail, "HTTP 503, expected 2xx");
    }

    #[tokio::test]
    async fn expect_status_must_match_exactly() {
        let addr = serve(|_| reply(200, "fine")).await;
        let mut r = request(format!("http://{addr}/"));
        r.expect_status = Some(202);
        let out = HttpRunner::new(r.clone()).run(invocation(None)).await;
        assert!(!out.ok);
        assert_eq!(out.detail, "HTTP 200, expected 202");
        assert_eq!(out.stdout, "fine");

        r.expect_status = Some(200);
        assert!(HttpRunner::new(r).run(invocation(None)).await.ok);
    }

    #[tokio::test]
    async fn expect_body_is_a_substring() {
        let addr = serve(|_| reply(200, r#"{"version":"2.13.4"}"#)).await;
        let mut r = request(format!("http://{addr}/version"));
        r.expect_body = Some("2.13.4".into());
        assert!(HttpRunner::new(r.clone()).run(invocation(None)).await.ok);

        r.expect_body = Some("2.13.5".into());
        let out = HttpRunner::new(r).run(invocation(None)).await;
        assert!(!out.ok);
        assert_eq!(out.detail, "HTTP 200, body does not contain \"2.13.5\"");
    }

    #[tokio::test]
    async fn variables_reach_url_headers_and_body() {
        let addr = serve(|req| {
            let expected = req.starts_with("post /deploy/2.13.4 ")
                && req.contains("\r\nauthorization: bearer s3cr3t\r\n")
                && req.ends_with("\r\n\r\n{\"version\":\"2.13.4\"}");
            if expected {
                reply(202, "queued")
            } else {
                reply(400, req)
            }
        })
        .await;
        let mut r = request(format!("http://{addr}/deploy/${{VERSION}}"));
        r.method = "POST".into();
        r.headers = vec![("Authorization".into(), "Bearer ${TOKEN}".into())];
        r.body = Some(r#"{"version":"${VERSION}"}"#.into());
        r.expect_status = Some(202);
        let mut inv = invocation(None);
        inv.resolver = Arc::new(Resolver::from_vars([
            ("TOKEN".to_string(), "s3cr3t".to_string()),
            ("VERSION".to_string(), "2.13.4".to_string()),
        ]));
        let out = HttpRunner::new(r.clone()).run(inv).await;
        assert!(out.ok, "{out:?}");

        // Without the variable nothing is sent and the outcome says which is missing.
        let out = HttpRunner::new(r).run(invocation(None)).await;
        assert!(!out.ok);
        assert_eq!(out.exit_status, None);
        assert!(
            out.detail.contains("`VERSION` is not set"),
            "{}",
            out.detail
        );
    }

    /// Pointer, fails_if, passes_if, expected ok, expected detail.
    type Case = (
        &'static str,
        Option<Condition>,
        Option<Condition>,
        bool,
        &'static str,
    );

    #[tokio::test]
    async fn json_pointer_values_are_judged_by_conditions() {
        let addr = serve(|_| reply(200, r#"{"data":{"rate":"0.3","count":5,"name":"x"}}"#)).await;
        let cond = |text: &str| Condition::parse(text);
        let cases: [Case; 7] = [
            (
                "/data/count",
                cond("> 3"),
                None,
                false,
                "HTTP 200, value 5 at `/data/count` fails `> 3`",
            ),
            (
                "/data/count",
                None,
                cond(">= 5"),
                true,
                "HTTP 200, value 5 at `/data/count` passes",
            ),
            // Failing wins over passing.
            (
                "/data/count",
                cond("> 3"),
                cond(">= 5"),
                false,
                "HTTP 200, value 5 at `/data/count` fails `> 3`",
            ),
            (
                "/data/count",
                cond("> 10"),
                cond("< 1"),
                false,
                "HTTP 200, value 5 at `/data/count` does not pass `< 1`",
            ),
            (
                "/data/rate",
                cond("> 0.2"),
                None,
                false,
                "HTTP 200, value 0.3 at `/data/rate` fails `> 0.2`",
            ),
            (
                "/data/missing",
                cond("> 0.2"),
                None,
                false,
                "HTTP 200, the body has no value at `/data/missing`",
            ),
            (
                "/data/name",
                cond("> 0.2"),
                None,
                false,
                "HTTP 200, the value at `/data/name` is not a number: \"x\"",
            ),
        ];
        for (pointer, fails_if, passes_if, ok, detail) in cases {
            let runner = HttpCheckRunner::new(
                check(format!("http://{addr}/metrics"), Some(pointer)),
                fails_if,
                passes_if,
            );
            let out = runner.run(invocation(None)).await;
            assert_eq!(
                (out.ok, out.detail.as_str()),
                (ok, detail),
                "{pointer} {fails_if:?} {passes_if:?}"
            );
            assert_eq!(out.exit_status, Some(200));
        }
    }

    #[tokio::test]
    async fn check_without_pointer_judges_status_and_body() {
        let addr = serve(|req| {
            if req.starts_with("get /health ") {
                reply(200, "ok")
            } else {
                reply(500, "no")
            }
        })
        .await;
        let out = HttpCheckRunner::new(check(format!("http://{addr}/health"), None), None, None)
            .run(invocation(None))
            .await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.detail, "HTTP 200");

        let mut c = check(format!("http://{addr}/other"), None);
        c.expect_status = Some(200);
        let out = HttpCheckRunner::new(c, None, None)
            .run(invocation(None))
            .await;
        assert!(!out.ok);
        assert_eq!(out.detail, "HTTP 500, expected 200");
    }

    #[tokio::test]
    async fn large_bodies_are_cut() {
        let addr = serve(|_| reply(200, &"a".repeat(OUTPUT_CAP + 10))).await;
        let out = HttpRunner::new(request(format!("http://{addr}/")))
            .run(invocation(None))
            .await;
        assert!(out.ok);
        assert!(
            out.stdout
                .ends_with("\n[output cut: 10 more bytes not kept]\n"),
            "{}",
            &out.stdout[OUTPUT_CAP..]
        );
    }

    #[tokio::test]
    async fn connection_refused_is_a_clear_failure_without_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let out = HttpRunner::new(request(format!("http://user:hunter2@{addr}/")))
            .run(invocation(None))
            .await;
        assert!(!out.ok);
        assert!(!out.timed_out && !out.cancelled);
        assert_eq!(out.exit_status, None);
        assert!(
            out.detail.starts_with("could not connect: "),
            "{}",
            out.detail
        );
        assert!(
            out.detail.to_lowercase().contains("connection refused"),
            "{}",
            out.detail
        );
        assert!(
            !out.detail.contains("hunter2") && !out.detail.contains(&addr.to_string()),
            "{}",
            out.detail
        );
    }

    #[tokio::test]
    async fn deadline_abandons_a_silent_server_promptly() {
        let addr = serve(|_| None).await;
        let started = Instant::now();
        let inv = invocation(Some(started + Duration::from_millis(300)));
        let out = HttpRunner::new(request(format!("http://{addr}/")))
            .run(inv)
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(out.timed_out && !out.ok, "{out:?}");
        assert_eq!(
            out.detail,
            "timed out waiting for the response; the request was abandoned"
        );
    }

    #[tokio::test]
    async fn cancellation_abandons_the_request() {
        let addr = serve(|_| None).await;
        let (tx, rx) = watch::channel(false);
        let mut inv = invocation(None);
        inv.cancel = rx;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(true).unwrap();
            tokio::time::sleep(Duration::from_secs(600)).await;
        });
        let started = Instant::now();
        let out = HttpCheckRunner::new(check(format!("http://{addr}/"), None), None, None)
            .run(inv)
            .await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(out.cancelled && !out.ok, "{out:?}");
    }

    #[tokio::test]
    async fn invalid_requests_fail_before_sending() {
        let out = HttpRunner::new(request("ftp://example.invalid/".into()))
            .run(invocation(None))
            .await;
        assert_eq!(out.detail, "the URL's scheme `ftp` is not http or https");
        let mut r = request("http://127.0.0.1:1/".into());
        r.method = "NOT A METHOD".into();
        let out = HttpRunner::new(r).run(invocation(None)).await;
        assert_eq!(out.detail, "`NOT A METHOD` is not an HTTP method");
    }

    #[tokio::test]
    async fn https_uses_the_ring_provider_without_panicking() {
        // A plain HTTP server cannot complete a TLS handshake: the client must get as far as
        // trying (client config built with ring and the platform's roots) and fail cleanly.
        let addr = serve(|_| reply(200, "not tls")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let out = HttpRunner::new(request(format!("https://{addr}/")))
            .run(invocation(Some(deadline)))
            .await;
        assert!(
            !out.ok && !out.timed_out && out.exit_status.is_none(),
            "{out:?}"
        );
        assert!(
            out.detail.starts_with("could not connect: "),
            "{}",
            out.detail
        );
    }

    #[test]
    fn installing_the_provider_twice_is_harmless() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
