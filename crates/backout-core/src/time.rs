//! Wall-clock times as people read and write them: RFC 3339 in UTC (`2026-11-26T18:04:05Z`),
//! and durations left, to the second.

/// RFC 3339 in UTC, to the second: `2026-11-26T18:04:05Z`.
pub fn utc(ms: i64) -> String {
    match jiff::Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(at) => at.to_string(),
        // Beyond jiff's range (years -9999..=9999): no real time is; say what it is.
        Err(_) => format!("{ms} ms since the Unix epoch"),
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-26T18:04:05Z`, `2026-11-26T19:04:05.250+01:00`;
/// a space may replace the `T`) into milliseconds since the Unix epoch.
///
/// The parsing is jiff's (`Timestamp::from_str`): times come from users and from the API, and a
/// hand-written parser once panicked on non-ASCII input there.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = |why: &dyn std::fmt::Display| {
        format!(
            "`{}` is not an RFC 3339 time ({why}); write it like 2026-11-26T18:04:05Z or \
             2026-11-26T19:04:05+01:00",
            text.escape_debug()
        )
    };
    let at: jiff::Timestamp = text.trim().parse().map_err(|e: jiff::Error| bad(&e))?;
    Ok(at.as_millisecond())
}

/// A duration left, to the second, as the plan writes durations (`3h59m12s`).
pub fn left(ms: i64) -> String {
    backout_model::Duration::from_millis(u64::try_from(ms).unwrap_or(0) / 1000 * 1000).to_string()
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339, utc};

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_716_245_000), "2026-11-26T18:04:05Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ms in [0, 1_795_716_245_000, 951_782_400_000, -86_400_000] {
            assert_eq!(parse_rfc3339(&utc(ms)), Ok(ms));
        }
        assert_eq!(
            parse_rfc3339("2026-11-26T19:04:05.25+01:00"),
            Ok(1_795_716_245_250)
        );
        assert_eq!(
            parse_rfc3339("2026-11-26 13:04:05-05:00"),
            Ok(1_795_716_245_000)
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            "2026-11-26T18:04:05",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-26T24:00:00Z",
            "2026-11-26T18:04:05+1:00",
            "2026-11-26T18:04:05.Z",
            "+026-11-26T18:04:05Z",
            "2026-11-26T18:04:05\u{e9}1234",
            "2026-11-26T18:04:05Z\u{e9}",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            let error = parse_rfc3339(bad).expect_err(bad);
            assert!(error.contains("RFC 3339"), "{error}");
        }
    }
}
