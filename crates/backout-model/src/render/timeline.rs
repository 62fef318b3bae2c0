//! The procedure's ideal schedule drawn as an SVG Gantt chart: one bar per step from its earliest
//! start for its expected time, the critical path highlighted, vertical limit lines for
//! `expected_duration` and for the window, and a time axis with round tick labels.
//!
//! Drawing is linear in the number of steps (one row each, no per-pair work), so a 5,000-step
//! plan draws in milliseconds. Every plan string is escaped; colours are presentation attributes,
//! so the chart looks the same standalone and embedded in the HTML page. It must not compute the
//! schedule differently from lint: it draws [`Schedule`] as given.

use std::fmt::Write as _;

use super::html::escape;
use crate::duration::Duration;
use crate::plan::{Answer, Plan, StepKind};
use crate::schedule::Schedule;

pub(super) const WIDTH: f64 = 1000.0;
/// Step labels sit left of this x; the plot starts here.
pub(super) const PLOT_X: f64 = 220.0;
/// Room right of the plot for the duration label of the last bar.
pub(super) const RIGHT: f64 = 90.0;
const ROW: f64 = 20.0;
pub(super) const BAR: f64 = 12.0;
pub(super) const LABEL_CHARS: usize = 30;

pub(super) const CRITICAL: &str = "#c0392b";
pub(super) const NORMAL: &str = "#4a7ab5";
pub(super) const UNKNOWN: &str = "#7f8c8d";
pub(super) const EXPECTED_LINE: &str = "#d35400";
const WINDOW_LINE: &str = "#7d3c98";
pub(super) const INK: &str = "#1d232b";
pub(super) const MUTED: &str = "#5b6470";
pub(super) const GRID: &str = "#e3e7eb";

/// Tick spacings to choose from, in milliseconds.
const STEPS_MS: &[u64] = &[
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
];
/// At most this many tick intervals on the axis.
const MAX_TICKS: u64 = 10;

/// A vertical limit line.
struct Limit {
    at: Duration,
    colour: &'static str,
    dash: &'static str,
    label: String,
}

