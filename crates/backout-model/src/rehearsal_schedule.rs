//! `testing.schedule`: when `backout serve` rehearses a plan by itself. Pure parsing and
//! matching on civil (wall-clock) times; the caller converts to and from the stated time zone
//! (`testing.time_zone`), so this module needs no time-zone database.
//!
//! Forms: `daily` (00:00), `weekly` (Monday 00:00), a five-field cron expression
//! (`minute hour day-of-month month day-of-week`, each `*`, `N`, `A-B`, `*/S`, `A-B/S` or a
//! comma list of those; day-of-week 0–7 with 0 and 7 Sunday), or `every DURATION` (`every 6h`,
//! `every 30s`: measured from the last rehearsal; the seconds-granular form tests use).

use crate::duration::Duration;

/// A parsed `testing.schedule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RehearsalSchedule {
    /// `every DURATION`: due that long after the last scheduled or recorded rehearsal.
    Every(Duration),
    /// A cron expression (`daily` and `weekly` are two).
    Cron(Cron),
}

/// The five cron fields as bit sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day-of-month and day-of-week were both restricted: cron matches either (POSIX).
    either_day: bool,
}

/// A wall-clock minute: what a cron expression matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilMinute {
    pub month: u8,
    pub day: u8,
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
}

impl RehearsalSchedule {
    /// Parses a schedule, or says what is wrong in words a plan author can act on.
    pub fn parse(text: &str) -> Result<RehearsalSchedule, String> {
        let text = text.trim();
        match text {
            "daily" | "@daily" => return Self::parse("0 0 * * *"),
            "weekly" | "@weekly" => return Self::parse("0 0 * * 1"),
            "hourly" | "@hourly" => return Self::parse("0 * * * *"),
            _ => {}
        }
        if let Some(every) = text.strip_prefix("every ") {
            let d = Duration::parse(every.trim())
                .ok_or_else(|| format!("`{every}` is not a duration like 30s, 6h or 7d"))?;
            if d.as_millis() < 1000 {
                return Err("a schedule `every …` needs at least 1s between rehearsals".into());
            }
            return Ok(RehearsalSchedule::Every(d));
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "`{text}` is not daily, weekly, hourly, `every DURATION` or a cron expression of five fields (minute hour day-of-month month day-of-week)"
            ));
        };
        let weekdays = field(weekday, 0, 7, "day-of-week")?;
        // 7 is Sunday too.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(RehearsalSchedule::Cron(Cron {
            minutes: field(minute, 0, 59, "minute")?,
            hours: u32::try_from(field(hour, 0, 23, "hour")?).unwrap_or(0),
            days: u32::try_from(field(day, 1, 31, "day-of-month")?).unwrap_or(0),
            months: u16::try_from(field(month, 1, 12, "month")?).unwrap_or(0),
            weekdays: u8::try_from(weekdays).unwrap_or(0),
            either_day: day != "*" && weekday != "*",
        }))
    }
}

impl Cron {
    /// Whether the cron expression fires at this wall-clock minute.
    pub fn matches(&self, t: CivilMinute) -> bool {
        let bit = |set: u64, n: u8| set & (1u64 << n) != 0;
        let day = bit(u64::from(self.days), t.day);
        let weekday = bit(u64::from(self.weekdays), t.weekday);
        let day_ok = if self.either_day {
            day || weekday
        } else {
            day && weekday
        };
        bit(self.minutes, t.minute)
            && bit(u64::from(self.hours), t.hour)
            && bit(u64::from(self.months), t.month)
            && day_ok
    }
}

/// One cron field as a bit set of the values it allows, `lo..=hi`.
fn field(text: &str, lo: u8, hi: u8, name: &str) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("`{part}` in the {name} field has a bad step"))?,
            ),
            None => (part, 1),
        };
        let number = |n: &str| {
            n.parse::<u8>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| {
                    format!("`{n}` in the {name} field is not a number from {lo} to {hi}")
                })
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, hi),
                None => {
                    let n = number(r)?;
                    (n, n)
                }
            },
        };
        if a > b {
            return Err(format!("`{range}` in the {name} field is an empty range"));
        }
        let mut n = a;
        while n <= b {
            set |= 1u64 << n;
            n = match n.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(set)
}

/// Whether `text` names a time zone plausibly: `UTC`, a fixed offset like `+02:00`, or an
/// IANA name like `Europe/Berlin` (whether the name exists is checked where the time-zone
/// database is: by the server that schedules, and by `backout plans add`).
pub fn plausible_time_zone(text: &str) -> bool {
    let t = text.trim();
    t == "UTC"
        || fixed_offset_minutes(t).is_some()
        || (t.contains('/')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')))
}

/// `+02:00` / `-05:30` as minutes east of UTC.
pub fn fixed_offset_minutes(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m) = (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m) && h.to_string().len() <= 2)
        .then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(month: u8, day: u8, weekday: u8, hour: u8, minute: u8) -> CivilMinute {
        CivilMinute {
            month,
            day,
            weekday,
            hour,
            minute,
        }
    }

    fn cron(text: &str) -> Cron {
        match RehearsalSchedule::parse(text) {
            Ok(RehearsalSchedule::Cron(c)) => c,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn named_schedules_and_cron_fields_match_the_right_minutes() {
        assert!(cron("daily").matches(at(3, 5, 2, 0, 0)));
        assert!(!cron("daily").matches(at(3, 5, 2, 0, 1)));
        assert!(cron("weekly").matches(at(3, 2, 1, 0, 0)));
        assert!(!cron("weekly").matches(at(3, 3, 2, 0, 0)));
        let c = cron("*/15 9-17 * * 1-5");
        assert!(c.matches(at(1, 6, 1, 9, 45)));
        assert!(!c.matches(at(1, 6, 1, 9, 50)));
        assert!(!c.matches(at(1, 4, 6, 10, 0)));
        assert!(cron("0 3 * * 7").matches(at(1, 5, 0, 3, 0)), "7 is Sunday");
        // Both day fields restricted: either matches.
        let c = cron("0 0 1 * 1");
        assert!(c.matches(at(2, 1, 4, 0, 0)) && c.matches(at(2, 2, 1, 0, 0)));
        assert!(!c.matches(at(2, 3, 2, 0, 0)));
    }

    #[test]
    fn every_and_errors() {
        assert_eq!(
            RehearsalSchedule::parse("every 30s"),
            Ok(RehearsalSchedule::Every(Duration::from_millis(30_000)))
        );
        for bad in [
            "sometimes",
            "every soon",
            "every 10ms",
            "61 * * * *",
            "* * * *",
            "5-1 * * * *",
            "*/0 * * * *",
        ] {
            assert!(RehearsalSchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones() {
        assert!(plausible_time_zone("UTC") && plausible_time_zone("Europe/Berlin"));
        assert_eq!(fixed_offset_minutes("+02:00"), Some(120));
        assert_eq!(fixed_offset_minutes("-05:30"), Some(-330));
        assert!(!plausible_time_zone("Berlin time") && !plausible_time_zone("+25:00"));
    }
}
