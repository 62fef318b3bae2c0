//! Wall-clock times as people read and write them: RFC 3339 in UTC (`2026-11-26T18:04:05Z`),
//! and durations left, to the second.

/// RFC 3339 in UTC, to the second: `2026-11-26T18:04:05Z`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 timestamp (`2026-11-26T18:04:05Z`, `2026-11-26T19:04:05.250+01:00`;
/// a space may replace the `T`) into milliseconds since the Unix epoch.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{text}` is not an RFC 3339 time; write it like 2026-11-26T18:04:05Z or \
             2026-11-26T19:04:05+01:00"
        )
    };
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = t.get(range).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours = rest[1..3].parse::<i64>().map_err(|_| bad())?;
            let minutes = rest[4..6].parse::<i64>().map_err(|_| bad())?;
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            sign * (hours * 60 + minutes)
        }
        _ => return Err(bad()),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[usize::try_from(month - 1).unwrap_or(0)]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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
        ] {
            let error = parse_rfc3339(bad).expect_err(bad);
            assert!(error.contains("RFC 3339"), "{error}");
        }
    }
}
