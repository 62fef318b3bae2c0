//! Messages from notices: a built-in template per event, optionally replaced by the plan's
//! `communication.templates.<event>`.
//!
//! Each built-in template (`templates/<event>.txt`) renders its subject on the first line, then a
//! blank line, then the body in plain words: what happened, to which release, what to do next.
//! A plan's override replaces only the body; the subject and the HTML part are always derived
//! by this module, so an override cannot drop the "[WINDOW OVERRIDDEN]" warning or put
//! unescaped text into HTML.
//!
//! Built-in templates render undefined values as nothing (a notice lacking a part still goes
//! out). Overrides are strict: printing something the notice does not have is an error naming
//! it, and a render is limited in how much work it may do.
//!
//! The body is plain text with two conventions the HTML and Slack forms honour: lines starting
//! with `- ` are list items, and lines starting with two spaces are commands (code blocks).
//! Templates may use the `criterion` filter, which puts one criterion of a verdict in words:
//! `{{ c|criterion }}` gives `error-rate: 0.031 {route="/pay"} (threshold > 0.02)`.

use std::sync::LazyLock;

use backout_model::plan::Event;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{
    Environment, Error, ErrorKind, Output, State, UndefinedBehavior, escape_formatter,
};
use serde::Serialize;

use crate::errors::TemplateError;
use crate::notice::Notice;

/// A rendered notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// One line, for an email subject or a Slack header.
    pub subject: String,
    /// The plain-text body (with the window-override warning and the links).
    pub text: String,
    /// A complete HTML document with the same content, every value escaped.
    pub html: String,
}

/// The top-level names a template can use: the fields of [`Notice`].
pub use backout_model::template::NOTICE_FIELDS;

/// Roughly how many instructions an override may execute: plenty for a message, little enough
/// that a runaway loop fails instead of stalling the dispatcher.
const OVERRIDE_FUEL: u64 = 200_000;

/// Definitions every built-in template starts with: `what` names the release ("checkout 2.4.0"),
/// `What` too, at the start of a sentence; `where` its environment (" in production"), `to` the
/// version it goes back to (" to 2.3.9"), `rel` its id for commands.
const PRELUDE: &str = r#"{% set what = (release.service ~ " " ~ release.version) if release else (plan or "the service") %}
{% set What = what if release or plan else "The service" %}
{% set where = (" in " ~ release.environment) if release and release.environment else "" %}
{% set rel = release.id if release else "REL" %}
{% set to = (" to " ~ release.rollback_to) if release and release.rollback_to else "" %}
"#;

const HTML: &str = include_str!("../templates/message.html");

fn builtin_source(event: Event) -> &'static str {
    match event {
        Event::RollbackRequired => include_str!("../templates/rollback_required.txt"),
        Event::Inconclusive => include_str!("../templates/inconclusive.txt"),
        Event::Degrading => include_str!("../templates/degrading.txt"),
        Event::DecisionRequested => include_str!("../templates/decision_requested.txt"),
        Event::Decision => include_str!("../templates/decision.txt"),
        Event::Escalated => include_str!("../templates/escalated.txt"),
        Event::Started => include_str!("../templates/started.txt"),
        Event::ManualStepWaiting => include_str!("../templates/manual_step_waiting.txt"),
        Event::Message => include_str!("../templates/message.txt"),
        Event::StepFailed => include_str!("../templates/step_failed.txt"),
        Event::Completed => include_str!("../templates/completed.txt"),
        Event::Failed => include_str!("../templates/failed.txt"),
        Event::RolledBack => include_str!("../templates/rolled_back.txt"),
        Event::RollbackUnverified => include_str!("../templates/rollback_unverified.txt"),
        Event::BreakGlass => include_str!("../templates/break_glass.txt"),
        Event::WindowClosing => include_str!("../templates/window_closing.txt"),
        Event::WindowClosed => include_str!("../templates/window_closed.txt"),
        Event::Success => include_str!("../templates/success.txt"),
        Event::RehearsalFailed => include_str!("../templates/rehearsal_failed.txt"),
        Event::EvidenceExpiring => include_str!("../templates/evidence_expiring.txt"),
    }
}

/// The built-in templates and the HTML layout: lenient about missing parts.
static BUILTIN: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    configure(&mut env);
    for event in Event::ALL {
        env.add_template_owned(
            format!("{}.txt", event.as_str()),
            format!("{PRELUDE}{}", builtin_source(event)),
        )
        .expect("built-in templates parse (tested)");
    }
    // The `.html` name turns on HTML autoescaping for the layout.
    env.add_template("message.html", HTML)
        .expect("the HTML layout parses (tested)");
    env
});

/// Plan authors' overrides: standard Jinja syntax, strict about printing undefined values.
static OVERRIDES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(OVERRIDE_FUEL));
    // Debug mode makes an undefined-value error name the expression ("`run.duration` is
    // undefined"); release builds would otherwise only say "undefined value".
    env.set_debug(true);
    configure(&mut env);
    env
});

