//! When a plan rehearses by itself (`testing.schedule`, `testing.renew_before`), and when its
//! evidence must be announced as expiring. Pure apart from the time-zone database (jiff reads
//! the system's zoneinfo); the server's loop (`backout-server::drills`) asks this module and
//! does the work.

use backout_model::plan::Testing;
use backout_model::rehearsal_schedule::{
    CivilMinute, Cron, RehearsalSchedule, fixed_offset_minutes,
};
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// Why a plan is rehearsed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `testing.schedule` fired (or the plan was never rehearsed).
    Schedule,
    /// The evidence expires within `renew_before`.
    Renew,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Schedule => "schedule",
            Reason::Renew => "renew_before",
        }
    }
}

/// The time zone of `testing.time_zone`: `UTC`, a fixed offset, or an IANA name.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    if let Some(minutes) = fixed_offset_minutes(name) {
        return Offset::from_seconds(minutes * 60)
            .map(TimeZone::fixed)
            .map_err(|e| format!("time zone `{name}`: {e}"));
    }
    TimeZone::get(name).map_err(|e| format!("time zone `{name}` is not known here: {e}"))
}

/// The first minute strictly after `after_ms` at which `cron` fires in `zone` (within about a
/// year and a day; `None` for an expression that never fires, like 31 February).
pub fn next_fire(cron: &Cron, zone: &TimeZone, after_ms: i64) -> Option<i64> {
    let start = Timestamp::from_millisecond(after_ms)
        .ok()?
        .to_zoned(zone.clone());
    let mut t: DateTime = start
        .datetime()
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?;
    t = t.checked_add(1.minute()).ok()?;
    let limit = t.checked_add(367.days()).ok()?;
    while t < limit {
        let civil = CivilMinute {
            month: u8::try_from(t.month()).ok()?,
            day: u8::try_from(t.day()).ok()?,
            weekday: u8::try_from(t.weekday().to_sunday_zero_offset()).ok()?,
            hour: u8::try_from(t.hour()).ok()?,
            minute: u8::try_from(t.minute()).ok()?,
        };
        if cron.matches(civil) {
            let at = t.to_zoned(zone.clone()).ok()?.timestamp().as_millisecond();
            if at > after_ms {
                return Some(at);
            }
        }
        // Skip whole hours whose minute 0..59 cannot match quickly: a minute step is enough
        // for a year (about half a million steps at worst) and keeps DST rules to jiff.
        t = t.checked_add(1.minute()).ok()?;
    }
    None
}

/// Whether a plan with a `testing.schedule` is due for a rehearsal at `now_ms` (on its
/// schedule, or because its evidence expires within `renew_before`), given the `finished_at_ms` of its
/// newest evidence of this content hash in `rehearse_in` and when the last scheduled attempt
/// started (successful or not). `Err` when the schedule or time zone cannot be read.
pub fn due(
    testing: &Testing,
    evidence_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    now_ms: i64,
) -> Result<Option<Reason>, String> {
    let max_age = millis(testing.max_age);
    // Only a scheduled plan rehearses by itself; an unscheduled one is announced as expiring
    // instead ([`expiring`]), so people decide.
    let Some(text) = &testing.schedule else {
        return Ok(None);
    };
    if let (Some(renew), Some(evidence)) = (testing.renew_before, evidence_ms) {
        let threshold = evidence + max_age - millis(renew);
        // After a failed renewal, try again a quarter of renew_before later, not every tick.
        let retry = (millis(renew) / 4).max(1000);
        if now_ms >= threshold
            && last_attempt_ms.is_none_or(|a| now_ms >= a.max(threshold) + retry || a < threshold)
        {
            return Ok(Some(Reason::Renew));
        }
    }
    let schedule = RehearsalSchedule::parse(text)?;
    let last = last_attempt_ms.max(evidence_ms);
    let Some(last) = last else {
        // Never rehearsed (on schedule or by hand): rehearse now.
        return Ok(Some(Reason::Schedule));
    };
    let next = match schedule {
        RehearsalSchedule::Every(d) => Some(last + millis(d)),
        RehearsalSchedule::Cron(cron) => next_fire(&cron, &time_zone(&testing.time_zone)?, last),
    };
    Ok(next.filter(|n| now_ms >= *n).map(|_| Reason::Schedule))
}

