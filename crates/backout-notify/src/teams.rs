//! Microsoft Teams deliveries: an Adaptive Card (version 1.4) posted to an incoming webhook (a
//! Teams "Workflows" webhook or a legacy connector URL; both take this `message` with one
//! `application/vnd.microsoft.card.adaptive` attachment).
//!
//! The card has the subject as its title, the window-override warning in red when there is
//! one, the message text, a fact set (service, version, rollback to, environment, change
//! ticket, run, event) and one `Action.OpenUrl` button per link. Sent and judged like a
//! webhook; Teams takes no idempotency key, so a retry after a timeout may post twice.

use reqwest::Client;
use serde_json::{Value, json};

use crate::errors::DeliveryError;
use crate::templates::is_web_url;
use crate::webhook::post_json;
use crate::{Message, Notice, Receipt};

/// Teams rejects cards over about 28 KB; the text is cut well below that.
const TEXT_MAX: usize = 12_000;

pub(crate) async fn deliver(
    client: &Client,
    url: &str,
    notice: &Notice,
    message: &Message,
) -> Result<Receipt, DeliveryError> {
    let body = serde_json::to_vec(&payload(notice, message)).expect("JSON values serialize");
    post_json(client, url, &notice.event_id, body, &[]).await
}

/// The incoming-webhook JSON.
pub(crate) fn payload(notice: &Notice, message: &Message) -> Value {
    // The links become buttons; the text's own list of them would repeat them.
    let mut text = message.text.trim_end();
    if !notice.links.is_empty()
        && let Some(at) = text.rfind("\n\nLinks:")
    {
        text = &text[..at];
    }
    let mut paragraphs: Vec<&str> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .collect();
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": message.subject,
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    })];
    if notice.window_overridden() && !paragraphs.is_empty() {
        let warning = paragraphs.remove(0);
        body.push(json!({
            "type": "TextBlock", "text": warning.trim(), "color": "Attention",
            "weight": "Bolder", "wrap": true,
        }));
    }
    let text = paragraphs.join("\n\n");
    if !text.is_empty() {
        body.push(json!({ "type": "TextBlock", "text": cut(&text, TEXT_MAX), "wrap": true }));
    }
    let mut facts = Vec::new();
    let mut fact = |title: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            facts.push(json!({ "title": title, "value": value }));
        }
    };
    let release = notice.release.as_ref();
    fact("Service", release.map(|r| r.service.as_str()));
    fact("Version", release.map(|r| r.version.as_str()));
    fact(
        "Rollback to",
        release.and_then(|r| r.rollback_to.as_deref()),
    );
    fact(
        "Environment",
        release.and_then(|r| r.environment.as_deref()),
    );
    fact("Change ticket", notice.change_ticket());
    fact(
        "Run",
        notice
            .run
            .as_ref()
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str),
    );
    fact("Event", Some(notice.event.as_str()));
    body.push(json!({ "type": "FactSet", "facts": facts }));
    let actions: Vec<Value> = notice
        .links
        .iter()
        .filter(|l| is_web_url(&l.url))
        .map(|l| json!({ "type": "Action.OpenUrl", "title": l.label, "url": l.url }))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": { "width": "Full" },
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "summary": message.subject,
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
