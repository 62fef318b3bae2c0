//! Words and numbers as the pages show them: verdicts, statuses, times and durations. The same
//! names as the CLI's `status` (`commands/releases/view.rs` in the binary), so a person sees one
//! vocabulary wherever they look.

use backout_core::time::{left, utc};

/// Who is signed in, for the header of every page and the CSRF field of every form.
pub struct Me {
    pub user: String,
    pub role: String,
    pub csrf: String,
}

impl Me {
    pub fn of(session: &super::session::Session) -> Me {
        Me {
            user: session.caller.user.clone(),
            role: session.caller.role.as_str().to_string(),
            csrf: session.csrf.clone(),
        }
    }
}

/// A point in time as the pages show it (UTC, to the second).
pub fn at(ms: i64) -> String {
    utc(ms)
}

/// How long ago `then` was, in words: `12s ago`.
pub fn ago(then: i64, now: i64) -> String {
    if now - then < 1000 {
        "just now".into()
    } else {
        format!("{} ago", left(now - then))
    }
}

/// A measured duration in milliseconds as plans write durations (`1m30s`, `450ms` below a
/// second): backout-model's one spelling of a measured span, as the CLI and notifications show it.
pub fn took(ms: i64) -> String {
    backout_model::Duration::between(0, ms).measured()
}

/// The window of a release in words: time left, or closed and why.
pub fn window(
    closes_at_ms: Option<i64>,
    closed: bool,
    close_reason: Option<&str>,
    now: i64,
) -> String {
    match (closes_at_ms, closed) {
        (_, true) => format!("closed: {}", close_reason.unwrap_or("its time ran out")),
        (Some(t), false) if t > now => format!("closes in {}", left(t - now + 999)),
        (Some(_), false) => "closed: its time ran out".into(),
        (None, false) => "open (no time limit)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_time_left_or_closed() {
        assert_eq!(window(Some(61_000), false, None, 0), "closes in 1m1s");
        assert_eq!(
            window(Some(1_000), false, None, 5_000),
            "closed: its time ran out"
        );
        assert_eq!(
            window(None, true, Some("point of no return"), 0),
            "closed: point of no return"
        );
        assert_eq!(window(None, false, None, 0), "open (no time limit)");
    }

    #[test]
    fn short_durations_keep_their_milliseconds() {
        assert_eq!(took(450), "450ms");
        assert_eq!(took(61_000), "1m1s");
    }
}
