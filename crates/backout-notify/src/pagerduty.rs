//! PagerDuty deliveries: one alert per release through the Events API v2
//! (`POST https://events.pagerduty.com/v2/enqueue`).
//!
//! Every event of a release carries the same `dedup_key` (`backout-<release id>`), so PagerDuty
//! keeps one alert per release: events that need someone open it (`trigger`), a backout run that
//! starts or a decision acknowledges it, and the end of the story resolves it.
//!
//! | event | action | severity |
//! |---|---|---|
//! | rollback_required, escalated, failed, rollback_unverified, break_glass | trigger | critical |
//! | step_failed | trigger | error |
//! | decision_requested, manual_step_waiting, inconclusive, degrading, window_closing, window_closed, message | trigger | warning |
//! | started, decision | acknowledge | |
//! | rolled_back, completed, success | resolve | |
//!
//! A trigger carries `payload.summary` (the notice's one line), `source`, `severity`,
//! `timestamp`, `component` (the service), `group` (the environment), `class` (the event),
//! `custom_details` (the notice as webhooks get it, change ticket included) and the notice's
//! links. A repeated delivery after a timeout is harmless: PagerDuty folds events with the same
//! `dedup_key` into the open alert. 202 is delivered; 400 gives up; 429 and 5xx are retried.

use backout_model::plan::Event;
use reqwest::Client;
use serde_json::{Value, json};

use crate::errors::DeliveryError;
use crate::templates::is_web_url;
use crate::webhook::post_json;
use crate::{Message, Notice, Receipt};

/// PagerDuty's limits: summary 1024 characters, dedup_key 255.
const SUMMARY_MAX: usize = 1024;
const DEDUP_MAX: usize = 255;

pub(crate) async fn deliver(
    client: &Client,
    url: &str,
    routing_key: &str,
    notice: &Notice,
    message: &Message,
) -> Result<Receipt, DeliveryError> {
    if routing_key.trim().is_empty() {
        return Err(DeliveryError::permanent(
            "the PagerDuty routing key is empty (check the variable the channel names)",
        ));
    }
    let body = serde_json::to_vec(&payload(notice, message, routing_key)).expect("JSON serializes");
    post_json(client, url, &notice.event_id, body, &[]).await
}

/// `trigger`, `acknowledge` or `resolve`, and the severity of a trigger.
pub fn action(event: Event) -> (&'static str, &'static str) {
    match event {
        Event::RollbackRequired
        | Event::Escalated
        | Event::Failed
        | Event::RollbackUnverified
        | Event::BreakGlass => ("trigger", "critical"),
        Event::StepFailed | Event::RehearsalFailed => ("trigger", "error"),
        Event::DecisionRequested
        | Event::ManualStepWaiting
        | Event::Inconclusive
        | Event::Degrading
        | Event::WindowClosing
        | Event::WindowClosed
        | Event::EvidenceExpiring
        | Event::Message => ("trigger", "warning"),
        Event::Started | Event::Decision => ("acknowledge", "info"),
        Event::RolledBack | Event::Completed | Event::Success => ("resolve", "info"),
    }
}

/// One alert per release: `backout-<release id>`; an event outside a release (break glass)
/// is its run's alert, or its own.
pub fn dedup_key(notice: &Notice) -> String {
    let id = match (&notice.release, &notice.run) {
        (Some(release), _) => release.id.clone(),
        (None, Some(run)) => run
            .get("id")
            .and_then(Value::as_str)
            .map(|id| format!("run-{id}"))
            .unwrap_or_else(|| notice.event_id.clone()),
        (None, None) => notice.event_id.clone(),
    };
    cut(&format!("backout-{id}"), DEDUP_MAX)
}

/// The Events API v2 body.
pub(crate) fn payload(notice: &Notice, message: &Message, routing_key: &str) -> Value {
    let (event_action, severity) = action(notice.event);
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": event_action,
        "dedup_key": dedup_key(notice),
    });
    let links: Vec<Value> = notice
        .links
        .iter()
        .filter(|l| is_web_url(&l.url))
        .map(|l| json!({ "href": l.url, "text": l.label }))
        .collect();
    if event_action == "trigger" {
        let summary = if notice.summary.trim().is_empty() {
            &message.subject
        } else {
            &notice.summary
        };
        let release = notice.release.as_ref();
        let service = release.map_or("backout", |r| r.service.as_str());
        let mut source = format!("backout: {service}");
        if let Some(env) = release.and_then(|r| r.environment.as_deref()) {
            source.push_str(&format!(" in {env}"));
        }
        let mut details = serde_json::to_value(notice).expect("a notice serializes");
        if let Some(map) = details.as_object_mut() {
            map.remove("links");
            if let Some(ticket) = notice.change_ticket() {
                map.insert("change_ticket".into(), json!(ticket));
            }
        }
        let mut inner = json!({
            "summary": cut(summary, SUMMARY_MAX),
            "source": source,
            "severity": severity,
            "timestamp": notice.at,
            "component": service,
            "class": notice.event.as_str(),
            "custom_details": details,
        });
        if let Some(env) = release.and_then(|r| r.environment.as_deref()) {
            inner["group"] = json!(env);
        }
        body["payload"] = inner;
        body["client"] = json!("backout");
        if let Some(first) = links.first() {
            body["client_url"] = first["href"].clone();
        }
    }
    if !links.is_empty() {
        body["links"] = Value::Array(links);
    }
    body
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_an_action() {
        for event in Event::ALL {
            let (action, severity) = action(event);
            assert!(["trigger", "acknowledge", "resolve"].contains(&action));
            assert!(["critical", "error", "warning", "info"].contains(&severity));
        }
        assert_eq!(action(Event::RollbackRequired).0, "trigger");
        assert_eq!(action(Event::RolledBack).0, "resolve");
    }

    #[test]
    fn dedup_keys_are_per_release_and_bounded() {
        let mut notice = Notice::new(
            Event::RollbackRequired,
            "evt-1",
            "2026-01-01T00:00:00Z",
            "x",
        );
        assert_eq!(dedup_key(&notice), "backout-evt-1");
        notice.release = Some(crate::ReleaseInfo {
            id: "r".repeat(400),
            ..Default::default()
        });
        assert_eq!(dedup_key(&notice).chars().count(), DEDUP_MAX);
    }
}
