//! Q7, how long the reversion takes: the stated expected duration next to the computed critical
//! path, whether the reversion fits in the window, the steps without an estimate, and the
//! timeline.

use std::collections::HashMap;

use super::{Context, capped, minus, not_applicable, plural, section};
use crate::plan::{Answer, Step};
use crate::render::document::{Block, Section, Text, Tone};

impl<'a> Context<'a> {
    pub(super) fn q7_duration(&self) -> Section<'a> {
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
        if let Some(m) = &self.info.measured {
            fields.push((
                "Measured".into(),
                Text::from(format!(
                    "median {}, worst {} over {} of this version of the plan",
                    m.median,
                    m.worst,
                    plural(
                        m.rehearsals,
                        "successful rehearsal",
                        "successful rehearsals"
                    )
                )),
            ));
        }
        body.push(Block::Fields(fields));
        if let (Some(m), Some(d)) = (&self.info.measured, stated) {
            body.push(if m.median > d {
                Block::Note(
                    Tone::Warning,
                    Text::from(format!(
                        "Rehearsals took longer than the expected duration: a median {} against {d}.",
                        m.median
                    )),
                )
            } else {
                Block::Note(
                    Tone::Good,
                    Text::from(format!(
                        "Rehearsals confirm the expected duration: a median {} against {d} (worst {}).",
                        m.median, m.worst
                    )),
                )
            });
        }
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
}
