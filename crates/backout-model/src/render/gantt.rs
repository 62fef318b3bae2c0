//! A run drawn as an SVG Gantt chart: per step, the bar the plan expected (from the ideal
//! schedule, as the plan's timeline draws it) above the bar of what actually happened (each
//! attempt from its start, coloured by how the step ended), retries and contingency steps marked,
//! the critical path in bold red. The same layout, axis and legend as [`super::timeline`].
//!
//! Pure: the caller turns its step records into [`ActualStep`]s (times in milliseconds after the
//! run started); no clock, no store. Every plan or run string is escaped.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::html::escape;
use super::timeline::{
    BAR, CRITICAL, EXPECTED_LINE, GRID, INK, LABEL_CHARS, Legend, MUTED, NORMAL, PLOT_X, RIGHT,
    WIDTH, axis, px, text_width, tick_label, truncate,
};
use crate::duration::Duration;
use crate::plan::{Plan, Step};
use crate::schedule::Schedule;

const ROW: f64 = 28.0;
const EXPECTED_BAR: f64 = 7.0;
const SUCCEEDED: &str = "#27ae60";
const FAILED: &str = "#c0392b";
const RETRIED: &str = "#e59866";
const ACTIVE: &str = "#f39c12";
const SKIPPED: &str = "#95a5a6";
const BRANCH: &str = "#7d3c98";

/// What happened to one step of a run, in milliseconds after the run started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActualStep {
    pub id: String,
    /// The step's state as the store names it (`succeeded`, `failed`, `running`, …).
    pub state: String,
    /// When each attempt started, first attempt first; empty when the step never started.
    pub attempts: Vec<u64>,
    /// When the last attempt ended, if it did.
    pub finished: Option<u64>,
}

/// The headline of a run's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFacts {
    /// E.g. `Run run-… — checkout 1.4.2`.
    pub heading: String,
    /// One line each: kind, state, who, how long against the promise.
    pub lines: Vec<String>,
}

/// Where a step's expected bar starts, whether it is on its critical path, and the contingency
/// branch or workaround it belongs to, if any.
struct Expected {
    start: Duration,
    length: Option<Duration>,
    critical: bool,
    branch: Option<String>,
}

/// The expected placement of every step of the plan. The procedure's steps are placed by the
/// plan's ideal schedule from the run's start; a contingency branch's or workaround's steps by
/// their own schedule from when the first of them actually started.
fn expectations(plan: &Plan, actual: &[ActualStep]) -> HashMap<String, Expected> {
    let first_start: HashMap<&str, u64> = actual
        .iter()
        .filter_map(|a| Some((a.id.as_str(), *a.attempts.first()?)))
        .collect();
    let mut groups: Vec<(Option<String>, &[Step])> = vec![(None, plan.steps())];
    for c in plan.contingency.given().into_iter().flatten() {
        groups.push((Some(format!("contingency {}", c.id)), &c.steps));
    }
    for w in plan.workarounds.given().into_iter().flatten() {
        groups.push((Some(format!("workaround {}", w.id)), &w.steps));
    }
    let mut out = HashMap::new();
    for (branch, steps) in groups {
        let schedule = Schedule::of_steps(steps);
        let base = if branch.is_none() {
            0
        } else {
            steps
                .iter()
                .filter_map(|s| first_start.get(s.id.as_str()).copied())
                .min()
                .unwrap_or(0)
        };
        for (step, slot) in steps.iter().zip(&schedule.slots) {
            out.entry(step.id.clone()).or_insert(Expected {
                start: Duration::from_millis(base) + slot.start,
                length: step.expected,
                critical: slot.critical,
                branch: branch.clone(),
            });
        }
    }
    out
}

fn state_colour(state: &str) -> &'static str {
    match state {
        "succeeded" => SUCCEEDED,
        "failed" | "aborted" | "in_doubt" => FAILED,
        "skipped" => SKIPPED,
        _ => ACTIVE,
    }
}

