//! Q5, the procedure that is followed: its preconditions, its steps (laid out by [`steps`]) and
//! the check after the last step.
//!
//! [`steps`]: super::steps

use super::{Context, expectation, not_applicable, pass_verb, plural, section, shell_words};
use crate::plan::{Action, Answer};
use crate::render::document::{Block, Section, Text};

impl<'a> Context<'a> {
    pub(super) fn q5_procedure(&self) -> Section<'a> {
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
