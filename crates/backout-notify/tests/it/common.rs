//! Shared pieces of the tests: notices to send. The receivers (a real HTTP server, a real SMTP
//! server) come from `backout-testkit`, the one copy every crate's tests share.

use backout_model::plan::Event;
use backout_notify::{Link, Notice, ReleaseInfo, WindowInfo};
use serde_json::json;

pub use backout_testkit::{Answer, HttpSink, install_crypto, refused_url};

/// A notice with every part filled in, shaped as the module documentation of `notice` describes.
pub fn full_notice(event: Event) -> Notice {
    let mut notice = Notice::new(
        event,
        "rel-42.17",
        "2026-11-03T14:05:09Z",
        format!("checkout 2.4.0: {}", event.describe()),
    );
    notice.release = Some(ReleaseInfo {
        id: "rel-42".into(),
        service: "checkout".into(),
        version: "2.4.0".into(),
        rollback_to: Some("2.3.9".into()),
        environment: Some("production".into()),
        plan_hash: Some("b3f1c2".into()),
        change_ticket: None,
        window: Some(WindowInfo {
            closes_at: "2026-11-03T18:00:00Z".into(),
            closed: matches!(event, Event::WindowClosed),
            overridden: false,
            after_close: Some("roll forward with a fix; page the checkout team".into()),
        }),
    });
    notice.plan = Some("checkout".into());
    notice.verdict = Some(json!({
        "verdict": match event {
            Event::Inconclusive => "inconclusive",
            Event::Success => "success",
            _ => "rollback_required",
        },
        "criteria": if event == Event::Success {
            json!([
                { "name": "error-rate", "status": "passing", "value": "0.004", "threshold": "> 0.02" },
                { "name": "p99-latency", "status": "passing", "value": "0.41", "threshold": "> 0.8" },
            ])
        } else {
            json!([
                { "name": "error-rate", "status": "tripped", "value": "0.031", "threshold": "> 0.02",
                  "labels": { "route": "/pay" } },
                { "name": "p99-latency", "status": "passing", "value": "0.41", "threshold": "> 0.8" },
                { "name": "orders-per-minute", "status": "inconclusive", "reason": "no data" },
            ])
        },
    }));
    notice.decision = Some(json!({
        "actor": "bob", "decision": "approve", "reason": "error rate climbing on /pay",
        "override_window": false,
    }));
    notice.run = Some(json!({
        "id": "run-7", "state": "running", "duration": "4m 12s",
        "steps": { "total": 6, "done": 4, "failed": 1 },
        "step": { "id": "drain-traffic", "error": "exit 1: no such deployment",
                  "performers": ["oncall"], "instructions": "Drain the EU pool in the console." },
    }));
    notice.deciders = vec!["alice".into(), "sre-leads".into()];
    notice.links = vec![Link {
        label: "release".into(),
        url: "https://backout.example.com/releases/rel-42".into(),
    }];
    notice
}
