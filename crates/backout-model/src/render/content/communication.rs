//! Q8, the communication required: the channels, which events are announced on which channel,
//! and the message templates.

use std::collections::HashMap;

use super::{Context, not_applicable, section};
use crate::plan::{Answer, ChannelKind, Event};
use crate::render::document::{Block, Row, Section, Str, Table, Text};

impl<'a> Context<'a> {
    pub(super) fn q8_communication(&self) -> Section<'a> {
        let title = "Q8. What communication is required?";
        let c = match &self.plan.communication {
            Answer::Given(c) => c,
            Answer::NotApplicable(r) => return section(2, "q8", title, vec![not_applicable(r)]),
        };
        let mut body = Vec::new();
        if c.channels.is_empty() {
            body.push(Block::Paragraph(Text::from("No channels are defined.")));
        } else {
            body.push(Block::Table(Table {
                head: vec![
                    "Channel".into(),
                    "Kind".into(),
                    "Target (as written)".into(),
                ],
                rows: c
                    .channels
                    .iter()
                    .map(|ch| {
                        let (kind, target) = match &ch.kind {
                            ChannelKind::Webhook(u) if ch.secret.is_some() => (
                                "webhook (JSON POST, HMAC-SHA256 signed)",
                                Text::new().code(u),
                            ),
                            ChannelKind::Webhook(u) => ("webhook (JSON POST)", Text::new().code(u)),
                            ChannelKind::PagerDuty { routing_key, .. } => (
                                "PagerDuty Events API v2 (one incident per release)",
                                Text::new().code(routing_key),
                            ),
                            ChannelKind::Teams(u) => {
                                ("Microsoft Teams incoming webhook", Text::new().code(u))
                            }
                            ChannelKind::Slack(u) => {
                                ("Slack incoming webhook", Text::new().code(u))
                            }
                            ChannelKind::Email(to) => (
                                "email (SMTP server from $BACKOUT_SMTP_URL)",
                                Text::join(to, ", ", |a| Text::from(a.as_str())),
                            ),
                            ChannelKind::Command(cmd) => {
                                ("command (event JSON on stdin)", Text::new().code(cmd))
                            }
                        };
                        Row {
                            cells: vec![Text::new().code(&ch.name), Text::from(kind), target],
                            critical: false,
                        }
                    })
                    .collect(),
            }));
            body.push(Block::Paragraph(
                Text::from("Targets are shown as written: ")
                    .code("${NAME}")
                    .plain(" references are resolved only when a message is sent."),
            ));
        }
        // Event × channel matrix, rows in the order of Event::ALL.
        let routes: HashMap<Event, &Vec<String>> =
            c.notify.iter().map(|(e, chs)| (*e, chs)).collect();
        let column: HashMap<&str, usize> = c
            .channels
            .iter()
            .enumerate()
            .map(|(i, ch)| (ch.name.as_str(), i))
            .collect();
        let mut head: Vec<Str<'a>> = vec!["Event".into(), "When".into()];
        head.extend(c.channels.iter().map(|ch| Str::from(ch.name.as_str())));
        let mut silent = Vec::new();
        // The drill events (scheduled rehearsals, expiring evidence) show only when routed:
        // most plans never schedule rehearsals, and their matrix need not grow for it.
        let rows = Event::ALL
            .iter()
            .filter(|e| {
                !matches!(e, Event::RehearsalFailed | Event::EvidenceExpiring)
                    || routes.contains_key(*e)
            })
            .map(|e| {
                let mut marks = vec![Text::new(); c.channels.len()];
                let mut any = false;
                if let Some(chs) = routes.get(e) {
                    for ch in chs.iter() {
                        if let Some(i) = column.get(ch.as_str()) {
                            marks[*i] = Text::from("✓");
                            any = true;
                        }
                    }
                }
                if !any {
                    silent.push(e.as_str());
                }
                let mut cells = vec![Text::new().code(e.as_str()), Text::from(e.describe())];
                cells.extend(marks);
                Row {
                    cells,
                    critical: false,
                }
            })
            .collect();
        body.push(Block::Section(section(
            3,
            "q8-matrix",
            "Who hears about what",
            vec![Block::Table(Table { head, rows })],
        )));
        if !silent.is_empty() {
            body.push(Block::Paragraph(
                Text::from("Not announced anywhere: ")
                    .append(Text::join(silent, ", ", |e| Text::new().code(e)))
                    .plain("."),
            ));
        }
        let mut templates = Vec::new();
        if c.templates.is_empty() {
            templates.push(Block::Paragraph(Text::from(
                "Every event uses the default message.",
            )));
        } else {
            for (event, text) in &c.templates {
                templates.push(Block::Paragraph(
                    Text::new().code(event.as_str()).plain(":"),
                ));
                templates.push(Block::Code(text.as_str().into()));
            }
            templates.push(Block::Paragraph(Text::from(
                "Other events use the default message.",
            )));
        }
        body.push(Block::Section(section(
            3,
            "q8-templates",
            "Message templates",
            templates,
        )));
        section(2, "q8", title, body)
    }
}
