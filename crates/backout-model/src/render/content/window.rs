//! Q2, within what time a rollback can take place: when the window opens and closes, the point
//! of no return, the latest moment to decide, and what to do once the window has closed.

use super::{Context, minus, not_applicable, section};
use crate::plan::Answer;
use crate::render::document::{Block, Section, Text, Tone};

impl<'a> Context<'a> {
    pub(super) fn q2_window(&self) -> Section<'a> {
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
        body.push(Block::Paragraph(
            Text::from(format!("{} before it closes on time, ", w.closing_notice))
                .code("window_closing")
                .plain(" is announced to the channels that subscribe to it."),
        ));
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
}
