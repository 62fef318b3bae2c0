//! Durations as plan authors write them: `30s`, `5m`, `4h`, `1h30m`, `2d`, `500ms`.

use std::fmt;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;

use crate::codes;
use crate::decode::{Decode, Decoder};
use crate::diagnostic::Diagnostic;
use crate::yaml::{Node, Value};

/// A non-negative span of time written with units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Why a duration's text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not number+unit pairs, largest unit first.
    Malformed,
    /// Well formed, but more milliseconds than 64 bits hold.
    Overflow,
}

impl Duration {
    pub const ZERO: Duration = Duration(StdDuration::ZERO);

    /// The longest duration a plan may write (366 days): longer ones are typos, and bounding
    /// them here keeps every later sum of timestamps and durations far from overflowing.
    pub const MAX_IN_PLAN: Duration = Duration(StdDuration::from_secs(366 * 86_400));

    /// `self × n`, saturating instead of overflowing.
    #[must_use]
    pub fn saturating_mul(self, n: u32) -> Duration {
        Duration(self.0.saturating_mul(n))
    }

    pub fn from_secs(secs: u64) -> Duration {
        Duration(StdDuration::from_secs(secs))
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn from_millis(ms: u64) -> Duration {
        Duration(StdDuration::from_millis(ms))
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The span between two clock readings in milliseconds (`to_ms - from_ms`); a negative
    /// one (a clock stepped back, a record written out of order) is zero.
    pub fn between(from_ms: i64, to_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(to_ms.saturating_sub(from_ms)).unwrap_or(0))
    }

    /// A measured span as people are shown it: to the whole second (`4m12s` for 4m12.4s), in
    /// milliseconds below one second (`450ms`, so a quick step does not read as `0s`), in the
    /// units plans write (`1h5m`, `1d`). The one spelling of a measured duration: the web UI,
    /// the notifications and the CLI's listings use it; [`Display`](fmt::Display) keeps every
    /// millisecond.
    pub fn measured(self) -> String {
        let ms = self.as_millis();
        if ms < 1_000 {
            return format!("{ms}ms");
        }
        Duration::from_millis(ms / 1_000 * 1_000).to_string()
    }

    /// Parses `1h30m`-style text: one or more number+unit pairs, largest unit first.
    pub fn parse(text: &str) -> Option<Duration> {
        Duration::parse_detailed(text).ok()
    }

    /// Like [`Duration::parse`], but tells a malformed text from one too large to represent.
    pub fn parse_detailed(text: &str) -> Result<Duration, ParseError> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(ParseError::Malformed);
        }
        let mut overflow = false;
        let mut total: u64 = 0;
        let mut last_unit = u64::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(ParseError::Malformed);
            }
            // Digits only, so the parse fails only when the number exceeds 64 bits.
            let number: Option<u64> = rest[..digits].parse().ok();
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            let (_, factor) = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .ok_or(ParseError::Malformed)?;
            if *factor >= last_unit {
                return Err(ParseError::Malformed);
            }
            last_unit = *factor;
            match number
                .and_then(|n| n.checked_mul(*factor))
                .and_then(|ms| total.checked_add(ms))
            {
                Some(sum) => total = sum,
                None => overflow = true,
            }
            rest = &rest[unit_len..];
        }
        if overflow {
            return Err(ParseError::Overflow);
        }
        Ok(Duration::from_millis(total))
    }
}

