//! What the rendered document says: the nine questions of a [`Plan`] answered in plain words,
//! with a header, an at-a-glance summary and the contacts, as a format-neutral [`Document`].
//!
//! Everything a reader may need at 3 a.m. is stated here once, so Markdown and HTML cannot drift.
//! Plan strings are copied exactly as written: `${VAR}` references are never resolved (this crate
//! has no environment access), and escaping is left to each output format. Lookups go through
//! maps built once, so the document stays linear in the size of the plan.

use std::collections::HashMap;

use super::DocumentInfo;
use super::document::{
    Block, CardSource, Document, Row, Section, StepCards, Str, Table, Text, Tone,
};
use crate::duration::Duration;
use crate::plan::{
    Action, Answer, ChannelKind, Check, Criterion, Event, HttpCheck, HttpRequest, NoData,
    OnFailure, Plan, Source, Step, StepKind, Verify, Wait,
};
use crate::schedule::Schedule;

/// How many names a summary lists before it says "and N more".
const SUMMARY_NAMES: usize = 8;

/// Builds the document for `plan`.
pub(crate) fn document<'a>(
    plan: &'a Plan,
    info: &'a DocumentInfo,
    schedule: &'a Schedule,
) -> Document<'a> {
    let context = Context::new(plan, info, schedule);
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
    info: &'a DocumentInfo,
    groups: HashMap<&'a str, &'a [String]>,
    /// Criterion id → position in `rollback_when`.
    criteria: HashMap<&'a str, usize>,
    /// Contingency id → position.
    contingencies: HashMap<&'a str, usize>,
}

impl<'a> Context<'a> {
    fn new(plan: &'a Plan, info: &'a DocumentInfo, schedule: &'a Schedule) -> Context<'a> {
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

    fn tested_line(&self) -> (Tone, Text<'a>) {
        let hash = short_hash(&self.info.content_hash);
        match &self.info.rehearsal {
            Some(r) => (
                Tone::Good,
                Text::new().strong("Tested: yes").plain(format!(
                    " — rehearsed in {} on {} by {}, took {} (plan hash ",
                    r.environment, r.at, r.by, r.took
                ))
                .code(hash)
                .plain(")."),
            ),
            None => (
                Tone::Warning,
                Text::new()
                    .strong("Tested: no")
                    .plain(" — no successful rehearsal of this version of the plan is on record (plan hash ")
                    .code(hash)
                    .plain(")."),
            ),
        }
    }

    // ----- header, summary, contacts --------------------------------------------------------

    fn header(&self) -> Vec<Block<'a>> {
        let r = &self.plan.release;
        let o = &self.plan.owners;
        let mut fields = vec![
            ("Service".into(), Text::new().strong(&r.service)),
            (
                "Release".into(),
                Text::new()
                    .code(&r.version)
                    .plain(" → rolls back to ")
                    .code(&r.rollback_to),
            ),
            ("Environment".into(), Text::from(r.environment.as_str())),
            (
                "Change ticket".into(),
                match &r.change_ticket {
                    Some(t) => Text::new().code(t),
                    None => Text::from("none given"),
                },
            ),
            (
                "Deployment engineer".into(),
                Text::from(o.deployment_engineer.as_str()),
            ),
        ];
        if !o.authors.is_empty() {
            fields.push(("Authors".into(), Text::from(o.authors.join(", "))));
        }
        if !r.checkpoints.is_empty() {
            fields.push(("Checkpoints".into(), self.checkpoint_chain()));
        }
        fields.push((
            "Plan".into(),
            Text::new()
                .code(&self.info.source_name)
                .plain(", content hash ")
                .code(&self.info.content_hash),
        ));
        let mut blocks = Vec::new();
        if let Some(d) = &self.plan.description {
            blocks.push(Block::Prose(d.as_str().into()));
        }
        blocks.push(Block::Fields(fields));
        let (tone, tested) = self.tested_line();
        blocks.push(Block::Note(tone, tested));
        blocks
    }

    /// The forward deployment's checkpoints in order, the point of no return marked.
    fn checkpoint_chain(&self) -> Text<'a> {
        let no_return = self
            .plan
            .window
            .given()
            .and_then(|w| w.closes_at_checkpoint.as_deref());
        Text::join(&self.plan.release.checkpoints, " → ", |c| {
            let t = Text::new().code(c);
            if Some(c.as_str()) == no_return {
                t.plain(" (point of no return)")
            } else {
                t
            }
        })
    }

