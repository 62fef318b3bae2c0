//! Webhook deliveries against a real HTTP server in the test.

use std::time::{Duration, Instant};

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, Target, render};

use crate::common::{Answer, HttpSink, full_notice, install_crypto, refused_url};

fn deliverer(timeout: Duration) -> Deliverer {
    install_crypto();
    Deliverer::new(DeliveryConfig {
        timeout,
        ..DeliveryConfig::default()
    })
    .expect("the default configuration works")
}

async fn send(
    url: &str,
    timeout: Duration,
) -> Result<backout_notify::Receipt, backout_notify::DeliveryError> {
    let notice = full_notice(Event::RollbackRequired);
    let message = render(&notice, None).expect("built-in templates render");
    deliverer(timeout)
        .deliver(&Target::webhook(url), &notice, &message)
        .await
}

#[tokio::test]
async fn posts_the_notice_as_json_with_the_idempotency_key() {
    let receiver = HttpSink::start(Answer::status(200));
    let receipt = send(&receiver.url, Duration::from_secs(10))
        .await
        .expect("a 200 is delivered");
    assert_eq!(receipt.detail, "HTTP 200");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/secret-token");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some("rel-42.17"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("backout/", env!("CARGO_PKG_VERSION")))
    );
    let body = request.json();
    let expected =
        serde_json::to_value(full_notice(Event::RollbackRequired)).expect("a notice serializes");
    assert_eq!(body, expected);
    assert_eq!(body["event"], "rollback_required");
    assert_eq!(body["event_id"], "rel-42.17");
    assert_eq!(body["release"]["window"]["override"], false);
    assert_eq!(body["verdict"]["criteria"][0]["threshold"], "> 0.02");
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let receiver = HttpSink::start(Answer {
        body: "unknown hook\nmore detail",
        ..Answer::status(400)
    });
    let error = send(&receiver.url, Duration::from_secs(10))
        .await
        .expect_err("a 400 is not delivered");
    assert!(!error.retryable);
    assert_eq!(error.message, "HTTP 400: unknown hook");
}

#[tokio::test]
async fn unavailable_and_rate_limited_are_retried_after_the_asked_delay() {
    let receiver = HttpSink::start(Answer {
        headers: vec![("retry-after", "7")],
        ..Answer::status(503)
    });
    let error = send(&receiver.url, Duration::from_secs(10))
        .await
        .expect_err("a 503 is not delivered");
    assert!(error.retryable);
    assert_eq!(error.message, "HTTP 503");
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));

    let receiver = HttpSink::start(Answer::status(429));
    let error = send(&receiver.url, Duration::from_secs(10))
        .await
        .expect_err("a 429 is not delivered");
    assert!(error.retryable);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let receiver = HttpSink::start(Answer {
        headers: vec![("location", "http://127.0.0.1:1/elsewhere")],
        ..Answer::status(302)
    });
    let error = send(&receiver.url, Duration::from_secs(10))
        .await
        .expect_err("a redirect is not delivered");
    assert!(!error.retryable);
    assert!(
        error.message.contains("redirects are not followed"),
        "{}",
        error.message
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_retried() {
    let receiver = HttpSink::start(Answer {
        delay: Duration::from_secs(30),
        ..Answer::status(200)
    });
    let started = Instant::now();
    let error = send(&receiver.url, Duration::from_millis(300))
        .await
        .expect_err("no answer in time");
    assert!(error.retryable);
    assert!(error.message.contains("timed out"), "{}", error.message);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_url_stays_secret() {
    let url = refused_url();
    let error = send(&url, Duration::from_secs(10))
        .await
        .expect_err("nothing listens");
    assert!(error.retryable);
    assert!(!error.message.contains("secret-token"), "{}", error.message);
    assert!(!error.message.contains("127.0.0.1"), "{}", error.message);
}

#[tokio::test]
async fn a_url_that_is_not_http_is_not_retried() {
    let error = send("ftp://example.com/hook", Duration::from_secs(10))
        .await
        .expect_err("not http");
    assert!(!error.retryable);
}

/// The receiver's side of a signed webhook: recompute the HMAC over the raw body it got.
fn verifies(secret: &str, body: &[u8], header: &str) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect();
    let Some(bytes) = bytes else { return false };
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[tokio::test]
async fn a_signed_webhook_carries_its_headers_and_a_signature_the_secret_verifies() {
    let receiver = HttpSink::start(Answer::status(204));
    let notice = full_notice(Event::Decision);
    let message = render(&notice, None).expect("built-in templates render");
    let target = Target::Webhook {
        url: receiver.url.clone(),
        headers: vec![
            ("X-Team".into(), "payments".into()),
            ("Authorization".into(), "Bearer t0k3n".into()),
        ],
        secret: Some("s3cr3t-shared".into()),
    };
    deliverer(Duration::from_secs(10))
        .deliver(&target, &notice, &message)
        .await
        .expect("a 204 is delivered");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.header("x-team"), Some("payments"));
    assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
    let signature = request
        .header("x-backout-signature-256")
        .expect("a signed webhook sends its signature");
    assert!(signature.starts_with("sha256="), "{signature}");
    assert_eq!(signature.len(), "sha256=".len() + 64);
    assert!(verifies("s3cr3t-shared", &request.body, signature));
    assert!(!verifies("another-secret", &request.body, signature));
    let mut tampered = request.body.clone();
    tampered[0] ^= 1;
    assert!(!verifies("s3cr3t-shared", &tampered, signature));
    assert_eq!(
        signature,
        backout_notify::signature("s3cr3t-shared", &request.body)
    );
}

#[tokio::test]
async fn an_unsigned_webhook_sends_no_signature() {
    let receiver = HttpSink::start(Answer::status(200));
    send(&receiver.url, Duration::from_secs(10))
        .await
        .expect("delivered");
    assert_eq!(
        receiver.requests()[0].header("x-backout-signature-256"),
        None
    );
}

#[tokio::test]
async fn a_header_backout_sets_itself_is_refused_without_sending() {
    let receiver = HttpSink::start(Answer::status(200));
    let notice = full_notice(Event::Decision);
    let message = render(&notice, None).expect("built-in templates render");
    for (name, value) in [
        ("Content-Type", "text/plain"),
        ("X-Bad Name", "x"),
        ("X-Ok", "a\nb"),
    ] {
        let target = Target::Webhook {
            url: receiver.url.clone(),
            headers: vec![(name.into(), value.into())],
            secret: None,
        };
        let error = deliverer(Duration::from_secs(10))
            .deliver(&target, &notice, &message)
            .await
            .expect_err("refused");
        assert!(!error.retryable, "{name}: {error:?}");
        assert!(
            !error.message.contains(value) || value == "x",
            "{}",
            error.message
        );
    }
    assert!(receiver.requests().is_empty());
}
