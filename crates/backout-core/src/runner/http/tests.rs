//! Tests of the http runners against a real loopback server started in each test.
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

async fn handle(mut stream: TcpStream, answer: &(dyn Fn(&str) -> Option<String> + Send + Sync)) {
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
        spawned: None,
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
        body: None,
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

#[tokio::test]
async fn a_verify_check_posts_its_body_with_variables_resolved() {
    let addr = serve(|req| {
        let expected = req.starts_with("post /api/ds/query ")
            && req.contains("\r\nauthorization: bearer t0k\r\n")
            && req.ends_with("\r\n\r\n{\"expr\":\"up{job=\\\"checkout\\\"}\"}");
        if expected {
            reply(
                200,
                r#"{"results":{"A":{"frames":[{"data":{"values":[[1],[0]]}}]}}}"#,
            )
        } else {
            reply(400, req)
        }
    })
    .await;
    let mut c = check(
        format!("http://{addr}/api/ds/query"),
        Some("/results/A/frames/0/data/values/1/0"),
    );
    c.method = "POST".into();
    c.headers = vec![("Authorization".into(), "Bearer ${TOKEN}".into())];
    c.body = Some(r#"{"expr":"up{job=\"${JOB}\"}"}"#.into());
    let mut inv = invocation(None);
    inv.resolver = Arc::new(Resolver::from_vars([
        ("TOKEN".to_string(), "t0k".to_string()),
        ("JOB".to_string(), "checkout".to_string()),
    ]));
    let fails_if = Condition::parse("> 0");
    let out = HttpCheckRunner::new(c, fails_if, None).run(inv).await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.exit_status, Some(200));
}