/// Whether `evidence_expiring` is to be announced at `now_ms` for evidence finished at
/// `evidence_ms`: no schedule renews it, and it expires within `renew_before` (7 days, at most
/// half of `max_age`, when not given).
pub fn expiring(testing: &Testing, evidence_ms: i64, now_ms: i64) -> Option<i64> {
    if testing.schedule.is_some() {
        return None;
    }
    let max_age = millis(testing.max_age);
    let notice = testing
        .renew_before
        .map_or((7 * 86_400_000_i64).min(max_age / 2), millis);
    let expires = evidence_ms + max_age;
    (now_ms >= expires - notice && now_ms < expires).then_some(expires)
}

fn millis(d: backout_model::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backout_model::Duration;

    fn testing(schedule: Option<&str>, max_age_s: u64, renew_s: Option<u64>) -> Testing {
        Testing {
            rehearse_in: "staging".into(),
            max_age: Duration::from_millis(max_age_s * 1000),
            overrides: Vec::new(),
            notify: Vec::new(),
            shared_hosts: Vec::new(),
            schedule: schedule.map(str::to_string),
            time_zone: "Europe/Berlin".into(),
            renew_before: renew_s.map(|s| Duration::from_millis(s * 1000)),
        }
    }

    #[test]
    fn every_is_due_after_its_interval_and_never_rehearsed_is_due_now() {
        let t = testing(Some("every 10s"), 3600, None);
        assert_eq!(due(&t, None, None, 0), Ok(Some(Reason::Schedule)));
        assert_eq!(due(&t, Some(1_000), None, 5_000), Ok(None));
        assert_eq!(
            due(&t, Some(1_000), None, 11_000),
            Ok(Some(Reason::Schedule))
        );
        assert_eq!(due(&t, Some(1_000), Some(12_000), 15_000), Ok(None));
    }

    #[test]
    fn renew_before_fires_before_expiry_and_retries_a_failure_later() {
        let t = testing(Some("every 1h"), 100, Some(20));
        assert_eq!(due(&t, Some(0), None, 79_000), Ok(None));
        assert_eq!(due(&t, Some(0), None, 80_000), Ok(Some(Reason::Renew)));
        // A failed attempt at 80 s: again 5 s (a quarter of renew_before) later.
        assert_eq!(due(&t, Some(0), Some(80_000), 82_000), Ok(None));
        assert_eq!(
            due(&t, Some(0), Some(80_000), 85_000),
            Ok(Some(Reason::Renew))
        );
    }

    #[test]
    fn weekly_in_berlin_fires_at_monday_midnight_local_time() {
        let Ok(RehearsalSchedule::Cron(cron)) = RehearsalSchedule::parse("weekly") else {
            panic!("weekly parses");
        };
        let zone = time_zone("Europe/Berlin").expect("zoneinfo has Berlin");
        // Wednesday 2026-12-02 12:00 UTC → Monday 2026-12-07 00:00 CET = Sunday 23:00 UTC.
        let after: Timestamp = "2026-12-02T12:00:00Z".parse().expect("time");
        let next = next_fire(&cron, &zone, after.as_millisecond()).expect("fires");
        let expected: Timestamp = "2026-12-06T23:00:00Z".parse().expect("time");
        assert_eq!(next, expected.as_millisecond());
    }

    #[test]
    fn without_a_schedule_nothing_rehearses_by_itself() {
        let t = testing(None, 100, Some(20));
        assert_eq!(due(&t, Some(0), None, 90_000), Ok(None));
        assert_eq!(due(&t, None, None, 0), Ok(None));
    }

    #[test]
    fn expiring_only_without_a_schedule() {
        let t = testing(None, 100, Some(30));
        assert_eq!(expiring(&t, 0, 60_000), None);
        assert_eq!(expiring(&t, 0, 75_000), Some(100_000));
        assert_eq!(expiring(&t, 0, 100_000), None, "already expired");
        let scheduled = testing(Some("daily"), 100, Some(30));
        assert_eq!(expiring(&scheduled, 0, 75_000), None);
    }
}
