//! Q3 and Q4, the people in a rollback: who decides (deciders, quorum, fallback, automatic
//! criteria, separation of duties) and who performs it, and how soon after the approval.

use super::{Context, not_applicable, plural, section};
use crate::plan::Answer;
use crate::render::document::{Block, Section, Text};

impl<'a> Context<'a> {
    pub(super) fn q3_authorization(&self) -> Section<'a> {
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

    pub(super) fn q4_execution(&self) -> Section<'a> {
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
}
