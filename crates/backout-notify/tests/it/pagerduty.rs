//! PagerDuty deliveries against a receiver that answers like the Events API v2 (202 with
//! `{"status":"success",...}`), checking the documented request shape.

use std::time::Duration;

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, Link, Target, render};

use crate::common::{Answer, HttpSink, full_notice, install_crypto};

const PUBLIC: &str = "https://backout.example.com";

fn notice(event: Event) -> backout_notify::Notice {
    let mut notice = full_notice(event);
    if let Some(release) = notice.release.as_mut() {
        release.change_ticket = Some("CHG0031415".into());
    }
    notice.links = vec![
        Link {
            label: "Release".into(),
            url: format!("{PUBLIC}/ui/releases/rel-42"),
        },
        Link {
            label: "Run".into(),
            url: format!("{PUBLIC}/ui/runs/run-7"),
        },
    ];
    notice
}

async fn send(receiver: &HttpSink, event: Event) -> backout_notify::Receipt {
    install_crypto();
    let deliverer = Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    })
    .expect("the default configuration works");
    let notice = notice(event);
    let message = render(&notice, None).expect("built-in templates render");
    let target = Target::PagerDuty {
        url: receiver.url.clone(),
        routing_key: "R0UT1NGKEY0000000000000000000000".into(),
    };
    deliverer
        .deliver(&target, &notice, &message)
        .await
        .expect("PagerDuty accepts the event")
}

fn accepted() -> Answer {
    Answer {
        body: r#"{"status":"success","message":"Event processed","dedup_key":"backout-rel-42"}"#,
        ..Answer::status(202)
    }
}

#[tokio::test]
async fn a_release_triggers_then_resolves_one_alert_with_links_to_the_ui() {
    let receiver = HttpSink::start(accepted());
    assert_eq!(
        send(&receiver, Event::RollbackRequired).await.detail,
        "HTTP 202"
    );
    send(&receiver, Event::RolledBack).await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    let trigger = requests[0].json();
    let resolve = requests[1].json();

    assert_eq!(trigger["routing_key"], "R0UT1NGKEY0000000000000000000000");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "backout-rel-42");
    let payload = &trigger["payload"];
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "backout: checkout in production");
    assert_eq!(payload["component"], "checkout");
    assert_eq!(payload["group"], "production");
    assert_eq!(payload["class"], "rollback_required");
    assert_eq!(
        payload["summary"],
        "checkout 2.4.0: a criterion tripped or a person requested a rollback"
    );
    assert!(
        payload["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(payload["custom_details"]["change_ticket"], "CHG0031415");
    assert_eq!(
        payload["custom_details"]["release"]["change_ticket"],
        "CHG0031415"
    );
    assert_eq!(trigger["client"], "backout");
    assert_eq!(
        trigger["client_url"],
        format!("{PUBLIC}/ui/releases/rel-42")
    );
    let links = trigger["links"].as_array().expect("links");
    assert_eq!(links.len(), 2);
    for link in links {
        assert!(link["href"].as_str().unwrap().starts_with(PUBLIC), "{link}");
        assert!(link["text"].is_string());
    }

    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(resolve["routing_key"], trigger["routing_key"]);
    assert!(resolve.get("payload").is_none(), "{resolve}");
}

#[tokio::test]
async fn a_run_that_starts_acknowledges_and_a_failed_step_is_an_error() {
    let receiver = HttpSink::start(accepted());
    send(&receiver, Event::Started).await;
    send(&receiver, Event::StepFailed).await;
    let requests = receiver.requests();
    assert_eq!(requests[0].json()["event_action"], "acknowledge");
    let failed = requests[1].json();
    assert_eq!(failed["event_action"], "trigger");
    assert_eq!(failed["payload"]["severity"], "error");
    assert_eq!(failed["dedup_key"], "backout-rel-42");
}

#[tokio::test]
async fn a_bad_request_gives_up_and_a_rate_limit_retries() {
    install_crypto();
    let deliverer = Deliverer::new(DeliveryConfig::default()).expect("builds");
    let notice = notice(Event::RollbackRequired);
    let message = render(&notice, None).expect("renders");
    for (status, retryable) in [(400, false), (429, true), (500, true)] {
        let receiver = HttpSink::start(Answer {
            body: r#"{"status":"invalid event","message":"Event object is invalid"}"#,
            ..Answer::status(status)
        });
        let target = Target::PagerDuty {
            url: receiver.url.clone(),
            routing_key: "key".into(),
        };
        let error = deliverer
            .deliver(&target, &notice, &message)
            .await
            .expect_err("not accepted");
        assert_eq!(error.retryable, retryable, "HTTP {status}");
        assert!(!error.message.contains("key\""), "{}", error.message);
    }
}
