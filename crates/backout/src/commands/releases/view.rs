//! How a release's criteria and verdict look in a terminal: a table for `check` and `status`,
//! a live view redrawn in place for `watch` on a terminal, and log lines when the output is a
//! pipe.

use backout_core::criteria::{CriterionStatus, Verdict};
use backout_core::release::{CheckReport, CriterionReport};

use backout_core::time::{left, utc};

fn status_name(status: CriterionStatus) -> &'static str {
    match status {
        CriterionStatus::Pending => "pending",
        CriterionStatus::Passing => "passing",
        CriterionStatus::Failing => "failing",
        CriterionStatus::Erring => "erring",
        CriterionStatus::Inconclusive => "inconclusive",
        CriterionStatus::Tripped => "TRIPPED",
    }
}

/// One line per criterion: status, id, the latest value against its condition, the failing
/// streak, and when it was measured and is next due.
pub fn criterion_line(c: &CriterionReport, now_ms: i64) -> String {
    let reason = c
        .state
        .last_reason
        .as_deref()
        .unwrap_or("no measurement yet");
    let streak = if c.state.consecutive_failures > 0 {
        format!(" ({} failing in a row)", c.state.consecutive_failures)
    } else if c.state.consecutive_errors > 0 {
        format!(" ({} source errors in a row)", c.state.consecutive_errors)
    } else {
        String::new()
    };
    let when = match (c.state.last_measured_ms, c.next_due_ms) {
        (Some(last), Some(next)) if next > now_ms => {
            format!(
                "  [{} ago, next in {}]",
                left(now_ms - last),
                left(next - now_ms + 999)
            )
        }
        (Some(last), _) => format!("  [{} ago]", left(now_ms - last)),
        (None, Some(next)) if next > now_ms => {
            format!("  [first in {}]", left(next - now_ms + 999))
        }
        (None, _) => String::new(),
    };
    // A shadow criterion shows how it would have voted, never as a vote.
    let status = if c.state.shadow {
        format!("shadow:{}", status_name(c.state.status).to_lowercase())
    } else {
        status_name(c.state.status).to_string()
    };
    format!("{status:<13} {:<24} {reason}{streak}{when}\n", c.id)
}

/// The verdict line, with why when it needs a person.
pub fn verdict_line(report: &CheckReport) -> String {
    let mut why: Vec<String> = report
        .criteria
        .iter()
        .filter(|c| {
            matches!(
                (report.verdict, c.state.status),
                (Verdict::RollbackRequired, CriterionStatus::Tripped)
                    | (Verdict::Inconclusive, CriterionStatus::Inconclusive)
                    | (
                        Verdict::Degrading,
                        CriterionStatus::Failing | CriterionStatus::Erring
                    )
            )
        })
        .map(|c| c.id.clone())
        .collect();
    if report.requested && report.verdict == Verdict::RollbackRequired {
        why.insert(0, "a person requested it".into());
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.join(", "))
    };
    let close = match (&report.close_reason, report.verdict) {
        (Some(reason), Verdict::Closed | Verdict::Success) => format!("; window closed: {reason}"),
        _ => String::new(),
    };
    format!("verdict: {}{why}{close}\n", report.verdict.as_str())
}

/// The whole table, each line after `indent`: every criterion (indented two more), then the
/// verdict.
pub fn table(report: &CheckReport, now_ms: i64, indent: &str) -> String {
    let mut out = String::new();
    for c in &report.criteria {
        out.push_str(&format!("{indent}  {}", criterion_line(c, now_ms)));
    }
    if report.criteria.is_empty() {
        out.push_str(&format!("{indent}  (the plan has no rollback criteria)\n"));
    }
    out.push_str(&format!("{indent}{}", verdict_line(report)));
    out
}

/// `watch` on a terminal: the release's header and table, redrawn in place.
#[derive(Default)]
pub struct LiveView {
    lines: usize,
}

impl LiveView {
    /// The text that replaces what was drawn last.
    pub fn frame(&mut self, header: &str, report: &CheckReport, now_ms: i64) -> String {
        let body = format!("{header}\n{}", table(report, now_ms, ""));
        // Move to the start of the previous frame and clear to the end of the screen.
        let mut out = if self.lines > 0 {
            format!("\x1b[{}F\x1b[J", self.lines)
        } else {
            String::new()
        };
        self.lines = body.lines().count();
        out.push_str(&body);
        out
    }
}

/// `watch` into a pipe: one line per criterion measured in this round, then the verdict when it
/// changed.
pub fn log_lines(report: &CheckReport, verdict_changed: bool, now_ms: i64) -> String {
    let mut out = String::new();
    for c in report.criteria.iter().filter(|c| c.measured) {
        out.push_str(&format!("{} {}", utc(now_ms), criterion_line(c, now_ms)));
    }
    if verdict_changed {
        out.push_str(&format!("{} {}", utc(now_ms), verdict_line(report)));
    }
    out
}