/// The run's Gantt chart, for embedding in HTML. `elapsed` is how long the run has been going
/// (or took): the end of a step still running.
pub fn run_gantt(plan: &Plan, actual: &[ActualStep], elapsed: Duration) -> String {
    if actual.is_empty() {
        return format!(
            r#"<svg class="run-gantt" viewBox="0 0 {WIDTH} 40" width="{WIDTH}" height="40" role="img" font-family="system-ui, sans-serif" font-size="14"><text x="8" y="25" fill="{MUTED}">No steps to draw: the run has no step records.</text></svg>"#
        );
    }
    let expected = expectations(plan, actual);
    let end_of = |a: &ActualStep| a.finished.unwrap_or(elapsed.as_millis());

    let mut domain = elapsed.as_millis().max(1_000);
    for a in actual {
        if a.attempts.is_empty() {
            continue;
        }
        domain = domain.max(end_of(a));
    }
    for e in expected.values() {
        domain = domain.max((e.start + e.length.unwrap_or(Duration::ZERO)).as_millis());
    }
    let promise = plan.expected_duration.given().copied();
    if let Some(d) = promise {
        domain = domain.max(d.as_millis());
    }
    let (step, ticks) = axis(domain);
    let axis_max = (ticks * step) as f64;
    let plot_w = WIDTH - PLOT_X - RIGHT;
    let x = |ms: u64| PLOT_X + ms as f64 / axis_max * plot_w;

    let mut legend = Legend::new();
    legend.swatch("#e8b4ae", "expected (critical path)");
    legend.swatch("#b7c9e0", "expected (other step)");
    legend.swatch(SUCCEEDED, "actual: succeeded");
    legend.swatch(FAILED, "actual: failed");
    legend.swatch(RETRIED, "attempt that was retried");
    legend.swatch(ACTIVE, "running or waiting");
    legend.swatch(SKIPPED, "skipped");
    legend.swatch(BRANCH, "contingency / workaround step");
    if let Some(d) = promise {
        legend.line(EXPECTED_LINE, "6 4", &format!("expected duration {d}"));
    }
    let top = legend.height() + 36.0;
    let rows_end = top + actual.len() as f64 * ROW;
    let height = (rows_end + 16.0).ceil();

    let critical: Vec<&str> = actual
        .iter()
        .filter(|a| {
            expected
                .get(&a.id)
                .is_some_and(|e| e.critical && e.branch.is_none())
        })
        .map(|a| a.id.as_str())
        .collect();
    let retried = actual.iter().filter(|a| a.attempts.len() > 1).count();
    let mut out = String::with_capacity(1024 + actual.len() * 700);
    let _ = write!(
        out,
        r#"<svg class="run-gantt" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="gantt-title" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<title id="gantt-title">The run against its plan: {} steps, {} retried, {} in total; critical path {}</title>"#,
        actual.len(),
        retried,
        elapsed,
        escape(&critical.join(" → "))
    );
    out.push_str(&legend.out);

    let axis_y = top - 8.0;
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="end" fill="{MUTED}">after the run started</text>"#,
        px(PLOT_X - 8.0),
        px(axis_y - 6.0)
    );
    for i in 0..=ticks {
        let tx = x(i * step);
        let _ = write!(
            out,
            r#"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="{GRID}"/><text x="{0}" y="{3}" text-anchor="middle" fill="{MUTED}">{4}</text>"#,
            px(tx),
            px(axis_y),
            px(rows_end),
            px(axis_y - 6.0),
            tick_label(Duration::from_millis(i * step))
        );
    }

    for (i, a) in actual.iter().enumerate() {
        let y = top + i as f64 * ROW;
        let e = expected.get(&a.id);
        let is_critical = e.is_some_and(|e| e.critical && e.branch.is_none());
        let branch = e.and_then(|e| e.branch.as_deref());
        if i % 2 == 1 {
            let _ = write!(
                out,
                r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW}" fill="#f6f8fa"/>"##,
                px(y)
            );
        }
        let mut row_class = String::from("row");
        if is_critical {
            row_class.push_str(" critical");
        }
        if branch.is_some() {
            row_class.push_str(" contingency");
        }
        if a.attempts.len() > 1 {
            row_class.push_str(" retried");
        }
        let _ = write!(
            out,
            r#"<g class="{row_class}" data-step="{}">"#,
            escape(&a.id)
        );
        let label = if branch.is_some() {
            format!("↳ {}", a.id)
        } else {
            a.id.clone()
        };
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" fill="{}"{}>{}</text>"#,
            px(PLOT_X - 8.0),
            px(y + ROW / 2.0 + 4.0),
            if branch.is_some() { BRANCH } else { INK },
            if is_critical {
                r#" font-weight="bold""#
            } else {
                ""
            },
            escape(&truncate(&label, LABEL_CHARS))
        );
        if is_critical {
            let _ = write!(
                out,
                r#"<rect class="critical-mark" x="{}" y="{}" width="4" height="{}" fill="{CRITICAL}"/>"#,
                px(PLOT_X - 4.0),
                px(y + 3.0),
                px(ROW - 6.0)
            );
        }
        if branch.is_some() {
            let _ = write!(
                out,
                r#"<rect class="branch-mark" x="{}" y="{}" width="4" height="{}" fill="{BRANCH}"/>"#,
                px(PLOT_X - 4.0),
                px(y + 3.0),
                px(ROW - 6.0)
            );
        }

        // The expected bar, thin, above.
        if let Some(e) = e
            && let Some(len) = e.length
        {
            let bx = x(e.start.as_millis());
            let w = (x((e.start + len).as_millis()) - bx).max(2.0);
            let (fill, stroke) = if is_critical {
                ("#e8b4ae", CRITICAL)
            } else {
                ("#b7c9e0", NORMAL)
            };
            let _ = write!(
                out,
                r#"<rect class="expected" x="{}" y="{}" width="{}" height="{EXPECTED_BAR}" rx="1" fill="{fill}" stroke="{stroke}" stroke-width="0.8"><title>{}: expected {len} from +{}</title></rect>"#,
                px(bx),
                px(y + 3.0),
                px(w),
                escape(&a.id),
                e.start
            );
        }

        // The actual bar, one segment per attempt, below.
        let ay = y + 3.0 + EXPECTED_BAR + 2.0;
        let end = end_of(a);
        for (n, start) in a.attempts.iter().enumerate() {
            let last = n + 1 == a.attempts.len();
            let stop = if last {
                end
            } else {
                a.attempts[n + 1].max(*start)
            };
            let (class, fill) = if last {
                ("actual", state_colour(&a.state))
            } else {
                ("actual attempt-retried", RETRIED)
            };
            let fill = if last && branch.is_some() && a.state == "succeeded" {
                BRANCH
            } else {
                fill
            };
            let bx = x(*start);
            let w = (x(stop.max(*start)) - bx).max(2.0);
            let _ = write!(
                out,
                r#"<rect class="{class}" data-attempt="{}" x="{}" y="{}" width="{}" height="{BAR}" rx="2" fill="{fill}"><title>{} attempt {}: +{} for {}{}</title></rect>"#,
                n + 1,
                px(bx),
                px(ay),
                px(w),
                escape(&a.id),
                n + 1,
                Duration::from_millis(*start),
                Duration::from_millis(stop.saturating_sub(*start)),
                escape(&if last {
                    format!(", {}", a.state)
                } else {
                    ", failed and retried".into()
                }),
            );
            if n > 0 {
                let _ = write!(
                    out,
                    r#"<line class="retry-mark" x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="{INK}" stroke-width="1.5"/>"#,
                    px(bx),
                    px(ay - 2.0),
                    px(ay + BAR + 2.0)
                );
            }
        }

        // What the row says in words, right of the furthest bar.
        let mut text = match (a.attempts.first(), a.finished) {
            (None, _) => a.state.replace('_', " "),
            (Some(first), Some(f)) => {
                format!(
                    "{} in {}",
                    a.state,
                    Duration::from_millis(f.saturating_sub(*first))
                )
            }
            (Some(first), None) => format!(
                "{} for {}",
                a.state.replace('_', " "),
                Duration::from_millis(end.saturating_sub(*first))
            ),
        };
        if let Some(len) = e.and_then(|e| e.length) {
            text.push_str(&format!(" (expected {len})"));
        }
        if a.attempts.len() > 1 {
            text.push_str(&format!(" · {} attempts", a.attempts.len()));
        }
        if let Some(b) = branch {
            text.push_str(&format!(" · {b}"));
        }
        let right = e
            .and_then(|e| e.length.map(|l| x((e.start + l).as_millis())))
            .unwrap_or(PLOT_X)
            .max(if a.attempts.is_empty() {
                PLOT_X
            } else {
                x(end)
            });
        // Right of the bars, else left of them; when neither fits, the short words (the full
        // text is the tooltip and in the step table).
        let left = a
            .attempts
            .first()
            .map_or(right, |t| x(*t))
            .min(e.map_or(right, |e| x(e.start.as_millis())));
        let short = if a.attempts.len() > 1 {
            format!(
                "{} · {} attempts",
                a.state.replace('_', " "),
                a.attempts.len()
            )
        } else {
            a.state.replace('_', " ")
        };
        let fits_right = |t: &str| right + 4.0 + text_width(t) <= WIDTH;
        let fits_left = |t: &str| left - 4.0 - text_width(t) >= PLOT_X;
        let (shown, tx, anchor) = if fits_right(&text) {
            (&text, right + 4.0, "start")
        } else if fits_left(&text) {
            (&text, left - 4.0, "end")
        } else if fits_right(&short) {
            (&short, right + 4.0, "start")
        } else if fits_left(&short) {
            (&short, left - 4.0, "end")
        } else {
            (&short, WIDTH - 4.0, "end")
        };
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" fill="{MUTED}"><title>{}</title>{}</text></g>"#,
            px(tx),
            px(y + ROW / 2.0 + 4.0),
            escape(&text),
            escape(shown)
        );
    }

    if let Some(d) = promise {
        let lx = x(d.as_millis());
        let _ = write!(
            out,
            r#"<line class="limit" x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="{EXPECTED_LINE}" stroke-width="2" stroke-dasharray="6 4"/>"#,
            px(lx),
            px(axis_y),
            px(rows_end)
        );
    }
    out.push_str("</svg>");
    out
}

