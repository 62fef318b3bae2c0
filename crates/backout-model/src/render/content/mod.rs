//! What the rendered document says: the nine questions of a [`Plan`] answered in plain words,
//! with a header, an at-a-glance summary and the contacts, as a format-neutral [`Document`].
//!
//! Everything a reader may need at 3 a.m. is stated here once, so Markdown and HTML cannot drift.
//! Plan strings are copied exactly as written: `${VAR}` references are never resolved (this crate
//! has no environment access), and escaping is left to each output format. Lookups go through
//! maps built once, so the document stays linear in the size of the plan.
//!
//! One file per part of the document, each adding its sections as methods of [`Context`]:
//! [`header`] (header, at a glance, contacts), [`criteria`] (Q1), [`window`] (Q2), [`roles`]
//! (Q3, Q4), [`procedure`] (Q5), [`steps`] (the step table and step cards Q5 and Q6 share),
//! [`contingency`] (Q6), [`duration`] (Q7), [`communication`] (Q8) and [`testing`] (Q9). This
//! file holds the entry point, the indexes and the phrases more than one part uses.

mod communication;
mod contingency;
mod criteria;
mod duration;
mod header;
mod procedure;
mod roles;
mod steps;
mod testing;
mod window;

use std::collections::HashMap;

use super::DocumentInfo;
use super::document::{Block, Document, Section, Text, Tone};
use crate::duration::Duration;
use crate::plan::{HttpCheck, HttpRequest, Plan};
use crate::schedule::{Schedule, WorstCase};

/// How many names a summary lists before it says "and N more".
const SUMMARY_NAMES: usize = 8;

/// Builds the document for `plan`.
pub(crate) fn document<'a>(
    plan: &'a Plan,
    info: &'a DocumentInfo,
    schedule: &'a Schedule,
    worst: Option<&'a WorstCase>,
) -> Document<'a> {
    let context = Context::new(plan, info, schedule, worst);
    let mut blocks = context.header();
    blocks.push(Block::Section(context.at_a_glance()));
    blocks.push(Block::Section(context.contacts()));
    blocks.push(Block::Section(context.q1_criteria()));
    blocks.push(Block::Section(context.q2_window()));
    blocks.push(Block::Section(context.q3_authorization()));
    blocks.push(Block::Section(context.q4_execution()));
    blocks.push(Block::Section(context.q5_procedure()));
    blocks.push(Block::Section(context.q6_contingency()));
    blocks.push(Block::Section(context.q7_duration()));
    blocks.push(Block::Section(context.q8_communication()));
    blocks.push(Block::Section(context.q9_testing()));
    let r = &plan.release;
    Document {
        title: format!(
            "Backout plan: {} {} → {} ({})",
            r.service, r.version, r.rollback_to, r.environment
        ),
        blocks,
        footer: format!(
            "Rendered by backout from {}, plan content hash {}. References like ${{NAME}} are shown as \
             written and never resolved in this document.",
            info.source_name, info.content_hash
        ),
        cards: Box::new(context),
    }
}

/// The plan plus the indexes every section needs.
struct Context<'a> {
    plan: &'a Plan,
    /// The ideal schedule of the procedure's steps.
    schedule: &'a Schedule,
    /// The procedure's worst case (timeouts, retries, contingency branches), when it has one.
    worst: Option<&'a WorstCase>,
    info: &'a DocumentInfo,
    groups: HashMap<&'a str, &'a [String]>,
    /// Criterion id → position in `rollback_when`.
    criteria: HashMap<&'a str, usize>,
    /// Contingency id → position.
    contingencies: HashMap<&'a str, usize>,
}

