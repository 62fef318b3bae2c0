//! One-line and tabular listings more than one command prints: a release in `status`'s list
//! (local or from a server) and the notification outbox (`deliveries`, `report REL`).

use backout_core::time::utc;
use backout_store::{Delivery, DeliveryState, Release};

/// One line per release for `status` without arguments.
/// One release in the list: its outcome (open, rolling_back, rolled_back, rollback_failed, …)
/// when known, else whether its window is open.
pub fn release_line(release: &Release, outcome: Option<&str>, now_ms: i64) -> String {
    let window = if release.window_closed(now_ms) {
        "closed"
    } else {
        "open"
    };
    format!(
        "{}  {:<19} {:<10} {} {} → {}  by {}\n",
        release.id,
        outcome.unwrap_or(window),
        "release",
        release.service,
        release.version,
        release.rollback_to,
        release.actor
    )
}

/// The table people read; with `whose`, a column says which release or run each belongs to.
pub fn deliveries_table(deliveries: &[Delivery], whose: bool, now_ms: i64) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        [
            "TIME",
            "EVENT",
            "CHANNEL",
            "STATE",
            "ATTEMPTS",
            "LAST ERROR",
        ]
        .iter()
        .map(|h| (*h).to_string())
        .collect(),
    ];
    if whose {
        rows[0].insert(1, "FOR".into());
    }
    for d in deliveries {
        let mut last = d.last_error.clone().unwrap_or_default();
        if d.state == DeliveryState::Pending
            && let Some(next) = d.next_attempt_at_ms.filter(|t| *t > now_ms)
        {
            let retry = format!("next attempt at {}", utc(next));
            last = if last.is_empty() {
                retry
            } else {
                format!("{last} ({retry})")
            };
        }
        let mut row = vec![
            utc(d.created_at_ms),
            d.notify_event.clone(),
            format!("{} ({})", d.channel, d.kind),
            d.state.to_string(),
            d.attempts.len().to_string(),
            last,
        ];
        if whose {
            row.insert(
                1,
                d.release_id
                    .clone()
                    .or_else(|| d.run_id.clone())
                    .unwrap_or_else(|| "-".into()),
            );
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backout_store::{AttemptOutcome, DeliveryAttempt, DeliveryKind};

    fn delivery(state: DeliveryState, attempts: usize, last_error: Option<&str>) -> Delivery {
        Delivery {
            id: 1,
            event_seq: 9,
            release_id: Some("rel-1".into()),
            run_id: None,
            channel: "ops".into(),
            kind: DeliveryKind::Slack,
            notify_event: "rollback_required".into(),
            state,
            created_at_ms: 1_795_716_245_000,
            next_attempt_at_ms: (state == DeliveryState::Pending).then_some(1_795_716_250_000),
            claimed_by: None,
            claimed_until_ms: None,
            attempts: (0..attempts)
                .map(|i| DeliveryAttempt {
                    at_ms: 1_795_716_245_000 + i as i64,
                    outcome: AttemptOutcome::Retry,
                    detail: "HTTP 503".into(),
                    by: "host:1:1".into(),
                })
                .collect(),
            last_error: last_error.map(str::to_string),
            delivered_at_ms: None,
            updated_at_ms: 1_795_716_245_000,
        }
    }

    #[test]
    fn the_table_shows_state_attempts_and_the_next_retry() {
        let mut delivered = delivery(DeliveryState::Delivered, 3, Some("HTTP 503"));
        delivered.delivered_at_ms = Some(1_795_716_249_000);
        let table = deliveries_table(
            &[
                delivered,
                delivery(DeliveryState::Pending, 1, Some("HTTP 503")),
            ],
            false,
            1_795_716_246_000,
        );
        assert_eq!(
            table,
            "TIME                  EVENT              CHANNEL      STATE      ATTEMPTS  LAST ERROR\n\
             2026-11-26T18:04:05Z  rollback_required  ops (slack)  delivered  3         HTTP 503\n\
             2026-11-26T18:04:05Z  rollback_required  ops (slack)  pending    1         HTTP 503 (next attempt at 2026-11-26T18:04:10Z)\n"
        );
    }
}