/// Draws the chart. `standalone` adds the XML namespace a separate `.svg` file needs; HTML does
/// not need it.
pub(crate) fn chart(plan: &Plan, schedule: &Schedule, standalone: bool) -> String {
    let steps = match &plan.procedure {
        Answer::NotApplicable(reason) => {
            return message(
                &format!(
                    "No timeline: the procedure does not apply ({}).",
                    reason.trim()
                ),
                standalone,
            );
        }
        Answer::Given(p) if p.steps.is_empty() => {
            return message("No timeline: the procedure has no steps.", standalone);
        }
        Answer::Given(p) => &p.steps,
    };

    let mut limits = Vec::new();
    if let Answer::Given(d) = plan.expected_duration {
        limits.push(Limit {
            at: d,
            colour: EXPECTED_LINE,
            dash: "6 4",
            label: format!("expected duration {d}"),
        });
    }
    let window = plan.window.given().map(|w| w.closes_after);
    let start_within = plan.execution.given().and_then(|e| e.start_within);
    if let (Some(w), Some(s)) = (window, start_within) {
        let at = Duration::from_millis(w.as_millis().saturating_sub(s.as_millis()));
        limits.push(Limit {
            at,
            colour: WINDOW_LINE,
            dash: "2 3",
            label: format!("window limit {at} ({w} window − {s} to start)"),
        });
    }

    // The scale covers the schedule and the expected duration. A window limit far beyond both
    // would squash every bar into a sliver, so it is then named at the edge instead of drawn.
    let mut domain = schedule.total.as_millis().max(1_000);
    if let Some(d) = plan.expected_duration.given() {
        domain = domain.max(d.as_millis());
    }
    let mut off_chart = Vec::new();
    let near = domain.saturating_mul(3) / 2;
    limits.retain(|l| {
        if l.at.as_millis() <= near {
            true
        } else {
            off_chart.push(format!("{} is beyond the right edge", l.label));
            false
        }
    });
    for l in &limits {
        domain = domain.max(l.at.as_millis());
    }
    let (step, ticks) = axis(domain);
    let axis_max = (ticks * step) as f64;
    let plot_w = WIDTH - PLOT_X - RIGHT;
    let x = |d: Duration| PLOT_X + d.as_millis() as f64 / axis_max * plot_w;

    let mut out = String::with_capacity(512 + steps.len() * 420);
    let mut legend = Legend::new();
    legend.swatch(CRITICAL, "critical path");
    legend.swatch(NORMAL, "other step");
    if steps.iter().any(|s| s.expected.is_none()) {
        legend.marker("no estimate");
    }
    for l in &limits {
        legend.line(l.colour, l.dash, &l.label);
    }
    let top = legend.height() + 36.0;
    let rows_end = top + steps.len() as f64 * ROW;
    let bottom_axis = steps.len() > 25;
    let mut height = rows_end + 12.0 + 16.0 * (limits.len() + off_chart.len()) as f64;
    if bottom_axis {
        height += 20.0;
    }
    let height = height.ceil();

    let critical_count = schedule.slots.iter().filter(|s| s.critical).count();
    let _ = write!(
        out,
        r#"<svg{ns} class="timeline-chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="timeline-title" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="12">"#,
        ns = if standalone {
            r#" xmlns="http://www.w3.org/2000/svg""#
        } else {
            ""
        },
    );
    let _ = write!(
        out,
        r#"<title id="timeline-title">Timeline of the backout procedure: {} steps, {} on the critical path, {} in total if every step takes its expected time</title>"#,
        steps.len(),
        critical_count,
        schedule.total
    );
    out.push_str(&legend.out);

    // Grid and axis.
    let axis_y = top - 8.0;
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">after the run starts</text>"#,
        PLOT_X - 8.0,
        axis_y - 6.0
    );
    for i in 0..=ticks {
        let at = Duration::from_millis(i * step);
        let tx = x(at);
        let _ = write!(
            out,
            r#"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{rows_end:.1}" stroke="{GRID}"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            axis_y - 6.0,
            tick_label(at)
        );
        if bottom_axis {
            let _ = write!(
                out,
                r#"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
                rows_end + 14.0,
                tick_label(at)
            );
        }
    }

    // One row per step, in written order (the numbers match the step table).
    for (i, s) in steps.iter().enumerate() {
        let y = top + i as f64 * ROW;
        let slot = schedule.slots.get(i).filter(|slot| slot.id == s.id);
        let start = slot.map_or(Duration::ZERO, |slot| slot.start);
        let critical = slot.is_some_and(|slot| slot.critical);
        if i % 2 == 1 {
            let _ = write!(
                out,
                r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW}" fill="#f6f8fa"/>"##,
                px(y)
            );
        }
        let label = truncate(&format!("{}. {}", i + 1, s.id), LABEL_CHARS);
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" fill="{INK}"{}>{}</text>"#,
            px(PLOT_X - 8.0),
            px(y + ROW / 2.0 + 4.0),
            if critical {
                r#" font-weight="bold""#
            } else {
                ""
            },
            escape(&label)
        );
        let mut notes = String::new();
        if matches!(s.kind, StepKind::Manual { .. }) {
            notes.push_str(" · by hand");
        }
        if let Some(c) = &s.when_checkpoint {
            notes.push_str(&format!(" · only if {c}"));
        }
        let tooltip = match s.expected {
            Some(d) => format!("{}: starts at +{start}, expected {d}{notes}", s.name()),
            None => format!("{}: starts at +{start}, no estimate{notes}", s.name()),
        };
        let bx = x(start);
        match s.expected {
            Some(d) => {
                let w = (x(start + d) - bx).max(2.0);
                let (class, fill) = if critical {
                    ("bar critical", CRITICAL)
                } else {
                    ("bar", NORMAL)
                };
                let text = format!("{d}{notes}");
                // Beside the bar's end, or before its start when it would run off the chart.
                let (tx, anchor) = if bx + w + 4.0 + text_width(&text) > WIDTH {
                    (bx - 4.0, "end")
                } else {
                    (bx + w + 4.0, "start")
                };
                let _ = write!(
                    out,
                    r#"<rect class="{class}" data-step="{}" x="{}" y="{}" width="{}" height="{BAR}" rx="2" fill="{fill}"><title>{}</title></rect><text x="{}" y="{}" text-anchor="{anchor}" fill="{MUTED}">{}</text>"#,
                    escape(&s.id),
                    px(bx),
                    px(y + (ROW - BAR) / 2.0),
                    px(w),
                    escape(&tooltip),
                    px(tx),
                    px(y + ROW / 2.0 + 4.0),
                    escape(&text),
                );
            }
            None => {
                let class = if critical {
                    "marker critical"
                } else {
                    "marker"
                };
                let _ = write!(
                    out,
                    r#"<rect class="{class}" data-step="{}" x="{}" y="{}" width="3" height="{}" fill="{UNKNOWN}"><title>{}</title></rect><text x="{}" y="{}" fill="{MUTED}" font-style="italic">no estimate{}</text>"#,
                    escape(&s.id),
                    px(bx - 1.5),
                    px(y + 2.0),
                    px(ROW - 4.0),
                    escape(&tooltip),
                    px(bx + 5.0),
                    px(y + ROW / 2.0 + 4.0),
                    escape(&notes),
                );
            }
        }
    }

    // Limit lines over the rows, named below them.
    let mut label_y = rows_end + if bottom_axis { 32.0 } else { 16.0 };
    for l in &limits {
        let lx = x(l.at);
        let anchor = if lx > WIDTH - 200.0 {
            "end"
        } else if lx < PLOT_X + 100.0 {
            "start"
        } else {
            "middle"
        };
        let _ = write!(
            out,
            r#"<line class="limit" x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/><text x="{lx:.1}" y="{label_y:.1}" text-anchor="{anchor}" fill="{}">{}</text>"#,
            axis_y,
            label_y - 12.0,
            l.colour,
            l.dash,
            l.colour,
            escape(&l.label)
        );
        label_y += 16.0;
    }
    for note in &off_chart {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{label_y:.1}" text-anchor="end" fill="{WINDOW_LINE}">{} →</text>"#,
            WIDTH - 4.0,
            escape(note)
        );
        label_y += 16.0;
    }
    out.push_str("</svg>");
    out
}