impl<'a> Context<'a> {
    fn new(
        plan: &'a Plan,
        info: &'a DocumentInfo,
        schedule: &'a Schedule,
        worst: Option<&'a WorstCase>,
    ) -> Context<'a> {
        let groups = plan
            .people
            .iter()
            .map(|g| (g.name.as_str(), g.members.as_slice()))
            .collect();
        let criteria = plan
            .criteria
            .given()
            .map(|c| {
                c.rollback_when
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.id.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let contingencies = plan
            .contingency
            .given()
            .map(|c| {
                c.iter()
                    .enumerate()
                    .map(|(i, c)| (c.id.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        Context {
            plan,
            schedule,
            worst,
            info,
            groups,
            criteria,
            contingencies,
        }
    }

    // ----- shared phrases -------------------------------------------------------------------

    /// `group` (member, member).
    fn group(&self, name: &'a str) -> Text<'a> {
        let text = Text::new().code(name);
        match self.groups.get(name) {
            Some(members) if !members.is_empty() => {
                text.plain(format!(" ({})", members.join(", ")))
            }
            _ => text.plain(" (nobody listed)"),
        }
    }

    /// A criterion id, linked to its description when the plan has it.
    fn criterion_ref(&self, id: &'a str) -> Text<'a> {
        match self.criteria.get(id) {
            Some(i) => Text::new().reference(criterion_anchor(*i), id),
            None => Text::new().code(id),
        }
    }

    fn criteria_refs(&self, ids: impl IntoIterator<Item = &'a String>) -> Text<'a> {
        Text::join(ids, ", ", |id| self.criterion_ref(id))
    }

    fn contingency_ref(&self, id: &'a str) -> Text<'a> {
        match self.contingencies.get(id) {
            Some(i) => Text::new().reference(contingency_anchor(*i), id),
            None => Text::new().code(id),
        }
    }

    fn performers(&self) -> Option<&'a str> {
        self.plan.execution.given().map(|e| e.performers.as_str())
    }
}

// ----- shared helpers ---------------------------------------------------------------------------

fn section<'a>(level: u8, anchor: &str, title: &'static str, body: Vec<Block<'a>>) -> Section<'a> {
    Section {
        level,
        anchor: anchor.to_string(),
        title: Text::from(title),
        card: false,
        critical: false,
        body,
    }
}

/// "passes" for one criterion, "pass" for several.
fn pass_verb(n: usize) -> &'static str {
    if n == 1 { "passes" } else { "pass" }
}

fn not_applicable_text(reason: &str) -> Text<'_> {
    Text::new()
        .strong("Not applicable:")
        .plain(" ")
        .plain(reason.trim())
}

fn not_applicable(reason: &str) -> Block<'_> {
    Block::Note(Tone::NotApplicable, not_applicable_text(reason))
}

pub(crate) fn criterion_anchor(i: usize) -> String {
    format!("criterion-{}", i + 1)
}

fn contingency_anchor(i: usize) -> String {
    format!("contingency-{}", i + 1)
}

/// "1 step", "3 steps".
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Up to [`SUMMARY_NAMES`] items, then "and N more".
fn capped<'s>(
    items: impl ExactSizeIterator<Item = &'s str>,
    each: impl FnMut(&'s str) -> Text<'s>,
) -> Text<'s> {
    let n = items.len();
    let mut t = Text::join(items.take(SUMMARY_NAMES), ", ", each);
    if n > SUMMARY_NAMES {
        t.push_plain(format!(" and {} more", n - SUMMARY_NAMES));
    }
    t
}

fn minus(a: Duration, b: Duration) -> Option<Duration> {
    a.as_millis()
        .checked_sub(b.as_millis())
        .map(Duration::from_millis)
}

fn headers(headers: &[(String, String)]) -> Text<'_> {
    Text::join(headers, ", ", |(k, v)| {
        Text::new().code(format!("{k}: {v}"))
    })
}

fn http_check(h: &HttpCheck) -> Text<'_> {
    let mut t = Text::new().code(format!("{} {}", h.method, h.url));
    if !h.headers.is_empty() {
        t = t.plain(" with headers ").append(headers(&h.headers));
    }
    if let Some(b) = &h.body {
        t = t.plain(", sending the body ").code(b.trim_end());
    }
    t.push_plain(match h.expect_status {
        Some(s) => format!(", expects status {s}"),
        None => ", expects a 2xx status".to_string(),
    });
    if let Some(b) = &h.expect_body {
        t = t.plain(" and body ").code(b);
    }
    if let Some(p) = &h.json_pointer {
        t = t.plain(", reads the JSON value at ").code(p);
    }
    t
}

fn expectation(req: &HttpRequest) -> String {
    let status = match req.expect_status {
        Some(s) => format!("status {s}"),
        None => "a 2xx status".to_string(),
    };
    match &req.expect_body {
        Some(b) => format!("{status} and the body {b:?}"),
        None => status,
    }
}

/// An argv for display, quoted the way a POSIX shell would need it. Display only: exec steps
/// never go through a shell.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case(&["./bin/x", "checkout", "2.13.4"], "./bin/x checkout 2.13.4")]
    #[test_case(&["echo", "it's here", ""], r"echo 'it'\''s here' ''")]
    fn argv_is_quoted_for_display(argv: &[&str], expected: &str) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), expected);
    }
}