impl std::ops::Add for Duration {
    type Output = Duration;
    fn add(self, other: Duration) -> Duration {
        Duration(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Duration {
    /// The shortest canonical spelling: `1h30m`, `90s` becomes `1m30s`, zero is `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, factor) in UNITS.iter().rev() {
            if ms >= *factor {
                write!(f, "{}{name}", ms / factor)?;
                ms %= factor;
            }
        }
        Ok(())
    }
}

impl Decode for Duration {
    const LEAF: bool = true;
    fn expected() -> String {
        "a duration like 5m or 1h30m".into()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        match &node.value {
            Value::Str(s) => match Duration::parse_detailed(s) {
                Ok(d) if d > Duration::MAX_IN_PLAN => {
                    decoder.push(too_long(node, s));
                    // Kept, so that checks which compare durations still run; the error keeps
                    // the plan from ever being used.
                    Some(d)
                }
                Ok(d) => Some(d),
                Err(ParseError::Overflow) => {
                    decoder.push(too_long(node, s));
                    None
                }
                Err(ParseError::Malformed) => {
                    decoder.invalid(
                        node,
                        format!("expected a duration like 5m or 1h30m, found \"{s}\""),
                        "write a number and a unit (ms, s, m, h, d), largest unit first: 30s, 5m, 1h30m, 2d",
                    );
                    None
                }
            },
            Value::Int(0) => Some(Duration::ZERO),
            Value::Int(n) => {
                decoder.invalid(
                    node,
                    format!(
                        "expected a duration like 5m or 1h30m, found the number {n} with no unit"
                    ),
                    &format!("add a unit, e.g. {n}s or {n}m"),
                );
                None
            }
            _ => {
                decoder.wrong_type(node, &Self::expected());
                None
            }
        }
    }
}

/// B038: a duration beyond [`Duration::MAX_IN_PLAN`].
fn too_long(node: &Node, text: &str) -> Diagnostic {
    Diagnostic::error(
        codes::TOO_LONG,
        node.span,
        format!("`{text}` is longer than {}", Duration::MAX_IN_PLAN),
    )
    .with_help("durations in a plan are at most 366d; a longer one is almost certainly a typo (365d is a year)")
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: number+unit pairs, largest unit first (ms, s, m, h, d), e.g. 30s, 5m, 1h30m, 2d.",
            "pattern": "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("30s", 30_000)]
    #[test_case("5m", 300_000)]
    #[test_case("4h", 14_400_000)]
    #[test_case("1h30m", 5_400_000)]
    #[test_case("2d", 172_800_000)]
    #[test_case("500ms", 500)]
    #[test_case("1m30s", 90_000)]
    fn parses(text: &str, ms: u64) {
        assert_eq!(Duration::parse(text), Some(Duration::from_millis(ms)));
    }

    #[test_case("soon")]
    #[test_case("")]
    #[test_case("5")]
    #[test_case("m5")]
    #[test_case("30m1h")]
    #[test_case("5m5m")]
    #[test_case("1y")]
    #[test_case("-5m")]
    #[test_case("99999999999999999999d")]
    fn rejects(text: &str) {
        assert_eq!(Duration::parse(text), None);
    }

    #[test_case("106751991167d")]
    #[test_case("99999999999999999999d")]
    #[test_case("213503982335d1ms")]
    fn huge_durations_are_an_overflow_not_malformed(text: &str) {
        let parsed = Duration::parse_detailed(text);
        assert!(
            matches!(parsed, Err(ParseError::Overflow))
                || parsed.is_ok_and(|d| d > Duration::MAX_IN_PLAN),
            "{text}: {parsed:?}"
        );
    }

    #[test_case(0, "0ms")]
    #[test_case(450, "450ms")]
    #[test_case(45_400, "45s")]
    #[test_case(252_000, "4m12s")]
    #[test_case(252_999, "4m12s")]
    #[test_case(120_000, "2m")]
    #[test_case(3_900_000, "1h5m")]
    #[test_case(3_912_000, "1h5m12s")]
    #[test_case(86_400_000, "1d")]
    fn measured_spans_read_to_the_second(ms: u64, shown: &str) {
        assert_eq!(Duration::from_millis(ms).measured(), shown);
    }

    #[test]
    fn spans_between_readings_are_never_negative() {
        assert_eq!(Duration::between(1_000, 253_000), Duration::from_secs(252));
        assert_eq!(Duration::between(5_000, 1_000), Duration::ZERO);
        assert_eq!(
            Duration::between(i64::MIN, i64::MAX),
            Duration::from_millis(u64::try_from(i64::MAX).unwrap())
        );
    }

    #[test]
    fn saturating_mul_does_not_wrap() {
        assert_eq!(
            Duration::from_secs(60).saturating_mul(3),
            Duration::from_secs(180)
        );
        let huge = Duration(StdDuration::MAX);
        assert_eq!(huge.saturating_mul(2), huge);
    }

    #[test_case(90_000, "1m30s")]
    #[test_case(5_400_000, "1h30m")]
    #[test_case(0, "0s")]
    #[test_case(1_500, "1s500ms")]
    fn displays(ms: u64, text: &str) {
        assert_eq!(Duration::from_millis(ms).to_string(), text);
        assert_eq!(Duration::parse(text), Some(Duration::from_millis(ms)));
    }
}
