//! Q1, when a rollback is required and when the deployment is a success: one card per
//! rollback criterion stating its rule in words, the success definition and the monitoring
//! sources the plan measures with (only those).

use super::{
    Context, criterion_anchor, headers, http_check, not_applicable, pass_verb, plural, section,
};
use crate::plan::{Answer, Check, Criterion, NoData, Source};
use crate::render::document::{Block, Section, Text};

impl<'a> Context<'a> {
    pub(super) fn q1_criteria(&self) -> Section<'a> {
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
        // Only the sources something in the plan measures with: a reader should not wonder why
        // an Alertmanager no criterion asks matters to this release.
        let (uses_prometheus, uses_alertmanager) = self.sources_used();
        let mut sources = Vec::new();
        for (name, endpoint, variable) in [
            ("Prometheus", &c.sources.prometheus, "PROMETHEUS_URL"),
            ("Alertmanager", &c.sources.alertmanager, "ALERTMANAGER_URL"),
        ]
        .into_iter()
        .filter(|(name, _, _)| match *name {
            "Prometheus" => uses_prometheus,
            _ => uses_alertmanager,
        }) {
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
        if !sources.is_empty() {
            body.push(Block::Section(section(
                3,
                "q1-sources",
                "Monitoring sources",
                vec![Block::Fields(sources)],
            )));
        }
        section(2, "q1", title, body)
    }

    /// Whether any criterion or step verify queries Prometheus, and whether any criterion asks
    /// Alertmanager.
    fn sources_used(&self) -> (bool, bool) {
        let p = self.plan;
        let criteria = p.criteria.given().map_or(&[][..], |c| &c.rollback_when[..]);
        let mut prometheus = criteria
            .iter()
            .any(|c| matches!(c.source, Source::Prometheus(_)));
        let alertmanager = criteria
            .iter()
            .any(|c| matches!(c.source, Source::Alertmanager { .. }));
        let verifies_prometheus = |steps: &[crate::plan::Step]| {
            steps.iter().any(|s| {
                s.verify
                    .as_ref()
                    .is_some_and(|v| matches!(v.check, Check::Prometheus(_)))
            })
        };
        prometheus = prometheus
            || verifies_prometheus(p.steps())
            || p.contingency
                .given()
                .is_some_and(|cs| cs.iter().any(|c| verifies_prometheus(&c.steps)))
            || p.workarounds
                .given()
                .is_some_and(|ws| ws.iter().any(|w| verifies_prometheus(&w.steps)));
        (prometheus, alertmanager)
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
                    described(c, p)
                )),
                (Some(p), None) => Text::from(format!(
                    "when it {}; otherwise inconclusive",
                    described(c, p)
                )),
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
            if c.shadow {
                Text::new().strong("shadow").plain(
                    " — measured and reported only: it never trips a rollback or decides; \
                     status and reports show how it would have voted",
                )
            } else if c.automatic {
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
            (Source::Prometheus(_), Some(f)) => subject().plain(" ").plain(described(c, f)),
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
        let cadence = match c.trips_after_total {
            Some(total) if c.trips_after >= total => format!(
                " for {total} failing measurements in all (in a row or not) within the window, \
                 measured every {}",
                c.every
            ),
            Some(total) => format!(
                "{cadence}, or for {total} failing measurements in all (in a row or not) within \
                 the window"
            ),
            None => cadence,
        };
        let delay = if c.delay.is_zero() {
            String::new()
        } else {
            format!(" (after a {} warm-up)", c.delay)
        };
        let opening = if c.shadow {
            "Shadow criterion (never decides): a rollback would be required when "
        } else {
            "Rollback is required when "
        };
        Text::from(opening)
            .append(failing)
            .plain(format!("{cadence}{delay}."))
    }
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

/// A condition in words, its baseline (if any) named by what it is: "is above 1.5× its value
/// 1d earlier".
fn described(c: &Criterion, cond: crate::condition::Condition) -> String {
    match (&c.baseline, cond.is_relative()) {
        (Some(b), true) => cond.describe_baseline("×", &b.words()),
        _ => cond.describe(),
    }
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
}
