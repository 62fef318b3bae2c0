//! A criterion's recent measurements as a small inline SVG line, with its `fails_if`
//! threshold as a dashed line. Only numbers this module computes go into the SVG, so it can be
//! inserted into the page unescaped.

use std::fmt::Write as _;

use backout_model::render::escape;
/// Width and height of the chart, in SVG units (and CSS pixels).
const WIDTH: f64 = 160.0;
const HEIGHT: f64 = 36.0;
const PAD: f64 = 3.0;

/// The chart of `points` (time in ms, value; `None` for a measurement without a number: no
/// data or a source error, drawn as a gap) with an optional threshold. Empty text when there
/// is nothing to draw.
pub fn sparkline(points: &[(i64, Option<f64>)], threshold: Option<f64>, label: &str) -> String {
    let values: Vec<f64> = points
        .iter()
        .filter_map(|(_, v)| *v)
        .chain(threshold)
        .filter(|v| v.is_finite())
        .collect();
    if points.iter().all(|(_, v)| v.is_none_or(|v| !v.is_finite())) {
        return String::new();
    }
    let (mut low, mut high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    if (high - low).abs() < f64::EPSILON {
        low -= 1.0;
        high += 1.0;
    }
    let first = points.first().map_or(0, |p| p.0);
    let last = points.last().map_or(0, |p| p.0);
    let span = (last - first).max(1) as f64;
    let x = |t: i64| PAD + (t - first) as f64 / span * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD - (v - low) / (high - low) * (HEIGHT - 2.0 * PAD);
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(label)
    );
    if let Some(t) = threshold.filter(|t| t.is_finite()) {
        let _ = write!(
            svg,
            "<line class=\"threshold\" x1=\"0\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#c0392b\" stroke-width=\"1\" stroke-dasharray=\"3 2\"/>",
            y = y(t)
        );
    }
    // One polyline per run of numbers; a measurement without one breaks the line.
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (t, v) in points {
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                if let Some(segment) = segments.last_mut() {
                    segment.push((x(*t), y(v)));
                }
            }
            None => segments.push(Vec::new()),
        }
    }
    for segment in segments.iter().filter(|s| !s.is_empty()) {
        let coordinates: Vec<String> = segment
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/>",
            coordinates.join(" ")
        );
        if let Some((x, y)) = segment.last() {
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"currentColor\"/>"
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_draw_gives_no_chart() {
        assert_eq!(sparkline(&[], Some(5.0), "x"), "");
        assert_eq!(sparkline(&[(0, None), (1, None)], None, "x"), "");
    }

    #[test]
    fn gaps_split_the_line_and_labels_are_escaped() {
        let svg = sparkline(
            &[
                (0, Some(1.0)),
                (1000, None),
                (2000, Some(9.0)),
                (3000, Some(7.0)),
            ],
            Some(5.0),
            "errors <\"x\">",
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("class=\"threshold\""));
        assert!(svg.contains("errors &lt;&quot;x&quot;&gt;"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
