//! A list of steps as the reader follows it: the overview table (start times, the critical path)
//! and one card per step saying who does what, how long it may take, what it checks and what
//! happens on failure. Used for the procedure (Q5) and for contingency branches and workarounds
//! (Q6); the cards are built one at a time through [`CardSource`].

use std::collections::HashMap;

use super::{Context, expectation, http_check, plural, shell_words};
use crate::duration::Duration;
use crate::plan::{Check, HttpRequest, OnFailure, Step, StepKind, Verify, Wait};
use crate::render::document::{Block, CardSource, Row, Section, StepCards, Str, Table, Text};
use crate::schedule::Schedule;

impl<'a> Context<'a> {
    /// The overview table and one card per step.
    /// The overview table, then one card per step. The cards are built while the document is
    /// written ([`CardSource`]), one at a time, so a 5,000-step plan never holds them all.
    pub(super) fn step_list(
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
            OnFailure::Ask => Text::from(
                "ask — the run pauses; a performer retries the step, skips it or aborts the run",
            ),
            OnFailure::Contingency(id) => {
                Text::from("run contingency ").append(self.contingency_ref(id))
            }
        }
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

fn on_failure_short(f: &OnFailure) -> Text<'_> {
    match f {
        OnFailure::Halt => Text::from("halt"),
        OnFailure::Continue => Text::from("continue"),
        OnFailure::Ask => Text::from("ask"),
        OnFailure::Contingency(id) => Text::from("contingency ").code(id),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_variables_follow_the_design() {
        assert_eq!(
            crate::plan::output_variable("find-revision", "revision"),
            "BACKOUT_OUTPUT_FIND_REVISION_REVISION"
        );
    }
}
