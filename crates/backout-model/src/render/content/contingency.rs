//! Q6, the contingency measures and workarounds: each contingency branch with the steps that
//! lead to it, and each workaround with how to run it, both with their own step lists.

use std::collections::HashMap;

use super::{Context, contingency_anchor, not_applicable, section};
use crate::plan::{Answer, OnFailure};
use crate::render::document::{Block, Section, Text};
use crate::schedule::Schedule;

impl<'a> Context<'a> {
    pub(super) fn q6_contingency(&self) -> Section<'a> {
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
}
