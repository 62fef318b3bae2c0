//! Conditions on a measured number: `> 0.02`, `>= 0.95`, `== 0`, or relative to the criterion's
//! baseline (its own past value): `> 1.5x baseline`, `> baseline + 0.01`, `< baseline - 3`.
//! Parsed by hand, never evaluated as code.

use std::fmt;

use schemars::JsonSchema;

use crate::decode::{Decode, Decoder};
use crate::yaml::{Node, Value};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    const ALL: [(&'static str, Op); 6] = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];

    pub fn symbol(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(s, _)| s)
    }
}

/// How a baseline condition's number combines with the baseline value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Relative {
    /// `1.5x baseline`: the number times the baseline.
    Times,
    /// `baseline + 0.01` / `baseline - 0.01`: the baseline plus the (signed) number.
    Plus,
}

/// `value OP threshold`, or `value OP threshold×baseline` / `value OP baseline+threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub threshold: f64,
    /// Set when the threshold is relative to the criterion's baseline.
    pub relative: Option<Relative>,
}

impl Condition {
    /// An absolute condition, `value OP threshold`.
    pub fn absolute(op: Op, threshold: f64) -> Condition {
        Condition {
            op,
            threshold,
            relative: None,
        }
    }

    pub fn parse(text: &str) -> Option<Condition> {
        let text = text.trim();
        let (symbol, op) = Op::ALL.iter().find(|(s, _)| text.starts_with(s))?;
        let rest = text[symbol.len()..].trim();
        let (threshold, relative) = match Condition::parse_relative(rest) {
            Some((t, r)) => (t, Some(r)),
            None => (rest.parse::<f64>().ok()?, None),
        };
        threshold.is_finite().then_some(Condition {
            op: *op,
            threshold,
            relative,
        })
    }

    /// `1.5x baseline`, `baseline`, `baseline + 0.01`, `baseline - 0.01`.
    fn parse_relative(text: &str) -> Option<(f64, Relative)> {
        if let Some(tail) = text.strip_prefix("baseline") {
            let tail = tail.trim();
            if tail.is_empty() {
                return Some((0.0, Relative::Plus));
            }
            let (sign, number) = if let Some(n) = tail.strip_prefix('+') {
                (1.0, n)
            } else {
                (-1.0, tail.strip_prefix('-')?)
            };
            let number = number.trim();
            // `baseline + -1` and `baseline - +1` are typos, not intent.
            if number.starts_with(['+', '-']) {
                return None;
            }
            return Some((sign * number.parse::<f64>().ok()?, Relative::Plus));
        }
        let factor = text.strip_suffix("baseline")?.trim_end();
        let factor = factor
            .strip_suffix(['x', '×', '*'])
            .unwrap_or(factor)
            .trim_end();
        let factor: f64 = factor.parse().ok()?;
        Some((factor, Relative::Times))
    }

    /// Whether the condition compares with the criterion's baseline.
    pub fn is_relative(&self) -> bool {
        self.relative.is_some()
    }

    /// The number the value is compared with, given the baseline; `None` when the condition is
    /// relative and there is no baseline value (or it is NaN).
    pub fn bound(&self, baseline: Option<f64>) -> Option<f64> {
        match self.relative {
            None => Some(self.threshold),
            Some(rel) => {
                let b = baseline.filter(|b| !b.is_nan())?;
                Some(match rel {
                    Relative::Times => self.threshold * b,
                    Relative::Plus => b + self.threshold,
                })
            }
        }
    }

    /// Whether a measured value satisfies the condition; a relative condition without a
    /// baseline value holds for nothing (use [`Condition::bound`] to tell that case apart).
    pub fn holds(&self, value: f64) -> bool {
        self.holds_against(value, None)
    }