    fn at_a_glance(&self) -> Section<'a> {
        let p = self.plan;
        let mut rows = Vec::new();
        let mut row = |anchor: &'static str, question: &'static str, answer: Text<'a>| {
            rows.push(Row {
                cells: vec![Text::new().link(anchor, question), answer],
                critical: false,
            });
        };
        row(
            "q1",
            "Q1 Roll back when?",
            match &p.criteria {
                Answer::Given(c) => {
                    let automatic = c.rollback_when.iter().filter(|c| c.automatic).count();
                    let mut t = Text::new()
                        .plain(match c.rollback_when.len() {
                            1 => "when this criterion trips: ".to_string(),
                            n => format!("when any of {n} criteria trips: "),
                        })
                        .append(capped(
                            c.rollback_when.iter().map(|c| c.id.as_str()),
                            |id| Text::new().code(id),
                        ));
                    if automatic > 0 {
                        let verb = if automatic == 1 { "rolls" } else { "roll" };
                        t.push_plain(format!(" ({automatic} {verb} back automatically)"));
                    }
                    t
                }
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row(
            "q2",
            "Q2 Window",
            match &p.window {
                Answer::Given(w) => {
                    let t = Text::new().plain(format!("until {} after the deploy", w.closes_after));
                    match &w.closes_at_checkpoint {
                        Some(c) => t
                            .plain(", or until checkpoint ")
                            .code(c)
                            .plain(" (point of no return)"),
                        None => t,
                    }
                }
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row(
            "q3",
            "Q3 Who decides?",
            match &p.authorization {
                Answer::Given(a) => {
                    let t = self.group(&a.deciders).plain(format!(
                        ", {}",
                        plural(a.quorum as usize, "approval", "approvals")
                    ));
                    match &a.fallback {
                        Some(f) => t.plain(format!("; after {}: ", f.after)).code(&f.deciders),
                        None => t,
                    }
                }
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row(
            "q4",
            "Q4 Who performs?",
            match &p.execution {
                Answer::Given(e) => {
                    let t = self.group(&e.performers);
                    match e.start_within {
                        Some(d) => t.plain(format!(", starting within {d} of the approval")),
                        None => t.plain(", no start deadline"),
                    }
                }
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row(
            "q5",
            "Q5 Procedure",
            match &p.procedure {
                Answer::Given(proc) => {
                    let manual = proc
                        .steps
                        .iter()
                        .filter(|s| matches!(s.kind, StepKind::Manual { .. }))
                        .count();
                    Text::from(format!(
                        "{} ({} by hand), {}",
                        plural(proc.steps.len(), "step", "steps"),
                        manual,
                        plural(proc.preconditions.len(), "precondition", "preconditions")
                    ))
                }
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row("q6", "Q6 Contingency, workarounds", {
            let branches = match &p.contingency {
                Answer::Given(c) => plural(c.len(), "contingency branch", "contingency branches"),
                Answer::NotApplicable(_) => "no contingency branches (not applicable)".to_string(),
            };
            let workarounds = match &p.workarounds {
                Answer::Given(w) if w.is_empty() => "no workarounds".to_string(),
                Answer::Given(w) => plural(w.len(), "workaround", "workarounds"),
                Answer::NotApplicable(_) => "no workarounds (not applicable)".to_string(),
            };
            Text::from(format!("{branches}; {workarounds}"))
        });
        row(
            "q7",
            "Q7 How long?",
            match (&p.expected_duration, &p.procedure) {
                (Answer::Given(d), Answer::Given(_)) => Text::from(format!(
                    "expected {d}; critical path {}",
                    self.schedule.total
                )),
                (Answer::Given(d), Answer::NotApplicable(_)) => Text::from(format!("expected {d}")),
                (Answer::NotApplicable(r), _) => not_applicable_text(r),
            },
        );
        row(
            "q8",
            "Q8 Communication",
            match &p.communication {
                Answer::Given(c) => Text::new()
                    .plain(format!(
                        "{}: ",
                        plural(c.channels.len(), "channel", "channels")
                    ))
                    .append(capped(c.channels.iter().map(|c| c.name.as_str()), |n| {
                        Text::new().code(n)
                    })),
                Answer::NotApplicable(r) => not_applicable_text(r),
            },
        );
        row(
            "q9",
            "Q9 Tested?",
            match &self.info.rehearsal {
                Some(r) => Text::from(format!("yes — in {} on {}", r.environment, r.at)),
                None => match &p.testing {
                    Answer::Given(t) => Text::from(format!(
                        "no rehearsal on record (rehearse in {})",
                        t.rehearse_in
                    )),
                    Answer::NotApplicable(r) => {
                        Text::from("no rehearsal on record; ").append(not_applicable_text(r))
                    }
                },
            },
        );
        section(
            2,
            "glance",
            "At a glance",
            vec![Block::Table(Table {
                head: vec!["Question".into(), "Answer".into()],
                rows,
            })],
        )
    }

    fn contacts(&self) -> Section<'a> {
        let p = self.plan;
        let mut roles: HashMap<&str, Vec<Text>> = HashMap::new();
        if let Answer::Given(a) = &p.authorization {
            roles
                .entry(&a.deciders)
                .or_default()
                .push(Text::new().link("q3", "decides"));
            if let Some(f) = &a.fallback {
                roles.entry(&f.deciders).or_default().push(
                    Text::new().link("q3", "fallback deciders").plain(format!(
                        " (asked when no decision arrives within {})",
                        f.after
                    )),
                );
            }
        }
        if let Some(performers) = self.performers() {
            roles
                .entry(performers)
                .or_default()
                .push(Text::new().link("q4", "performs the steps"));
        }
        let mut manual: HashMap<&str, Vec<&str>> = HashMap::new();
        for step in all_steps(p) {
            if let StepKind::Manual { by, .. } = &step.kind {
                manual.entry(by).or_default().push(&step.id);
            }
        }
        let rows = p
            .people
            .iter()
            .map(|g| {
                let mut role = roles.remove(g.name.as_str()).unwrap_or_default();
                if let Some(steps) = manual.get(g.name.as_str()) {
                    role.push(
                        Text::from("does by hand: ")
                            .append(capped(steps.iter().copied(), |s| Text::new().code(s))),
                    );
                }
                let role = if role.is_empty() {
                    Text::from("—")
                } else {
                    Text::join(role, "; ", |t| t)
                };
                Row {
                    cells: vec![
                        Text::new().code(&g.name),
                        Text::from(g.members.join(", ")),
                        role,
                    ],
                    critical: false,
                }
            })
            .collect();
        let o = &p.owners;
        let mut body = vec![Block::Paragraph(
            Text::from("Deployment engineer (responsible for this plan): ")
                .plain(&o.deployment_engineer)
                .plain(if o.authors.is_empty() {
                    String::from(".")
                } else {
                    format!("; authors: {}.", o.authors.join(", "))
                }),
        )];
        if p.people.is_empty() {
            body.push(Block::Paragraph(Text::from(
                "The plan names no people groups.",
            )));
        } else {
            body.push(Block::Table(Table {
                head: vec!["Group".into(), "Members".into(), "Role in this plan".into()],
                rows,
            }));
        }
        section(2, "contacts", "Contacts", body)
    }

    // ----- Q1 ---------------------------------------------------------------------------------

    fn q1_criteria(&self) -> Section<'a> {
        let title = "Q1. When is a rollback required? When is the deployment a success?";
        let c = match &self.plan.criteria {
            Answer::Given(c) => c,
            Answer::NotApplicable(r) => return section(2, "q1", title, vec![not_applicable(r)]),
        };
        let mut body = vec![Block::Paragraph(
            Text::from(match c.rollback_when.len() {
                1 => "A rollback is required as soon as this criterion trips, or when a person requests one (".to_string(),
                n => format!("A rollback is required as soon as any one of these {n} criteria trips, or when a person requests one ("),
            })
.code("backout request REL --reason …")
            .plain("). No data and source errors never count as healthy."),
        )];
        let automatic: Vec<&'a String> = c
            .rollback_when
            .iter()
            .filter(|c| c.automatic)
            .map(|c| &c.id)
            .collect();
        body.push(Block::Paragraph(if automatic.is_empty() {
            Text::from("Automatic rollback: none — every rollback needs a decision (Q3).")
        } else {
            Text::new()
                .strong("Automatic rollback:")
                .plain(" when ")
                .append(self.criteria_refs(automatic))
                .plain(" trips, the rollback starts with no human decision.")
        }));
        for (i, criterion) in c.rollback_when.iter().enumerate() {
            body.push(Block::Section(self.criterion(i, criterion)));
        }
        let success = match &c.success_when {
            Some(s) => vec![Block::Paragraph(
                Text::new()
                    .plain("The deployment is a ")
                    .strong("success")
                    .plain(" — and the rollback window closes early — when ")
                    .append(if s.checks.len() == 1 {
                        Text::new()
                    } else {
                        Text::from("all of ")
                    })
                    .append(self.criteria_refs(&s.checks))
                    .plain(format!(
                        " {} continuously for {}.",
                        pass_verb(s.checks.len()),
                        s.hold
                    )),
            )],
            None => vec![Block::Paragraph(Text::from(
                "No success definition: the deployment is never declared a success early; the window closes \
                 only on time or at its checkpoint.",
            ))],
        };
        body.push(Block::Section(section(3, "q1-success", "Success", success)));
        let mut sources = Vec::new();
        for (name, endpoint, variable) in [
            ("Prometheus", &c.sources.prometheus, "PROMETHEUS_URL"),
            ("Alertmanager", &c.sources.alertmanager, "ALERTMANAGER_URL"),
        ] {
            let value = match endpoint {
                Some(e) => {
                    let mut t = Text::new().code(&e.url);
                    if !e.headers.is_empty() {
                        t = t.plain(", headers ").append(headers(&e.headers));
                    }
                    if let Some(timeout) = e.timeout {
                        t = t.plain(format!(", timeout {timeout}"));
                    }
                    t
                }
                None => Text::from("taken from ")
                    .code(variable)
                    .plain(" in the environment of backout"),
            };
            sources.push((name.into(), value));
        }
        body.push(Block::Section(section(
            3,
            "q1-sources",
            "Monitoring sources",
            vec![Block::Fields(sources)],
        )));
        section(2, "q1", title, body)
    }

    fn criterion(&self, i: usize, c: &'a Criterion) -> Section<'a> {
        let title = match &c.title {
            Some(t) => Text::new().code(&c.id).plain(" — ").plain(t),
            None => Text::new().code(&c.id),
        };
        let mut body = vec![Block::Paragraph(self.criterion_rule(c))];
        if let Some(d) = &c.description {
            body.push(Block::Prose(d.as_str().into()));
        }
        let mut fields = Vec::new();
        match &c.source {
            Source::Prometheus(_) => {
                fields.push(("Source".into(), Text::from("Prometheus query (below)")))
            }
            Source::Alertmanager { alert, matchers } => {
                let mut t = Text::from("Alertmanager alert ").code(alert);
                if !matchers.is_empty() {
                    t = t
                        .plain(" matching ")
                        .append(Text::join(matchers, ", ", |(k, v)| {
                            Text::new().code(format!("{k}={v}"))
                        }));
                }
                fields.push(("Source".into(), t));
            }
            Source::Http(h) => fields.push(("Source".into(), http_check(h))),
            Source::Command(_) => fields.push(("Source".into(), Text::from("command (below)"))),
        }
        fields.push((
            "Passing".into(),
            match (c.passes_if, c.fails_if) {
                (Some(p), Some(_)) => Text::from(format!(
                    "when it {}; in between, a measurement is inconclusive (a human should look)",
                    p.describe()
                )),
                (Some(p), None) => {
                    Text::from(format!("when it {}; otherwise inconclusive", p.describe()))
                }
                (None, _) => Text::from("whenever it is not failing"),
            },
        ));
        fields.push((
            "No data".into(),
            Text::from(match c.no_data {
                NoData::Inconclusive => "inconclusive (never counted as healthy)",
                NoData::Fail => "counts as a failing measurement",
            }),
        ));
        fields.push((
            "Source errors".into(),
            Text::from(format!(
                "inconclusive after {} in a row; each measurement may take up to {}",
                plural(c.errors_after as usize, "error", "errors"),
                c.timeout
            )),
        ));
        fields.push((
            "Decision".into(),
            if c.automatic {
                Text::new()
                    .strong("automatic")
                    .plain(" — a trip starts the rollback with no human decision")
            } else {
                Text::new()
                    .plain("a trip asks the deciders (")
                    .link("q3", "Q3")
                    .plain(")")
            },
        ));
        body.push(Block::Fields(fields));
        match &c.source {
            Source::Prometheus(q) | Source::Command(q) => body.push(Block::Code(q.as_str().into())),
            Source::Alertmanager { .. } | Source::Http(_) => {}
        }
        Section {
            level: 3,
            anchor: criterion_anchor(i),
            title,
            card: true,
            critical: false,
            body,
        }
    }

    /// "Rollback is required when the share of 5xx responses (error-rate) is above 0.02 for 2
    /// consecutive measurements taken every 1m (after a 5m warm-up)."
    fn criterion_rule(&self, c: &'a Criterion) -> Text<'a> {
        let subject = || match &c.title {
            Some(t) => Text::from(the(t)).plain(" (").code(&c.id).plain(")"),
            None => Text::new().code(&c.id).plain(" (the query below)"),
        };
        let failing = match (&c.source, c.fails_if) {
            (Source::Prometheus(_), Some(f)) => subject().plain(" ").plain(f.describe()),
            (Source::Alertmanager { alert, .. }, _) => {
                Text::from("the alert ").code(alert).plain(" fires")
            }
            (Source::Http(h), Some(f)) => match &h.json_pointer {
                Some(p) => Text::from("the value at ")
                    .code(p)
                    .plain(" in the JSON answer ")
                    .plain(f.describe()),
                None => Text::from("the number in the answer ").plain(f.describe()),
            },
            (Source::Http(h), None) => {
                let expect = match h.expect_status {
                    Some(s) => format!("with status {s}"),
                    None => "with a 2xx status".to_string(),
                };
                let body = if h.expect_body.is_some() {
                    " and the expected body"
                } else {
                    ""
                };
                Text::new()
                    .code(format!("{} {}", h.method, h.url))
                    .plain(format!(" does not answer {expect}{body}"))
            }
            (Source::Command(_), Some(f)) => {
                Text::from("the number the command prints ").plain(f.describe())
            }
            (Source::Command(_), None) => Text::from("the command exits with a non-zero status"),
            (Source::Prometheus(_), None) => {
                return Text::from("This criterion never trips by itself: it has no ")
                    .code("fails_if")
                    .plain(format!(" condition. It is measured every {}.", c.every));
            }
        };
        let cadence = if c.trips_after <= 1 {
            format!(" at a single measurement (measured every {})", c.every)
        } else {
            format!(
                " for {} consecutive measurements taken every {}",
                c.trips_after, c.every
            )
        };
        let delay = if c.delay.is_zero() {
            String::new()
        } else {
            format!(" (after a {} warm-up)", c.delay)
        };
        Text::from("Rollback is required when ")
            .append(failing)
            .plain(format!("{cadence}{delay}."))
    }

    // ----- Q2 ---------------------------------------------------------------------------------

    fn q2_window(&self) -> Section<'a> {
        let title = "Q2. Within what time can a rollback take place?";
        let w = match &self.plan.window {
            Answer::Given(w) => w,
            Answer::NotApplicable(r) => return section(2, "q2", title, vec![not_applicable(r)]),
        };
        let opens = Text::from("The window opens at the deploy (the time of ")
            .code("backout start")
            .plain(")");
        let mut body = vec![Block::Paragraph(match &w.closes_at_checkpoint {
            Some(c) => opens
                .plain(format!(" and closes {} later, or as soon as the forward deployment reaches checkpoint ", w.closes_after))
                .code(c)
                .plain(", whichever comes first."),
            None => opens.plain(format!(" and closes {} later.", w.closes_after)),
        })];
        if let Some(c) = &w.closes_at_checkpoint {
            body.push(Block::Note(
                Tone::Warning,
                Text::new()
                    .strong("Point of no return:")
                    .plain(" once the deployment reports checkpoint ")
                    .code(c)
                    .plain(", a rollback is no longer possible."),
            ));
            if !self.plan.release.checkpoints.is_empty() {
                body.push(Block::Paragraph(
                    Text::from("Checkpoints in order: ").append(self.checkpoint_chain()),
                ));
            }
        }
        if let Some(latest) = self.latest_decision() {
            body.push(Block::Paragraph(latest));
        }
        body.push(Block::Paragraph(Text::from("After the window has closed:")));
        match &w.after_close {
            Some(a) => body.push(Block::Prose(a.as_str().into())),
            None => body.push(Block::Paragraph(Text::from(
                "The plan does not say what to do instead.",
            ))),
        }
        body.push(Block::Paragraph(
            Text::new()
                .code("backout execute")
                .plain(" refuses a late rollback unless deciders meeting the quorum approve an explicit window override with a reason (")
                .code("backout decide REL approve --override-window --reason …")
                .plain(")."),
        ));
        section(2, "q2", title, body)
    }

    /// When a rollback must be approved at the latest to finish inside the window.
    fn latest_decision(&self) -> Option<Text<'a>> {
        let w = self.plan.window.given()?;
        let start = self.plan.execution.given()?.start_within?;
        let expected = *self.plan.expected_duration.given()?;
        let needed = start + expected;
        Some(match minus(w.closes_after, needed) {
            Some(latest) => Text::new().strong("Decide by:").plain(format!(
                " {latest} after the deploy, so that the rollback can start (within {start}) and finish \
                 (expected {expected}) inside the {} window.",
                w.closes_after
            )),
            None => Text::new().strong("Too short:").plain(format!(
                " starting within {start} and taking the expected {expected} does not fit in the {} window.",
                w.closes_after
            )),
        })
    }

    // ----- Q3, Q4 -----------------------------------------------------------------------------

    fn q3_authorization(&self) -> Section<'a> {
        let title = "Q3. Who decides to roll back?";
        let a = match &self.plan.authorization {
            Answer::Given(a) => a,
            Answer::NotApplicable(r) => return section(2, "q3", title, vec![not_applicable(r)]),
        };
        let fields = vec![
            ("Deciders".into(), self.group(&a.deciders)),
            (
                "Quorum".into(),
                Text::from(format!(
                    "{} from distinct deciders",
                    plural(a.quorum as usize, "approval", "approvals")
                )),
            ),
            (
                "Fallback".into(),
                match &a.fallback {
                    Some(f) => Text::from(format!(
                        "if no decision arrives within {}, the decision escalates to ",
                        f.after
                    ))
                    .append(self.group(&f.deciders)),
                    None => Text::from("none — there is no escalation when nobody decides"),
                },
            ),
            (
                "Automatic".into(),
                if a.automatic.is_empty() {
                    Text::from("none — every rollback needs a human decision")
                } else {
                    self.criteria_refs(&a.automatic)
                        .plain(" may start the rollback with no human decision")
                },
            ),
            (
                "Separation of duties".into(),
                Text::from(if a.separation_of_duties {
                    "yes — a person who decides this rollback may not perform its steps"
                } else {
                    "no — a decider may also perform the steps"
                }),
            ),
        ];
        let how = Text::from("Decide with ")
            .code("backout decide REL approve --reason …")
            .plain(" or ")
            .code("backout decide REL deny --reason …")
            .plain("; anyone may ask for a rollback with ")
            .code("backout request REL --reason …")
            .plain(".");
        section(
            2,
            "q3",
            title,
            vec![Block::Fields(fields), Block::Paragraph(how)],
        )
    }

    fn q4_execution(&self) -> Section<'a> {
        let title = "Q4. Who performs the rollback, and how soon?";
        let e = match &self.plan.execution {
            Answer::Given(e) => e,
            Answer::NotApplicable(r) => return section(2, "q4", title, vec![not_applicable(r)]),
        };
        let fields = vec![
            ("Performers".into(), self.group(&e.performers)),
            (
                "Start within".into(),
                match e.start_within {
                    Some(d) => Text::from(format!(
                        "{d} after the approval; if the rollback has not started by then, it is escalated"
                    )),
                    None => Text::from("no deadline is set"),
                },
            ),
        ];
        let how = Text::from("Start the approved rollback with ")
            .code("backout execute REL")
            .plain(".");
        section(
            2,
            "q4",
            title,
            vec![Block::Fields(fields), Block::Paragraph(how)],
        )
    }

    // ----- Q5 ---------------------------------------------------------------------------------

    fn q5_procedure(&self) -> Section<'a> {
        let title = "Q5. What procedure is followed?";
        let p = match &self.plan.procedure {
            Answer::Given(p) => p,
            Answer::NotApplicable(r) => return section(2, "q5", title, vec![not_applicable(r)]),
        };
        let mut body = vec![Block::Paragraph(Text::from(format!(
            "{}. A step starts as soon as the steps it depends on are done, at most {} at a time.",
            plural(p.steps.len(), "step", "steps"),
            p.max_parallel
        )))];
        let mut pre = vec![Block::Paragraph(Text::from(
            "All must succeed before any step runs; otherwise the run is refused and nothing runs.",
        ))];
        if p.preconditions.is_empty() {
            pre = vec![Block::Paragraph(Text::from("None."))];
        } else {
            pre.push(Block::List(
                p.preconditions
                    .iter()
                    .map(|c| {
                        let mut t = Text::new().code(&c.id);
                        if let Some(title) = &c.title {
                            t = t.plain(format!(" ({title})"));
                        }
                        t = t.plain(": ").append(action(&c.action));
                        if let Some(timeout) = c.timeout {
                            t = t.plain(format!(" (timeout {timeout})"));
                        }
                        t
                    })
                    .collect(),
            ));
        }
        body.push(Block::Section(section(
            3,
            "q5-preconditions",
            "Preconditions",
            pre,
        )));
        let mut steps = vec![];
        steps.extend(self.step_list(&p.steps, self.schedule, true, "step", 4));
        body.push(Block::Section(section(3, "q5-steps", "Steps", steps)));
        let verify = match &p.verify_after {
            Some(v) => Text::from("The backout itself succeeded when ")
                .append(self.criteria_refs(&v.checks))
                .plain(format!(
                    " {} continuously for {}.",
                    pass_verb(v.checks.len()),
                    v.hold
                )),
            None => Text::from(
                "No check after the procedure is defined: the backout is done when its last step is.",
            ),
        };
        body.push(Block::Section(section(
            3,
            "q5-verify",
            "After the last step",
            vec![Block::Paragraph(verify)],
        )));
        section(2, "q5", title, body)
    }

    /// The overview table and one card per step.
    /// The overview table, then one card per step. The cards are built while the document is
    /// written ([`CardSource`]), one at a time, so a 5,000-step plan never holds them all.
    fn step_list(
        &self,
        steps: &'a [Step],
        schedule: &Schedule,
        mark_critical: bool,
        prefix: &str,
        level: u8,
    ) -> Vec<Block<'a>> {
        let index: HashMap<&'a str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut rows = Vec::with_capacity(steps.len());
        let mut starts = Vec::with_capacity(steps.len());
        let mut critical_steps = Vec::with_capacity(steps.len());
        for (i, s) in steps.iter().enumerate() {
            let slot = schedule.slots.get(i).filter(|slot| slot.id == s.id);
            let critical =
                mark_critical && slot.is_some_and(|slot| slot.critical) && steps.len() > 1;
            starts.push(slot.map(|slot| slot.start));
            critical_steps.push(critical);
            let mut name = Text::new().reference(step_anchor(prefix, i), &s.id);
            if critical {
                name.push_plain(" ★");
            }
            if let Some(t) = &s.title {
                name = name.plain(" — ").plain(t);
            }
            if let Some(c) = &s.when_checkpoint {
                name = name.plain(" (only if ").code(c).plain(" was reached)");
            }
            let start = slot.map_or_else(
                || Text::from("—"),
                |slot| Text::from(format!("+{}", slot.start)),
            );
            rows.push(Row {
                cells: vec![
                    Text::from((i + 1).to_string()),
                    name,
                    Text::from(s.kind.keyword()),
                    self.who_short(s),
                    start,
                    s.expected
                        .map_or_else(|| Text::from("no estimate"), |d| Text::from(d.to_string())),
                    s.timeout
                        .map_or_else(|| Text::from("none"), |d| Text::from(d.to_string())),
                    needs_text(s, &index, prefix),
                    on_failure_short(&s.on_failure),
                ],
                critical,
            });
        }
        let mut blocks = vec![Block::Table(Table {
            head: [
                "#",
                "Step",
                "Kind",
                "Who",
                "Starts",
                "Expected",
                "Timeout",
                "Depends on",
                "On failure",
            ]
            .map(Str::from)
            .to_vec(),
            rows,
        })];
        if critical_steps.contains(&true) {
            blocks.push(Block::Paragraph(Text::from(
                "★ marks the critical path: the chain of steps that decides the total duration. \
                 “Starts” is the earliest start after the run begins, if every step takes its expected time.",
            )));
        }
        blocks.push(Block::StepCards(StepCards {
            steps,
            starts,
            critical: critical_steps,
            index,
            prefix: prefix.to_string(),
            level,
        }));
        blocks
    }

    fn who_short(&self, s: &'a Step) -> Text<'a> {
        match &s.kind {
            StepKind::Manual { by, .. } => Text::new().code(by).plain(" by hand"),
            _ => Text::from("automated"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step_card(
        &self,
        s: &'a Step,
        i: usize,
        anchor: String,
        start: Option<Duration>,
        critical: bool,
        needs: Text<'a>,
        level: u8,
    ) -> Section<'a> {
        let mut title = Text::from(format!("{}. ", i + 1)).code(&s.id);
        if critical {
            title.push_plain(" ★");
        }
        if let Some(t) = &s.title {
            title.push_plain(format!(" — {t}"));
        }
        let mut body = self.step_action(s);
        let mut fields = Vec::new();
        fields.push((
            "Who".into(),
            match (&s.kind, self.performers()) {
                (StepKind::Manual { by, .. }, _) => Text::from("a person from ")
                    .append(self.group(by))
                    .plain(", who confirms it with ")
                    .code(format!("backout confirm RUN {}", s.id)),
                (_, Some(p)) => Text::from("automated; the run is started by ").code(p),
                (_, None) => Text::from("automated"),
            },
        ));
        let mut timing = match start {
            Some(start) if start.is_zero() => Text::from("starts as soon as the run begins"),
            Some(start) => Text::from(format!("starts at +{start} at the earliest")),
            None => Text::new(),
        };
        let expected = match s.expected {
            Some(d) => format!("expected {d}"),
            None => "no estimate".to_string(),
        };
        let timeout = match s.timeout {
            Some(d) => format!("timeout {d}"),
            None => "no timeout".to_string(),
        };
        timing.push_plain(if timing.is_empty() {
            format!("{expected}, {timeout}")
        } else {
            format!(", {expected}, {timeout}")
        });
        if critical {
            timing.push_plain(" — on the critical path ★");
        }
        fields.push(("Timing".into(), timing));
        fields.push(("Depends on".into(), needs));
        if let Some(c) = &s.when_checkpoint {
            fields.push((
                "Only if".into(),
                Text::from("the release reached checkpoint ")
                    .code(c)
                    .plain("; otherwise the step is skipped"),
            ));
        }
        fields.push((
            "Retries".into(),
            Text::from(match s.retries {
                0 => "none".to_string(),
                n => format!(
                    "{}, {} apart",
                    plural(n as usize, "retry", "retries"),
                    s.retry_delay
                ),
            }),
        ));
        fields.push((
            "Idempotent".into(),
            if s.idempotent {
                Text::from("yes — safe to run again after a crash")
            } else {
                Text::from("no — if interrupted, a person decides with ")
                    .code(format!("backout resolve RUN {} done|failed|retry", s.id))
            },
        ));
        if let Some(v) = &s.verify {
            fields.push(("Then verifies".into(), self.verify(v)));
        }
        fields.push(("On failure".into(), self.on_failure(&s.on_failure)));
        if !s.env.is_empty() {
            fields.push((
                "Environment".into(),
                Text::join(&s.env, ", ", |(k, v)| Text::new().code(format!("{k}={v}"))),
            ));
        }
        if !s.outputs.is_empty() {
            fields.push((
                "Outputs".into(),
                Text::join(&s.outputs, ", ", |o| {
                    Text::new()
                        .code(o)
                        .plain(" (later steps read ")
                        .code(crate::plan::output_variable(&s.id, o))
                        .plain(")")
                }),
            ));
        }
        body.push(Block::Fields(fields));
        Section {
            level,
            anchor,
            title,
            card: true,
            critical,
            body,
        }
    }

    /// What the step does, exactly as written.
    fn step_action(&self, s: &'a Step) -> Vec<Block<'a>> {
        match &s.kind {
            StepKind::Run(cmd) => vec![
                Block::Paragraph(
                    Text::from("Runs this shell command (")
                        .code("sh -c")
                        .plain("):"),
                ),
                Block::Code(cmd.as_str().into()),
            ],
            StepKind::Exec(argv) => vec![
                Block::Paragraph(Text::from("Runs this program directly, without a shell:")),
                Block::Code(shell_words(argv).into()),
            ],
            StepKind::Http(req) => vec![
                Block::Paragraph(Text::from(format!(
                    "Sends this HTTP request and expects {}:",
                    expectation(req)
                ))),
                Block::Code(http_message(req).into()),
            ],
            StepKind::Manual { by, instructions } => vec![
                Block::Paragraph(
                    Text::new()
                        .strong("By hand:")
                        .plain(" a person from ")
                        .code(by)
                        .plain(" does this:"),
                ),
                Block::Prose(instructions.as_str().into()),
            ],
            StepKind::Notify { channels, message } => {
                let mut t = Text::from("Notifies ")
                    .append(Text::join(channels, ", ", |c| Text::new().code(c)));
                let mut blocks = Vec::new();
                match message {
                    Some(m) => {
                        t.push_plain(" with this message:");
                        blocks.push(Block::Paragraph(t));
                        blocks.push(Block::Prose(m.as_str().into()));
                    }
                    None => {
                        t.push_plain(" with the default message.");
                        blocks.push(Block::Paragraph(t));
                    }
                }
                blocks
            }
            StepKind::Wait(Wait::For(d)) => {
                vec![Block::Paragraph(Text::from(format!("Waits {d}.")))]
            }
            StepKind::Wait(Wait::Until { criterion, timeout }) => {
                let t = Text::from("Waits until criterion ")
                    .append(self.criterion_ref(criterion))
                    .plain(" passes");
                vec![Block::Paragraph(match timeout {
                    Some(d) => t.plain(format!(", giving up after {d}.")),
                    None => t.plain("."),
                })]
            }
        }
    }

    fn verify(&self, v: &'a Verify) -> Text<'a> {
        let mut t = match &v.check {
            Check::Http(h) => http_check(h),
            Check::Command(c) => Text::from("the command ").code(c),
            Check::Prometheus(q) => Text::from("the Prometheus query ").code(q),
            Check::Criterion(id) => Text::from("criterion ")
                .append(self.criterion_ref(id))
                .plain(" passes"),
        };
        match (v.fails_if, v.passes_if) {
            (None, None) => {
                if matches!(v.check, Check::Command(_)) {
                    t.push_plain(" exits with status 0");
                }
            }
            (fails, passes) => {
                if let Some(f) = fails {
                    t.push_plain(format!("; fails if the value {}", f.describe()));
                }
                if let Some(p) = passes {
                    t.push_plain(format!("; passes if the value {}", p.describe()));
                }
            }
        }
        t.plain("; a failing check fails the step")
    }

    fn on_failure(&self, f: &'a OnFailure) -> Text<'a> {
        match f {
            OnFailure::Halt => Text::from("halt — the run stops; nothing after this step starts"),
            OnFailure::Continue => {
                Text::from("continue — the failure is recorded and the run goes on")
            }
            OnFailure::Contingency(id) => {
                Text::from("run contingency ").append(self.contingency_ref(id))
            }
        }
    }

    // ----- Q6 ---------------------------------------------------------------------------------

    fn q6_contingency(&self) -> Section<'a> {
        let p = self.plan;
        let mut body = Vec::new();
        let mut branches = Vec::new();
        match &p.contingency {
            Answer::Given(list) if list.is_empty() => {
                branches.push(Block::Paragraph(Text::from(
                    "No contingency branches are defined.",
                )));
            }
            Answer::Given(list) => {
                // Which steps lead to each branch, in document order.
                let mut leads: HashMap<&str, Vec<Text>> = HashMap::new();
                for (i, s) in p.steps().iter().enumerate() {
                    if let OnFailure::Contingency(c) = &s.on_failure {
                        leads
                            .entry(c)
                            .or_default()
                            .push(Text::new().reference(format!("step-{}", i + 1), &s.id));
                    }
                }
                for branch in list {
                    for s in &branch.steps {
                        if let OnFailure::Contingency(c) = &s.on_failure {
                            let mut t = Text::new().code(&s.id);
                            t.push_plain(format!(" (in contingency {})", branch.id));
                            leads.entry(c).or_default().push(t);
                        }
                    }
                }
                for (k, branch) in list.iter().enumerate() {
                    let anchor = contingency_anchor(k);
                    let mut b = vec![Block::Prose(branch.description.as_str().into())];
                    b.push(Block::Paragraph(match leads.remove(branch.id.as_str()) {
                        Some(from) => Text::new()
                            .strong("Runs when")
                            .plain(if from.len() == 1 {
                                " this step fails: "
                            } else {
                                " one of these steps fails: "
                            })
                            .append(Text::join(from, ", ", |t| t))
                            .plain("."),
                        None => {
                            Text::from("No step leads to this branch (no on_failure names it).")
                        }
                    }));
                    let schedule = Schedule::of_steps(&branch.steps);
                    b.extend(self.step_list(
                        &branch.steps,
                        &schedule,
                        false,
                        &format!("{anchor}-step"),
                        5,
                    ));
                    branches.push(Block::Section(Section {
                        level: 4,
                        anchor,
                        title: Text::from("Contingency ").code(&branch.id),
                        card: false,
                        critical: false,
                        body: b,
                    }));
                }
            }
            Answer::NotApplicable(r) => branches.push(not_applicable(r)),
        }
        let mut contingency = Vec::new();
        if matches!(&p.contingency, Answer::Given(list) if !list.is_empty()) {
            contingency.push(Block::Paragraph(
                Text::from("A branch runs when a step fails and its ")
                    .code("on_failure")
                    .plain(" names it."),
            ));
        }
        contingency.extend(branches);
        body.push(Block::Section(section(
            3,
            "q6-contingency",
            "Contingency branches",
            contingency,
        )));
        let mut workarounds = Vec::new();
        match &p.workarounds {
            Answer::Given(list) if list.is_empty() => {
                workarounds.push(Block::Paragraph(Text::from("No workarounds are defined.")));
            }
            Answer::Given(list) => {
                workarounds.push(Block::Paragraph(Text::from(
                    "Alternatives to a full backout, each runnable on its own.",
                )));
                for (k, w) in list.iter().enumerate() {
                    let anchor = format!("workaround-{}", k + 1);
                    let mut b = vec![Block::Prose(w.description.as_str().into())];
                    b.push(Block::Paragraph(
                        Text::from("Run it with ")
                            .code(format!("backout run PLAN --workaround {}", w.id))
                            .plain("."),
                    ));
                    if w.steps.is_empty() {
                        b.push(Block::Paragraph(Text::from(
                            "It has no steps: it is done by hand as described.",
                        )));
                    } else {
                        let schedule = Schedule::of_steps(&w.steps);
                        b.extend(self.step_list(
                            &w.steps,
                            &schedule,
                            false,
                            &format!("{anchor}-step"),
                            5,
                        ));
                    }
                    workarounds.push(Block::Section(Section {
                        level: 4,
                        anchor,
                        title: Text::from("Workaround ").code(&w.id),
                        card: false,
                        critical: false,
                        body: b,
                    }));
                }
            }
            Answer::NotApplicable(r) => workarounds.push(not_applicable(r)),
        }
        body.push(Block::Section(section(
            3,
            "q6-workarounds",
            "Workarounds",
            workarounds,
        )));
        section(
            2,
            "q6",
            "Q6. What contingency measures and workarounds exist?",
            body,
        )
    }

    // ----- Q7 ---------------------------------------------------------------------------------

    fn q7_duration(&self) -> Section<'a> {
        let title = "Q7. How long will the reversion take?";
        let p = self.plan;
        let mut body = Vec::new();
        let stated = match &p.expected_duration {
            Answer::Given(d) => Some(*d),
            Answer::NotApplicable(r) => {
                body.push(not_applicable(r));
                None
            }
        };
        let steps = match &p.procedure {
            Answer::Given(proc) => &proc.steps,
            Answer::NotApplicable(_) => {
                body.push(Block::Paragraph(
                    Text::from("There is no procedure to time (")
                        .link("q5", "Q5")
                        .plain(" does not apply)."),
                ));
                return section(2, "q7", title, body);
            }
        };
        let total = self.schedule.total;
        let mut fields = Vec::new();
        if let Some(d) = stated {
            fields.push((
                "Expected duration".into(),
                Text::from(format!("{d} (as the plan states)")),
            ));
        }
        let index: HashMap<&str, (usize, &Step)> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), (i, s)))
            .collect();
        let path = Text::join(&self.schedule.critical_path, " → ", |id| {
            match index.get(id.as_str()) {
                Some((i, s)) => Text::new()
                    .reference(format!("step-{}", i + 1), id)
                    .plain(match s.expected {
                        Some(d) => format!(" ({d})"),
                        None => " (no estimate)".to_string(),
                    }),
                None => Text::new().code(id),
            }
        });
        fields.push((
            "Critical path".into(),
            if self.schedule.critical_path.is_empty() {
                Text::from("none — the procedure has no steps")
            } else {
                Text::from(format!("{total}: ")).append(path)
            },
        ));
        body.push(Block::Fields(fields));
        if let Some(d) = stated {
            body.push(match minus(d, total) {
                Some(spare) => Block::Note(
                    Tone::Good,
                    Text::from(format!(
                        "The critical path ({total}) fits in the expected duration ({d}), with {spare} to spare."
                    )),
                ),
                None => Block::Note(
                    Tone::Warning,
                    Text::from(format!("The critical path ({total}) is longer than the expected duration ({d}).")),
                ),
            });
        }
        if p.window.given().is_none() {
            body.push(Block::Note(
                Tone::Info,
                Text::from("No window limits the rollback (")
                    .link("q2", "Q2")
                    .plain(" does not apply)."),
            ));
        }
        if let (Some(w), Some(d)) = (p.window.given(), stated) {
            let start = p
                .execution
                .given()
                .and_then(|e| e.start_within)
                .unwrap_or_default();
            let needed = start + d;
            let what = if start.is_zero() {
                format!("The expected {d}")
            } else {
                format!("Starting within {start} plus the expected {d} makes {needed}, which")
            };
            let earlier = match &w.closes_at_checkpoint {
                Some(c) => format!(" (unless checkpoint {c} closes it earlier)"),
                None => String::new(),
            };
            body.push(match minus(w.closes_after, needed) {
                Some(spare) => Block::Note(
                    Tone::Good,
                    Text::from(format!(
                        "{what} fits in the {} window when the decision comes by {spare} after the deploy{earlier}.",
                        w.closes_after
                    )),
                ),
                None => Block::Note(
                    Tone::Warning,
                    Text::from(format!("{what} does not fit in the {} window.", w.closes_after)),
                ),
            });
        }
        let unestimated: Vec<&str> = steps
            .iter()
            .filter(|s| s.expected.is_none())
            .map(|s| s.id.as_str())
            .collect();
        if !unestimated.is_empty() {
            body.push(Block::Note(
                Tone::Warning,
                Text::from(format!(
                    "{} no expected time and {} as zero: ",
                    plural(unestimated.len(), "step has", "steps have"),
                    if unestimated.len() == 1 {
                        "counts"
                    } else {
                        "count"
                    }
                ))
                .append(capped(unestimated.iter().copied(), |id| {
                    Text::new().code(id)
                })),
            ));
        }
        body.push(Block::Timeline);
        section(2, "q7", title, body)
    }

    // ----- Q8 ---------------------------------------------------------------------------------

    fn q8_communication(&self) -> Section<'a> {
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
                            ChannelKind::Webhook(u) => ("webhook (JSON POST)", Text::new().code(u)),
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
        let rows = Event::ALL
            .iter()
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

    // ----- Q9 ---------------------------------------------------------------------------------

    fn q9_testing(&self) -> Section<'a> {
        let title = "Q9. Has the plan been successfully tested?";
        let (tone, tested) = self.tested_line();
        let mut body = Vec::new();
        match &self.plan.testing {
            Answer::Given(t) => {
                let mut fields = vec![
                    ("Rehearse in".into(), Text::from(t.rehearse_in.as_str())),
                    (
                        "Evidence counts for".into(),
                        Text::from(format!("{} after the rehearsal (max_age)", t.max_age)),
                    ),
                ];
                for (env, o) in &t.overrides {
                    fields.push((
                        format!("Overrides in {env}").into(),
                        Text::join(&o.env, ", ", |(k, v)| Text::new().code(format!("{k}={v}"))),
                    ));
                }
                body.push(Block::Note(tone, tested));
                body.push(Block::Fields(fields));
                body.push(Block::Paragraph(
                    Text::from("Rehearse with ")
                        .code(format!("backout rehearse PLAN --env {}", t.rehearse_in))
                        .plain("; dry runs are never evidence. Evidence is bound to the plan's content hash: any change to the plan needs a new rehearsal."),
                ));
            }
            Answer::NotApplicable(r) => {
                body.push(not_applicable(r));
                body.push(Block::Note(
                    if tone == Tone::Good { tone } else { Tone::Info },
                    tested,
                ));
            }
        }
        section(2, "q9", title, body)
    }
}

impl<'a> CardSource<'a> for Context<'a> {
    fn card(&self, list: &StepCards<'a>, i: usize) -> Option<Section<'a>> {
        let s = list.steps.get(i)?;
        Some(self.step_card(
            s,
            i,
            step_anchor(&list.prefix, i),
            list.starts.get(i).copied().flatten(),
            list.critical.get(i).copied().unwrap_or(false),
            needs_text(s, &list.index, &list.prefix),
            list.level,
        ))
    }
}

// ----- free helpers -----------------------------------------------------------------------------

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

fn step_anchor(prefix: &str, i: usize) -> String {
    format!("{prefix}-{}", i + 1)
}

/// The steps `s` depends on, linked to their cards.
fn needs_text<'a>(s: &'a Step, index: &HashMap<&'a str, usize>, prefix: &str) -> Text<'a> {
    if s.needs.is_empty() {
        return Text::from("—");
    }
    Text::join(&s.needs, ", ", |n| match index.get(n.as_str()) {
        Some(i) => Text::new().reference(step_anchor(prefix, *i), n),
        None => Text::new().code(n),
    })
}

pub(crate) fn criterion_anchor(i: usize) -> String {
    format!("criterion-{}", i + 1)
}

fn contingency_anchor(i: usize) -> String {
    format!("contingency-{}", i + 1)
}

/// Every step in the plan: procedure, contingency branches and workarounds.
fn all_steps(plan: &Plan) -> impl Iterator<Item = &Step> {
    let contingency = plan
        .contingency
        .given()
        .into_iter()
        .flatten()
        .flat_map(|c| &c.steps);
    let workarounds = plan
        .workarounds
        .given()
        .into_iter()
        .flatten()
        .flat_map(|w| &w.steps);
    plan.steps().iter().chain(contingency).chain(workarounds)
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

/// A title used inside a sentence: "Share of 5xx responses" → "the share of 5xx responses".
/// Acronyms ("API errors") keep their case.
fn the(title: &str) -> String {
    let title = title.trim();
    let mut chars = title.chars();
    let lowered = match (chars.next(), chars.next()) {
        (Some(first), second)
            if first.is_uppercase() && !second.is_some_and(char::is_uppercase) =>
        {
            first.to_lowercase().chain(title.chars().skip(1)).collect()
        }
        _ => title.to_string(),
    };
    let has_article = ["the ", "a ", "an "].iter().any(|a| lowered.starts_with(a));
    if has_article {
        lowered
    } else {
        format!("the {lowered}")
    }
}

/// The first 12 hex digits of a content hash, for sentences.
fn short_hash(hash: &str) -> String {
    match hash.char_indices().nth(12) {
        Some((at, _)) => format!("{}…", &hash[..at]),
        None => hash.to_string(),
    }
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

/// The request as an HTTP message: request line, headers, blank line, body.
fn http_message(req: &HttpRequest) -> String {
    let mut out = format!("{} {}", req.method, req.url);
    for (k, v) in &req.headers {
        out.push_str(&format!("\n{k}: {v}"));
    }
    if let Some(body) = &req.body {
        out.push_str("\n\n");
        out.push_str(body);
    }
    out
}

fn action(a: &Action) -> Text<'_> {
    match a {
        Action::Run(cmd) => Text::from("runs ").code(cmd),
        Action::Exec(argv) => Text::from("runs ").code(shell_words(argv)),
        Action::Http(req) => Text::from("sends ")
            .code(format!("{} {}", req.method, req.url))
            .plain(format!(" and expects {}", expectation(req))),
    }
}

fn on_failure_short(f: &OnFailure) -> Text<'_> {
    match f {
        OnFailure::Halt => Text::from("halt"),
        OnFailure::Continue => Text::from("continue"),
        OnFailure::Contingency(id) => Text::from("contingency ").code(id),
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

    #[test_case("Share of 5xx responses", "the share of 5xx responses")]
    #[test_case("API errors", "the API errors")]
    #[test_case("99th percentile latency", "the 99th percentile latency")]
    #[test_case("The queue depth", "the queue depth")]
    #[test_case("a", "the a")]
    fn titles_read_inside_sentences(title: &str, expected: &str) {
        assert_eq!(the(title), expected);
    }

    #[test_case(&["./bin/x", "checkout", "2.13.4"], "./bin/x checkout 2.13.4")]
    #[test_case(&["echo", "it's here", ""], r"echo 'it'\''s here' ''")]
    fn argv_is_quoted_for_display(argv: &[&str], expected: &str) {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), expected);
    }

    #[test]
    fn output_variables_follow_the_design() {
        assert_eq!(
            crate::plan::output_variable("find-revision", "revision"),
            "BACKOUT_OUTPUT_FIND_REVISION_REVISION"
        );
    }

    #[test]
    fn short_hash_is_twelve_digits() {
        assert_eq!(short_hash("0123456789abcdef"), "0123456789ab…");
        assert_eq!(short_hash("abc"), "abc");
    }
}
