//! Q7, how long the reversion takes: the stated expected duration next to the computed critical
//! path and the worst case (every attempt to its timeout, every retry, the contingency branch a
//! failing step runs; see [`WorstCase`](crate::schedule::WorstCase)), each with its path, whether
//! each fits in the window, the steps without an estimate, and the timeline.

use std::collections::HashMap;

use super::{Context, capped, minus, not_applicable, plural, section};
use crate::duration::Duration;
use crate::plan::{Answer, Step};
use crate::render::document::{Block, Section, Text, Tone};
use crate::schedule::WorstStep;

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
        let hold = p
            .procedure
            .given()
            .and_then(|proc| proc.verify_after.as_ref())
            .map_or(Duration::ZERO, |v| v.hold);
        if let Some(worst) = self.worst
            && !worst.schedule.critical_path.is_empty()
        {
            let costs: HashMap<&str, &WorstStep> =
                worst.steps.iter().map(|s| (s.id.as_str(), s)).collect();
            let path = Text::join(&worst.schedule.critical_path, " → ", |id| {
                let step = match index.get(id.as_str()) {
                    Some((i, _)) => Text::new().reference(format!("step-{}", i + 1), id),
                    None => Text::new().code(id),
                };
                match costs.get(id.as_str()) {
                    Some(c) => step.plain(" (").append(worst_cost(self, c)).plain(")"),
                    None => step,
                }
            });
            fields.push((
                "Worst case".into(),
                Text::from(format!("{}: ", worst.total)).append(path),
            ));
            if !hold.is_zero() {
                fields.push((
                    "Until verified".into(),
                    Text::from(format!(
                        "{} in the worst case: the procedure, then verify_after.hold {hold}",
                        worst.total + hold
                    )),
                ));
            }
        }
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
        if let Some(worst) = self.worst
            && !worst.schedule.critical_path.is_empty()
        {
            let assumed: Vec<&str> = worst
                .schedule
                .critical_path
                .iter()
                .filter(|id| worst.steps.iter().any(|s| &s.id == *id && s.assumed))
                .map(String::as_str)
                .collect();
            let mut how = Text::from(
                "The worst case lets every attempt run into its timeout, uses every retry (with its delay) and runs the contingency branch a failing step names before its dependants start",
            );
            if assumed.is_empty() {
                how.push_plain(".");
            } else {
                how.push_plain("; steps without a timeout are counted at their expected time (");
                how = how
                    .append(capped(assumed.iter().copied(), |id| Text::new().code(id)))
                    .plain("), so it may be worse still.");
            }
            body.push(Block::Note(Tone::Info, how));
            if let Some(d) = stated {
                body.push(match minus(d, worst.total) {
                    Some(spare) => Block::Note(
                        Tone::Good,
                        Text::from(format!(
                            "Even the worst case ({}) fits in the expected duration ({d}), with {spare} to spare.",
                            worst.total
                        )),
                    ),
                    None => Block::Note(
                        Tone::Warning,
                        Text::from(format!(
                            "The worst case ({}) is longer than the expected duration ({d}): on a bad night, plan for {}.",
                            worst.total, worst.total
                        )),
                    ),
                });
            }
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
        if let (Some(w), Some(worst)) = (p.window.given(), self.worst) {
            let start = p
                .execution
                .given()
                .and_then(|e| e.start_within)
                .unwrap_or_default();
            let needed = start + worst.total + hold;
            let mut parts = Vec::new();
            if !start.is_zero() {
                parts.push(format!("starting within {start}"));
            }
            parts.push(format!("the worst case {}", worst.total));
            if !hold.is_zero() {
                parts.push(format!("verify_after.hold {hold}"));
            }
            let what = if parts.len() == 1 {
                format!("The worst case ({needed})")
            } else {
                let mut first = parts.join(" plus ");
                first[..1].make_ascii_uppercase();
                format!("{first} makes {needed}, which")
            };
            body.push(match minus(w.closes_after, needed) {
                Some(spare) => Block::Note(
                    Tone::Good,
                    Text::from(format!(
                        "{what} fits in the {} window when the decision comes by {spare} after the deploy.",
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

/// One step's worst cost in words: "2 × 12m + 1 × 30s between = 24m30s", "15m, then
/// contingency `restore-db` 45m = 1h", "5m, no timeout: counted at its expected time".
fn worst_cost<'a>(context: &Context<'a>, c: &'a WorstStep) -> Text<'a> {
    let retries = c.attempts.saturating_sub(1);
    let mut text = Text::from(if retries == 0 {
        c.attempt.to_string()
    } else {
        format!(
            "{} × {} + {retries} × {} between",
            c.attempts, c.attempt, c.retry_delay
        )
    });
    if c.assumed {
        text.push_plain(", no timeout: counted at its expected time");
    }
    if let Some(b) = &c.branch {
        text = text
            .plain(", then contingency ")
            .append(context.contingency_ref(&b.name))
            .plain(format!(" {}", b.total));
    }
    if retries > 0 || c.branch.is_some() {
        text.push_plain(format!(" = {}", c.total));
    }
    text
}
