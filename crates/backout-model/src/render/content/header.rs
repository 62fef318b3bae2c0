//! The top of the document: the header (release, owners, checkpoints, whether the plan was
//! tested), the at-a-glance table answering all nine questions in a line each, and the contacts.

use std::collections::HashMap;

use super::{Context, capped, not_applicable_text, plural, section};
use crate::plan::{Answer, StepKind};
use crate::render::document::{Block, Row, Section, Table, Text};

impl<'a> Context<'a> {
    pub(super) fn header(&self) -> Vec<Block<'a>> {
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
    pub(super) fn checkpoint_chain(&self) -> Text<'a> {
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

    pub(super) fn at_a_glance(&self) -> Section<'a> {
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
                (Answer::Given(d), Answer::Given(_)) => Text::from(match self.worst {
                    Some(w) => format!(
                        "expected {d}; critical path {}; worst case {}",
                        self.schedule.total, w.total
                    ),
                    None => format!("expected {d}; critical path {}", self.schedule.total),
                }),
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

    pub(super) fn contacts(&self) -> Section<'a> {
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
        for step in p.all_steps() {
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
}