    /// Whether a measured value satisfies the condition given the baseline value. NaN satisfies
    /// nothing, nor does a relative condition without a baseline.
    pub fn holds_against(&self, value: f64, baseline: Option<f64>) -> bool {
        let Some(t) = self.bound(baseline) else {
            return false;
        };
        if value.is_nan() {
            return false;
        }
        match self.op {
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }

    /// The threshold in words: `0.02`, `1.5x baseline`, `baseline + 0.01` (with `times` and
    /// `baseline` as the words for the factor sign and the baseline).
    fn threshold_words(&self, times: &str, baseline: &str) -> String {
        let n = format_number(self.threshold);
        match self.relative {
            None => n,
            Some(Relative::Times) => format!("{n}{times} {baseline}"),
            Some(Relative::Plus) if self.threshold == 0.0 => baseline.into(),
            Some(Relative::Plus) if self.threshold < 0.0 => {
                format!("{baseline} - {}", format_number(-self.threshold))
            }
            Some(Relative::Plus) => format!("{baseline} + {n}"),
        }
    }

    /// Plain words for the rendered document: "is above 0.02", "is above 1.5x baseline".
    pub fn describe(&self) -> String {
        self.describe_words(self.threshold_words("x", "baseline"))
    }

    /// Like [`Condition::describe`], with the baseline named in words: given "×" and "its value
    /// 1d earlier", "is above 1.5× its value 1d earlier".
    pub fn describe_baseline(&self, times: &str, baseline: &str) -> String {
        self.describe_words(self.threshold_words(times, baseline))
    }

    fn describe_words(&self, t: String) -> String {
        match self.op {
            Op::Gt => format!("is above {t}"),
            Op::Ge => format!("is {t} or more"),
            Op::Lt => format!("is below {t}"),
            Op::Le => format!("is {t} or less"),
            Op::Eq => format!("equals {t}"),
            Op::Ne => format!("is not {t}"),
        }
    }

    /// Points that separate every region two conditions can draw on the number line.
    /// Only meaningful when both are absolute or both relative in the same way.
    fn probes(a: &Condition, b: &Condition) -> Vec<f64> {
        let mut points = vec![-1e300, 1e300, (a.threshold + b.threshold) / 2.0];
        for t in [a.threshold, b.threshold] {
            let delta = t.abs().max(1.0) * 1e-9;
            points.extend([t, t - delta, t + delta]);
        }
        points
    }

    /// Whether the two conditions can be compared on one number line: both absolute, or both
    /// `baseline ± n` (then the baseline shifts both alike). Factors scale differently with a
    /// negative baseline, so they are not compared.
    fn comparable(a: &Condition, b: &Condition) -> bool {
        matches!(
            (a.relative, b.relative),
            (None, None) | (Some(Relative::Plus), Some(Relative::Plus))
        )
    }

    /// Whether some value passes `passes` without failing `fails` (failing wins). Conditions
    /// that cannot be compared without a baseline value are given the benefit of the doubt.
    pub fn can_pass(passes: &Condition, fails: &Condition) -> bool {
        if !Condition::comparable(passes, fails) {
            return true;
        }
        let (passes, fails) = (passes.frame(), fails.frame());
        Condition::probes(&passes, &fails)
            .into_iter()
            .any(|x| passes.holds(x) && !fails.holds(x))
    }

    /// Whether some value satisfies both conditions (false when they cannot be compared).
    pub fn overlaps(a: &Condition, b: &Condition) -> bool {
        if !Condition::comparable(a, b) {
            return false;
        }
        let (a, b) = (a.frame(), b.frame());
        Condition::probes(&a, &b)
            .into_iter()
            .any(|x| a.holds(x) && b.holds(x))
    }

    /// The condition on the number line relative to a zero baseline (`baseline + n` → `n`).
    fn frame(&self) -> Condition {
        Condition::absolute(self.op, self.threshold)
    }
}

/// Numbers without a trailing `.0`: 0.02, 5, 1e-7.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.op.symbol(),
            self.threshold_words("x", "baseline")
        )
    }
}

