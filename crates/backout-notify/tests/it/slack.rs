//! Slack deliveries against a real HTTP server in the test.

use std::time::Duration;

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, Target, render};
use serde_json::json;

use crate::common::{Answer, HttpSink, full_notice, install_crypto};

fn deliverer() -> Deliverer {
    install_crypto();
    Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    })
    .expect("the default configuration works")
}

#[tokio::test]
async fn posts_blocks_with_escaped_text() {
    let receiver = HttpSink::start(Answer {
        body: "ok",
        ..Answer::status(200)
    });
    let mut notice = full_notice(Event::RollbackRequired);
    notice.verdict.as_mut().expect("a verdict")["requested"] =
        json!({ "by": "carol", "reason": "<!channel> payments & refunds > broken" });
    let message = render(&notice, None).expect("built-in templates render");
    deliverer()
        .deliver(&Target::Slack(receiver.url.clone()), &notice, &message)
        .await
        .expect("a 200 is delivered");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some("rel-42.17"));
    let body = request.json();
    let blocks = body["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Rollback required: checkout 2.4.0 in production"
    );
    let sections: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "section")
        .map(|b| {
            assert_eq!(b["text"]["type"], "mrkdwn");
            b["text"]["text"].as_str().expect("section text")
        })
        .collect();
    let all = sections.join("\n\n");
    assert!(
        all.contains(
            "carol requested the rollback: &lt;!channel&gt; payments &amp; refunds &gt; broken."
        ),
        "{all}"
    );
    assert!(!all.contains("<!channel>"), "{all}");
    assert!(
        all.contains("- error-rate: 0.031 {route=\"/pay\"} (threshold &gt; 0.02)"),
        "{all}"
    );
    assert!(
        all.contains("```backout decide rel-42 approve --reason \"&lt;why&gt;\""),
        "{all}"
    );
    let context = blocks.last().expect("a context block");
    assert_eq!(context["type"], "context");
    assert_eq!(
        context["elements"][0]["text"],
        "backout · rollback_required · event `rel-42.17`"
    );
    let text = body["text"].as_str().expect("a fallback text");
    assert!(
        text.starts_with("Rollback required: checkout 2.4.0 in production"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
}

#[tokio::test]
async fn an_overridden_window_leads_the_message() {
    let receiver = HttpSink::start(Answer::status(200));
    let mut notice = full_notice(Event::Decision);
    notice.decision.as_mut().expect("a decision")["override_window"] = json!(true);
    let message = render(&notice, None).expect("built-in templates render");
    deliverer()
        .deliver(&Target::Slack(receiver.url.clone()), &notice, &message)
        .await
        .expect("a 200 is delivered");
    let body = receiver.requests()[0].json();
    let header = body["blocks"][0]["text"]["text"]
        .as_str()
        .expect("a header");
    assert!(header.starts_with("[WINDOW OVERRIDDEN] "), "{header}");
    let warning = body["blocks"][1]["text"]["text"]
        .as_str()
        .expect("a warning");
    assert!(
        warning.starts_with(
            ":rotating_light: *WINDOW OVERRIDDEN: the rollback window had closed; bob"
        ),
        "{warning}"
    );
}

#[tokio::test]
async fn slack_refusing_the_hook_is_not_retried() {
    let receiver = HttpSink::start(Answer {
        body: "no_service",
        ..Answer::status(404)
    });
    let notice = full_notice(Event::Started);
    let message = render(&notice, None).expect("built-in templates render");
    let error = deliverer()
        .deliver(&Target::Slack(receiver.url.clone()), &notice, &message)
        .await
        .expect_err("a 404 is not delivered");
    assert!(!error.retryable);
    assert_eq!(error.message, "HTTP 404: no_service");
}

#[tokio::test]
async fn slack_failing_is_retried() {
    let receiver = HttpSink::start(Answer::status(500));
    let notice = full_notice(Event::Started);
    let message = render(&notice, None).expect("built-in templates render");
    let error = deliverer()
        .deliver(&Target::Slack(receiver.url.clone()), &notice, &message)
        .await
        .expect_err("a 500 is not delivered");
    assert!(error.retryable);
}
