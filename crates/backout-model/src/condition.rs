//! Conditions on a measured number: `> 0.02`, `>= 0.95`, `== 0`. Parsed by hand, never evaluated
//! as code.

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

/// `value OP threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub threshold: f64,
}

impl Condition {
    pub fn parse(text: &str) -> Option<Condition> {
        let text = text.trim();
        let (symbol, op) = Op::ALL.iter().find(|(s, _)| text.starts_with(s))?;
        let number = text[symbol.len()..].trim();
        let threshold: f64 = number.parse().ok()?;
        threshold
            .is_finite()
            .then_some(Condition { op: *op, threshold })
    }

    /// Whether a measured value satisfies the condition. NaN satisfies nothing.
    pub fn holds(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        let t = self.threshold;
        match self.op {
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }

    /// Plain words for the rendered document: "is above 0.02".
    pub fn describe(&self) -> String {
        let t = format_number(self.threshold);
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
    fn probes(a: &Condition, b: &Condition) -> Vec<f64> {
        let mut points = vec![-1e300, 1e300, (a.threshold + b.threshold) / 2.0];
        for t in [a.threshold, b.threshold] {
            let delta = t.abs().max(1.0) * 1e-9;
            points.extend([t, t - delta, t + delta]);
        }
        points
    }

    /// Whether some value passes `passes` without failing `fails` (failing wins).
    pub fn can_pass(passes: &Condition, fails: &Condition) -> bool {
        Condition::probes(passes, fails)
            .into_iter()
            .any(|x| passes.holds(x) && !fails.holds(x))
    }

    /// Whether some value satisfies both conditions.
    pub fn overlaps(a: &Condition, b: &Condition) -> bool {
        Condition::probes(a, b)
            .into_iter()
            .any(|x| a.holds(x) && b.holds(x))
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
        write!(f, "{} {}", self.op.symbol(), format_number(self.threshold))
    }
}

impl Decode for Condition {
    const LEAF: bool = true;
    fn expected() -> String {
        "a condition like \"> 0.02\"".into()
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
                    "write an operator (> >= < <= == !=) and a finite number, quoted: \"> 0.02\"",
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
            "description": "An operator (> >= < <= == !=) and a number, e.g. \"> 0.02\".",
            "pattern": "^\\s*(>=|<=|==|!=|>|<)\\s*[-+]?[0-9.eE+-]+\\s*$",
            "examples": ["> 0.02", ">= 0.95"]
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
        assert_eq!(Condition::parse(text), Some(Condition { op, threshold }));
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