fn configure(env: &mut Environment<'static>) {
    env.set_formatter(format_value);
    env.add_filter("criterion", criterion);
}

/// Prints `none` (a JSON `null`) as nothing rather than "none".
fn format_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_none() {
        return Ok(());
    }
    escape_formatter(out, state, value)
}

/// The `criterion` filter: one criterion of a verdict in words, e.g.
/// `error-rate: 2.4 {route="/pay"} (threshold > 1)`.
fn criterion(c: Value) -> String {
    let name = text_of(&attr(&c, "name")).unwrap_or_else(|| "a criterion".into());
    let mut line = format!("{name}:");
    match text_of(&attr(&c, "value")) {
        Some(value) => {
            line.push(' ');
            line.push_str(&value);
            let labels = labels_of(&attr(&c, "labels"));
            if !labels.is_empty() {
                line.push_str(&format!(" {{{labels}}}"));
            }
            if let Some(threshold) = text_of(&attr(&c, "threshold")) {
                line.push_str(&format!(" (threshold {threshold})"));
            }
        }
        None => match text_of(&attr(&c, "reason")).or_else(|| text_of(&attr(&c, "status"))) {
            Some(reason) => {
                line.push(' ');
                line.push_str(&reason);
            }
            None => line.push_str(" no value"),
        },
    }
    line
}

fn attr(value: &Value, name: &str) -> Value {
    value.get_attr(name).unwrap_or(Value::UNDEFINED)
}

