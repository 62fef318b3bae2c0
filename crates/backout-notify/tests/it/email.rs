//! Email deliveries against a real SMTP server: aiosmtpd, started by the test on a free loopback
//! port (`backout-testkit`'s `smtp_sink.py`). Without aiosmtpd these tests fail and say how to install it.

use std::time::Duration;

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, DeliveryError, Receipt, Target, render};
use backout_testkit::SmtpSink;
use serde_json::json;

use crate::common::{full_notice, install_crypto};

async fn send(smtp_url: Option<String>, to: &[&str]) -> Result<Receipt, DeliveryError> {
    install_crypto();
    let deliverer = Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(10),
        smtp_url,
        from: "backout@ops.example.com".into(),
    })
    .expect("a valid configuration");
    let mut notice = full_notice(Event::RollbackRequired);
    notice.verdict.as_mut().expect("a verdict")["requested"] =
        json!({ "by": "carol", "reason": "<script>alert(1)</script>" });
    let message = render(&notice, None).expect("built-in templates render");
    let target = Target::Email(to.iter().map(|a| (*a).to_owned()).collect());
    deliverer.deliver(&target, &notice, &message).await
}

#[tokio::test]
async fn sends_plain_text_and_html_to_every_recipient() {
    let sink = SmtpSink::start();
    let receipt = send(
        Some(sink.url()),
        &["vp-eng@example.com", "support-lead@example.com"],
    )
    .await
    .expect("delivered");
    assert!(receipt.detail.starts_with("250"), "{}", receipt.detail);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "backout@ops.example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["vp-eng@example.com", "support-lead@example.com"])
    );
    let headers = &m["headers"];
    assert_eq!(
        headers["Subject"],
        "Rollback required: checkout 2.4.0 in production"
    );
    assert_eq!(headers["X-Backout-Event-Id"], "rel-42.17");
    assert_eq!(headers["Message-ID"], "<backout.rel-42.17@ops.example.com>");
    assert_eq!(headers["From"], "backout@ops.example.com");
    assert_eq!(
        headers["To"],
        "vp-eng@example.com, support-lead@example.com"
    );
    assert_eq!(m["content_type"], "multipart/alternative");

    let parts = m["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["content_type"], "text/plain");
    let text = parts[0]["content"].as_str().expect("text");
    assert!(
        text.contains("checkout 2.4.0 in production needs to be rolled back to 2.3.9."),
        "{text}"
    );
    assert!(
        text.contains("carol requested the rollback: <script>alert(1)</script>."),
        "{text}"
    );
    assert!(text.contains("backout decide rel-42 approve"), "{text}");

    assert_eq!(parts[1]["content_type"], "text/html");
    let html = parts[1]["content"].as_str().expect("html");
    assert!(
        html.contains(
            "<h2 style=\"font-size: 18px;\">Rollback required: checkout 2.4.0 in production</h2>"
        ),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test]
async fn a_rejected_recipient_is_not_retried() {
    let sink = SmtpSink::start();
    let error = send(Some(sink.url()), &["reject@example.com"])
        .await
        .expect_err("550");
    assert!(!error.retryable);
    assert!(error.message.contains("550"), "{}", error.message);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_busy_server_is_retried() {
    let sink = SmtpSink::start();
    let error = send(Some(sink.url()), &["busy@example.com"])
        .await
        .expect_err("451");
    assert!(error.retryable);
    assert!(error.message.contains("451"), "{}", error.message);
}

#[tokio::test]
async fn a_server_that_is_down_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let error = send(
        Some(format!("smtp://127.0.0.1:{port}")),
        &["vp-eng@example.com"],
    )
    .await
    .expect_err("nothing listens");
    assert!(error.retryable, "{}", error.message);
}

#[tokio::test]
async fn without_an_smtp_server_email_is_not_retried() {
    let error = send(None, &["vp-eng@example.com"])
        .await
        .expect_err("no SMTP URL");
    assert!(!error.retryable);
    assert!(
        error.message.contains("BACKOUT_SMTP_URL"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_invalid_address_is_not_retried() {
    let sink = SmtpSink::start();
    let error = send(Some(sink.url()), &["not an address"])
        .await
        .expect_err("invalid address");
    assert!(!error.retryable);
    assert!(
        error.message.contains("not an address"),
        "{}",
        error.message
    );
}
