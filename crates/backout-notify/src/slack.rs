//! Slack deliveries: an incoming-webhook message with a header, the text as `mrkdwn` sections
//! and a context line naming the event, sent and judged like a webhook.
//!
//! Slack requires `&`, `<` and `>` in `mrkdwn` text to be escaped (they would otherwise start
//! links and mentions); every piece of text here is escaped, so a reason like
//! `<!channel>` cannot ping anyone. Indented command lines become code blocks.
//!
//! Retries: Slack's incoming webhooks accept no idempotency key (the `Idempotency-Key` header
//! is sent and ignored), so a post that Slack accepted but whose answer timed out is posted
//! again by the retry. The dispatcher prefers a possible duplicate to a lost message; only a
//! timeout or a 5xx/408/429 is retried, and Slack's 4xx answers (`invalid_payload`,
//! `no_service`) give up at once.

use reqwest::Client;
use serde_json::{Value, json};

use crate::errors::DeliveryError;
use crate::templates::runs;
use crate::webhook::post_json;
use crate::{Message, Notice, Receipt};

/// Slack's limits: a header's text, a section's text, and the `text` fallback we send.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FALLBACK_MAX: usize = 3000;
/// Slack allows 50 blocks; the header, the warning and the context take three.
const SECTIONS_MAX: usize = 40;

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
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&message.subject, HEADER_MAX), "emoji": true },
    })];
    let mut paragraphs: Vec<&str> = message
        .text
        .split("\n\n")
        .map(str::trim_end)
        .filter(|p| !p.trim().is_empty())
        .collect();
    if notice.window_overridden() && !paragraphs.is_empty() {
        // The first paragraph is the override warning (see `templates::render`).
        let warning = paragraphs.remove(0);
        blocks.push(section(format!(
            ":rotating_light: *{}*",
            escape(warning.trim())
        )));
    }
    let mut current = String::new();
    let mut sections = Vec::new();
    for paragraph in paragraphs {
        let piece = mrkdwn_paragraph(paragraph);
        if !current.is_empty() && current.len() + 2 + piece.len() > SECTION_MAX {
            sections.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(&piece);
    }
    if !current.is_empty() {
        sections.push(current);
    }
    for text in sections.into_iter().take(SECTIONS_MAX) {
        blocks.push(section(cut(&text, SECTION_MAX)));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("backout · {} · event `{}`", notice.event.as_str(), escape(&notice.event_id)),
        }],
    }));
    let fallback = escape(&format!("{}\n\n{}", message.subject, message.text));
    json!({ "text": cut(&fallback, FALLBACK_MAX), "blocks": blocks })
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

/// One paragraph of the plain text as `mrkdwn`: command lines as a code block, anything else
/// escaped as it is.
fn mrkdwn_paragraph(paragraph: &str) -> String {
    runs(paragraph)
        .into_iter()
        .map(|run| {
            let lines: Vec<String> = run.lines.iter().map(|l| escape(l)).collect();
            match run.kind {
                "command" => format!("```{}```", lines.join("\n")),
                "list" => lines
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => lines.join("\n"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Slack's escaping for text: only these three characters.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text.chars().count() > max => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_three_characters() {
        assert_eq!(
            escape("a & b <!channel> > c"),
            "a &amp; b &lt;!channel&gt; &gt; c"
        );
    }

    #[test]
    fn cuts_long_text() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
        assert_eq!(cut("ééééé", 3).chars().count(), 3);
    }

    #[test]
    fn commands_become_code_blocks() {
        assert_eq!(
            mrkdwn_paragraph("  backout decide rel-1 approve --reason \"<why>\""),
            "```backout decide rel-1 approve --reason \"&lt;why&gt;\"```"
        );
        assert_eq!(
            mrkdwn_paragraph("To see:\n  backout status rel-1\n- a & b"),
            "To see:\n```backout status rel-1```\n- a &amp; b"
        );
    }
}