fn text_of(value: &Value) -> Option<String> {
    if value.is_undefined() || value.is_none() {
        return None;
    }
    let text = match value.as_str() {
        Some(s) => s.to_owned(),
        None => value.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

/// `route="/pay", code="500"` from a map of labels.
fn labels_of(labels: &Value) -> String {
    let Ok(keys) = labels.try_iter() else {
        return String::new();
    };
    keys.filter_map(|key| {
        let value = labels.get_item(&key).ok()?;
        Some(format!("{key}=\"{}\"", text_of(&value).unwrap_or_default()))
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// Renders the message of a notice: the built-in template of its event, or `template` (the plan's
/// override for the event) as the body.
///
/// An override that prints a variable the notice lacks fails with
/// [`TemplateErrorKind::Undefined`](crate::TemplateErrorKind::Undefined) naming it; the caller
/// reports that and may fall back to `render(notice, None)`.
pub fn render(notice: &Notice, template: Option<&str>) -> Result<Message, TemplateError> {
    let context = Value::from(Serde(notice));
    let builtin = BUILTIN
        .get_template(&format!("{}.txt", notice.event.as_str()))
        .and_then(|t| t.render(&context))
        .map_err(TemplateError::from_minijinja)?;
    let (subject, builtin_body) = match builtin.split_once('\n') {
        Some((subject, body)) => (subject.trim().to_owned(), body.trim().to_owned()),
        None => (builtin.trim().to_owned(), String::new()),
    };
    let mut body = match template {
        Some(source) => render_override(source, &context)?,
        None => builtin_body,
    };
    // Every message names the change ticket, so whoever reads it can find the change record.
    if let Some(ticket) = notice
        .release
        .as_ref()
        .and_then(|r| r.change_ticket.as_deref())
        .filter(|t| !t.trim().is_empty() && !body.contains(*t))
    {
        body.push_str(&format!("\n\nChange ticket: {}", one_line(ticket)));
    }

    let overridden = notice.window_overridden();
    let subject = one_line(&if overridden {
        format!("[WINDOW OVERRIDDEN] {subject}")
    } else {
        subject
    });
    let warning = overridden.then(|| override_warning(notice));
    let links: Vec<&crate::Link> = notice.links.iter().filter(|l| is_web_url(&l.url)).collect();

    let mut text = String::new();
    if let Some(warning) = &warning {
        text.push_str(warning);
        text.push_str("\n\n");
    }
    text.push_str(&body);
    if !links.is_empty() {
        text.push_str("\n\nLinks:");
        for link in &links {
            text.push_str(&format!("\n- {}: {}", link.label, link.url));
        }
    }
    text.push('\n');

    let html = page(&HtmlContext {
        subject: &subject,
        warning: warning.as_deref(),
        blocks: blocks(&body),
        links,
        event: notice.event.as_str(),
        event_id: &notice.event_id,
    })?;

    Ok(Message {
        subject,
        text,
        html,
    })
}

/// The HTML form of a message whose text no template wrote (a `notify` step's own words): the
/// layout of every built-in message, with `text`'s paragraphs, lists and commands, every value
/// escaped by the layout's autoescaping. `event` and `event_id` go in its footer, as in
/// [`render`]'s.
pub fn html_of(
    subject: &str,
    text: &str,
    event: Event,
    event_id: &str,
) -> Result<String, TemplateError> {
    page(&HtmlContext {
        subject,
        warning: None,
        blocks: blocks(text),
        links: Vec::new(),
        event: event.as_str(),
        event_id,
    })
}

/// The HTML layout (`message.html`, autoescaped) filled in.
fn page(context: &HtmlContext<'_>) -> Result<String, TemplateError> {
    BUILTIN
        .get_template("message.html")
        .and_then(|t| t.render(Value::from(Serde(context))))
        .map_err(TemplateError::from_minijinja)
}

/// The body a plan's override renders for `notice`, alone (no subject, warning or links): what
/// a one-line receiver shows as the notice's `summary` when the plan has its own words.
pub fn render_body(notice: &Notice, template: &str) -> Result<String, TemplateError> {
    render_override(template, &Value::from(Serde(notice)))
}

fn render_override(source: &str, context: &Value) -> Result<String, TemplateError> {
    let body = OVERRIDES
        .render_str(source, context)
        .map_err(TemplateError::from_minijinja)?;
    let body = body.trim();
    if body.is_empty() {
        return Err(TemplateError::from_minijinja(Error::new(
            ErrorKind::InvalidOperation,
            "the template renders an empty message",
        )));
    }
    Ok(body.to_owned())
}

/// Checks a plan's override without a notice, for lint: the syntax (with the line of an error)
/// and that every top-level name it uses is a field of [`Notice`] (see [`NOTICE_FIELDS`]).
/// Whether a nested name such as `run.duration` exists depends on the event, so only rendering
/// can tell.
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    backout_model::template::check(source).map_err(TemplateError::from_minijinja)
}

/// The loud line at the top of a message about an event under an overridden window.
fn override_warning(notice: &Notice) -> String {
    let actor = notice
        .decision
        .as_ref()
        .and_then(|d| d.get("actor"))
        .and_then(serde_json::Value::as_str);
    match actor {
        Some(actor) => format!(
            "WINDOW OVERRIDDEN: the rollback window had closed; {actor} overrode it to act anyway."
        ),
        None => "WINDOW OVERRIDDEN: the rollback window had closed; a decider overrode it to act \
                 anyway."
            .to_owned(),
    }
}

/// Subjects are header values: no line breaks or other control characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Only web links become links; anything else (`javascript:`, `data:`) is dropped.
pub(crate) fn is_web_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

#[derive(Serialize)]
struct HtmlContext<'a> {
    subject: &'a str,
    warning: Option<&'a str>,
    blocks: Vec<Block>,
    links: Vec<&'a crate::Link>,
    event: &'a str,
    event_id: &'a str,
}

/// A run of lines of the body of one kind, for the HTML and Slack forms.
#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct Block {
    /// `p`, `list` or `command`.
    pub(crate) kind: &'static str,
    pub(crate) lines: Vec<String>,
}

/// The blocks of a plain-text body: paragraphs are separated by blank lines, and within one,
/// lines starting with `- ` form a list and lines starting with two spaces a command.
fn blocks(body: &str) -> Vec<Block> {
    body.split("\n\n").flat_map(runs).collect()
}

/// The blocks of one paragraph.
pub(crate) fn runs(paragraph: &str) -> Vec<Block> {
    let mut runs: Vec<Block> = Vec::new();
    for line in paragraph.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, text) = if let Some(item) = line.strip_prefix("- ") {
            ("list", item)
        } else if line.starts_with("  ") {
            ("command", line.trim())
        } else {
            ("p", line)
        };
        match runs.last_mut() {
            Some(run) if run.kind == kind => run.lines.push(text.to_owned()),
            _ => runs.push(Block {
                kind,
                lines: vec![text.to_owned()],
            }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_recognise_lists_and_commands() {
        let body = "First line\nsecond line\n\n- a\n- b\n\nTo see:\n  backout status rel-1\n";
        assert_eq!(
            blocks(body),
            vec![
                Block {
                    kind: "p",
                    lines: vec!["First line".into(), "second line".into()]
                },
                Block {
                    kind: "list",
                    lines: vec!["a".into(), "b".into()]
                },
                Block {
                    kind: "p",
                    lines: vec!["To see:".into()]
                },
                Block {
                    kind: "command",
                    lines: vec!["backout status rel-1".into()]
                },
            ]
        );
    }

    #[test]
    fn criterion_filter_words() {
        let c = Value::from(Serde(serde_json::json!({
            "name": "error-rate", "status": "tripped", "value": 2.4, "threshold": "> 1",
            "labels": { "route": "/pay" }
        })));
        assert_eq!(
            criterion(c),
            "error-rate: 2.4 {route=\"/pay\"} (threshold > 1)"
        );
        let c = Value::from(Serde(
            serde_json::json!({ "name": "latency", "reason": "no data" }),
        ));
        assert_eq!(criterion(c), "latency: no data");
    }

    #[test]
    fn only_web_links_are_links() {
        assert!(is_web_url("https://example.com/x"));
        assert!(!is_web_url("javascript:alert(1)"));
    }
}