/// A run's report as one self-contained HTML page: its facts, the Gantt chart and the step
/// table (inline CSS, no scripts, no remote assets).
pub fn run_html(plan: &Plan, facts: &RunFacts, actual: &[ActualStep], elapsed: Duration) -> String {
    let chart = run_gantt(plan, actual, elapsed);
    let mut out = String::with_capacity(chart.len() + 4096);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<style>
body{{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d232b;margin:2rem;max-width:1040px}}
h1{{font-size:1.5rem}} .chart{{overflow-x:auto;border:1px solid #e3e7eb;padding:8px;margin:1rem 0}}
svg{{max-width:100%;height:auto}} table{{border-collapse:collapse}} th,td{{border-bottom:1px solid #e3e7eb;padding:4px 10px;text-align:left}}
td.num{{text-align:right}} .muted{{color:#5b6470}}
</style></head><body>
<h1>{}</h1>
<ul>
"#,
        escape(&facts.heading),
        escape(&facts.heading)
    );
    for line in &facts.lines {
        let _ = writeln!(out, "<li>{}</li>", escape(line));
    }
    out.push_str("</ul>\n<h2>Expected against actual</h2>\n<div class=\"chart\">");
    out.push_str(&chart);
    out.push_str("</div>\n<h2>Steps</h2>\n<table><thead><tr><th>step</th><th>state</th><th>attempts</th><th>started</th><th>took</th><th>expected</th></tr></thead><tbody>\n");
    let expected = expectations(plan, actual);
    for a in actual {
        let started = a
            .attempts
            .first()
            .map_or("-".into(), |t| format!("+{}", Duration::from_millis(*t)));
        let took = match (a.attempts.first(), a.finished) {
            (Some(s), Some(f)) => Duration::from_millis(f.saturating_sub(*s)).to_string(),
            _ => "-".into(),
        };
        let exp = expected
            .get(&a.id)
            .and_then(|e| e.length)
            .map_or("-".into(), |d| d.to_string());
        let _ = writeln!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&a.id),
            escape(&a.state),
            a.attempts.len(),
            escape(&started),
            escape(&took),
            escape(&exp)
        );
    }
    out.push_str("</tbody></table>\n<p class=\"muted\">Made by <code>backout report</code>.</p>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"version: 1
release: { service: svc, version: "2.0.0", rollback_to: "1.9.0", environment: test }
owners: { deployment_engineer: owner@example.com }
people: { ops: [ops@example.com] }
criteria: { not_applicable: "unit test" }
window: { not_applicable: "unit test" }
authorization: { not_applicable: "unit test" }
execution: { not_applicable: "unit test" }
procedure:
  steps:
    - { id: a, expected: 1s, run: "true", on_failure: contingency.other }
    - { id: b, needs: [a], expected: 2s, run: "true" }
    - { id: c, needs: [a], expected: 1s, run: "true" }
contingency:
  other:
    description: the other way
    steps:
      - { id: d, expected: 1s, run: "true" }
workarounds: { not_applicable: "unit test" }
expected_duration: 5s
communication: { not_applicable: "unit test" }
testing: { not_applicable: "unit test" }
"#;

    fn step(id: &str, state: &str, attempts: &[u64], finished: Option<u64>) -> ActualStep {
        ActualStep {
            id: id.into(),
            state: state.into(),
            attempts: attempts.to_vec(),
            finished,
        }
    }

    #[test]
    fn rows_mark_the_critical_path_retries_and_the_contingency_and_escape_text() {
        let plan = crate::lint(PLAN).plan.expect("the plan lints");
        let actual = [
            step("a", "failed", &[0], Some(500)),
            step("d", "succeeded", &[600], Some(1_600)),
            step("b", "succeeded", &[1_700, 2_000], Some(4_000)),
            step("c", "<script>&", &[1_700], None),
        ];
        let svg = run_gantt(&plan, &actual, Duration::from_millis(4_500));
        assert!(
            svg.contains(r#"<g class="row critical" data-step="a">"#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"<g class="row critical retried" data-step="b">"#),
            "{svg}"
        );
        assert!(svg.contains(r#"<g class="row" data-step="c">"#), "{svg}");
        assert!(
            svg.contains(r#"<g class="row contingency" data-step="d">"#),
            "{svg}"
        );
        assert!(svg.contains("contingency other"), "{svg}");
        assert!(svg.contains("2 attempts"), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;&amp;"), "{svg}");
        // The contingency's expected bar starts where the branch actually started (+600ms).
        let d = &svg[svg.find(r#"data-step="d""#).expect("row d")..];
        assert!(d.contains("expected 1s from +600ms"), "{d}");
    }

    #[test]
    fn a_run_without_steps_says_so() {
        let plan = crate::lint(PLAN).plan.expect("the plan lints");
        assert!(run_gantt(&plan, &[], Duration::ZERO).contains("no step records"));
    }
}