impl Decode for Condition {
    const LEAF: bool = true;
    fn expected() -> String {
        "a condition like \"> 0.02\" or \"> 1.5x baseline\"".into()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        let Value::Str(text) = &node.value else {
            decoder.wrong_type(node, &Self::expected());
            return None;
        };
        let parsed = Condition::parse(text);
        if parsed.is_none() {
            decoder.push(
                crate::Diagnostic::error(
                    crate::codes::CONDITION,
                    node.span,
                    format!("invalid condition \"{text}\""),
                )
                .with_help(
                    "write an operator (> >= < <= == !=) and a finite number, quoted: \"> 0.02\"; \
                     or compare with the baseline: \"> 1.5x baseline\", \"> baseline + 0.01\"",
                ),
            );
        }
        parsed
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An operator (> >= < <= == !=) and a number, e.g. \"> 0.02\"; or relative to the criterion's baseline: \"> 1.5x baseline\", \"> baseline + 0.01\", \"< baseline - 3\".",
            "pattern": "^\\s*(>=|<=|==|!=|>|<)\\s*([-+]?[0-9.eE+-]+|[-+]?[0-9.eE+-]+\\s*[x×*]?\\s*baseline|baseline(\\s*[-+]\\s*[0-9.eE+-]+)?)\\s*$",
            "examples": ["> 0.02", ">= 0.95", "> 1.5x baseline", "> baseline + 0.01"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("> 0.02", Op::Gt, 0.02)]
    #[test_case(">=0.95", Op::Ge, 0.95)]
    #[test_case("  <  5 ", Op::Lt, 5.0)]
    #[test_case("<= -1e3", Op::Le, -1000.0)]
    #[test_case("== 0", Op::Eq, 0.0)]
    #[test_case("!= 200", Op::Ne, 200.0)]
    fn parses(text: &str, op: Op, threshold: f64) {
        assert_eq!(
            Condition::parse(text),
            Some(Condition::absolute(op, threshold))
        );
    }

    #[test_case("> 1.5x baseline", Op::Gt, 1.5, Relative::Times, "> 1.5x baseline")]
    #[test_case(">2 * baseline", Op::Gt, 2.0, Relative::Times, "> 2x baseline")]
    #[test_case("< 0.5 baseline", Op::Lt, 0.5, Relative::Times, "< 0.5x baseline")]
    #[test_case("> baseline + 0.01", Op::Gt, 0.01, Relative::Plus, "> baseline + 0.01")]
    #[test_case("<= baseline - 3", Op::Le, -3.0, Relative::Plus, "<= baseline - 3")]
    #[test_case("> baseline", Op::Gt, 0.0, Relative::Plus, "> baseline")]
    fn parses_relative(text: &str, op: Op, threshold: f64, rel: Relative, shown: &str) {
        let c = Condition::parse(text).unwrap();
        assert_eq!(
            c,
            Condition {
                op,
                threshold,
                relative: Some(rel)
            }
        );
        assert_eq!(c.to_string(), shown);
        assert_eq!(Condition::parse(shown), Some(c));
    }

    #[test_case("> 1.5x")]
    #[test_case("> x baseline")]
    #[test_case("> baseline +")]
    #[test_case("> baseline + -1")]
    #[test_case("> baseline * 2")]
    #[test_case("> NaNx baseline")]
    #[test_case("> baselines")]
    fn rejects_relative(text: &str) {
        assert_eq!(Condition::parse(text), None);
    }

    #[test]
    fn relative_needs_a_baseline_value() {
        let c = Condition::parse("> 1.5x baseline").unwrap();
        assert!(c.holds_against(0.031, Some(0.012)));
        assert!(!c.holds_against(0.017, Some(0.012)));
        assert_eq!(c.bound(None), None);
        assert_eq!(c.bound(Some(f64::NAN)), None);
        assert!(!c.holds(1e9));
        let c = Condition::parse("> baseline - 0.5").unwrap();
        assert!(c.holds_against(1.6, Some(2.0)));
        assert!(!c.holds_against(1.5, Some(2.0)));
        assert_eq!(c.describe(), "is above baseline - 0.5");
    }

    #[test]
    fn relative_bands_are_compared_only_when_comparable() {
        let f = Condition::parse("> baseline + 0.01").unwrap();
        let p = Condition::parse("<= baseline").unwrap();
        assert!(Condition::can_pass(&p, &f));
        assert!(!Condition::overlaps(&p, &f));
        let p = Condition::parse("<= baseline + 0.02").unwrap();
        assert!(Condition::overlaps(&p, &f));
        let p = Condition::parse("< 0.5").unwrap();
        assert!(Condition::can_pass(&p, &f));
        assert!(!Condition::overlaps(&p, &f));
    }

    #[test_case("0.02")]
    #[test_case("> ")]
    #[test_case("=> 1")]
    #[test_case("> NaN")]
    #[test_case("> inf")]
    #[test_case("> 1; rm -rf /")]
    fn rejects(text: &str) {
        assert_eq!(Condition::parse(text), None);
    }

    #[test_case("> 0.02", "<= 0.005", true, false)]
    #[test_case("> 0.02", ">= 0.01", true, true)]
    #[test_case("> 0", ">= 1", false, true)]
    #[test_case("!= 0", "== 0", true, false)]
    #[test_case("< 5", "== 5", true, false)]
    #[test_case("<= 5", "== 5", false, true)]
    fn relations(fails: &str, passes: &str, can_pass: bool, overlaps: bool) {
        let f = Condition::parse(fails).unwrap();
        let p = Condition::parse(passes).unwrap();
        assert_eq!(Condition::can_pass(&p, &f), can_pass);
        assert_eq!(Condition::overlaps(&p, &f), overlaps);
    }

    #[test]
    fn nan_satisfies_nothing() {
        assert!(!Condition::parse("!= 0").unwrap().holds(f64::NAN));
    }
}