/// A round tick spacing (ms) for an axis covering `domain` ms, and how many ticks it takes.
pub(super) fn axis(domain: u64) -> (u64, u64) {
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|s| domain.div_ceil(*s) <= MAX_TICKS)
        .unwrap_or_else(|| {
            // Beyond a week per tick: round the spacing up to whole weeks.
            let week = 604_800_000;
            domain.div_ceil(MAX_TICKS).div_ceil(week) * week
        });
    (step, domain.div_ceil(step).max(1))
}

/// The legend row(s) at the top, wrapped to the chart width.
pub(super) struct Legend {
    pub(super) out: String,
    x: f64,
    y: f64,
}

impl Legend {
    pub(super) fn new() -> Legend {
        Legend {
            out: String::new(),
            x: 8.0,
            y: 14.0,
        }
    }

    fn room(&mut self, label: &str) -> (f64, f64) {
        let w = 26.0 + text_width(label) + 18.0;
        if self.x + w > WIDTH && self.x > 8.0 {
            self.x = 8.0;
            self.y += 18.0;
        }
        let at = (self.x, self.y);
        self.x += w;
        at
    }

    pub(super) fn text(&mut self, x: f64, y: f64, label: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{:.1}" y="{:.1}" fill="{INK}">{}</text>"#,
            x + 24.0,
            y + 4.0,
            escape(label)
        );
    }

    pub(super) fn swatch(&mut self, colour: &str, label: &str) {
        let (x, y) = self.room(label);
        let _ = write!(
            self.out,
            r#"<rect x="{x:.1}" y="{:.1}" width="18" height="{BAR}" rx="2" fill="{colour}"/>"#,
            y - BAR / 2.0
        );
        self.text(x, y, label);
    }

    pub(super) fn marker(&mut self, label: &str) {
        let (x, y) = self.room(label);
        let _ = write!(
            self.out,
            r#"<rect x="{:.1}" y="{:.1}" width="3" height="16" fill="{UNKNOWN}"/>"#,
            x + 7.5,
            y - 8.0
        );
        self.text(x, y, label);
    }

    pub(super) fn line(&mut self, colour: &str, dash: &str, label: &str) {
        let (x, y) = self.room(label);
        let _ = write!(
            self.out,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            x + 9.0,
            y - 8.0,
            x + 9.0,
            y + 8.0
        );
        self.text(x, y, label);
    }

    pub(super) fn height(&self) -> f64 {
        self.y + 8.0
    }
}

/// A chart that only says why there is nothing to draw.
fn message(text: &str, standalone: bool) -> String {
    format!(
        r#"<svg{} class="timeline-chart" viewBox="0 0 {WIDTH} 40" width="{WIDTH}" height="40" role="img" font-family="system-ui, sans-serif" font-size="14"><text x="8" y="25" fill="{MUTED}">{}</text></svg>"#,
        if standalone {
            r#" xmlns="http://www.w3.org/2000/svg""#
        } else {
            ""
        },
        escape(text)
    )
}

/// A coordinate written with one decimal. `{:.1}` on `f64` takes a slow exact path; this is
/// integer arithmetic, which matters at 5,000 rows.
pub(super) struct Px(i64);

pub(super) fn px(v: f64) -> Px {
    Px((v * 10.0).round() as i64)
}

impl std::fmt::Display for Px {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        match abs % 10 {
            0 => write!(f, "{sign}{}", abs / 10),
            tenth => write!(f, "{sign}{}.{tenth}", abs / 10),
        }
    }
}

/// A rough width of `text` at the chart's 12px font; enough to keep labels on the chart.
pub(super) fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.6
}

pub(super) fn tick_label(at: Duration) -> String {
    if at.is_zero() {
        "0".to_string()
    } else {
        at.to_string()
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_spacing_is_round() {
        // 15m of work: 2m ticks (8 intervals) to 16m.
        let domain: u64 = 15 * 60_000;
        let step = STEPS_MS
            .iter()
            .copied()
            .find(|s| domain.div_ceil(*s) <= MAX_TICKS);
        assert_eq!(step, Some(120_000));
    }

    #[test]
    fn coordinates_have_one_decimal() {
        assert_eq!(px(12.34).to_string(), "12.3");
        assert_eq!(px(12.0).to_string(), "12");
        assert_eq!(px(-0.25).to_string(), "-0.3");
        assert_eq!(px(0.04).to_string(), "0");
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
