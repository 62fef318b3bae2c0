//! `backout deliveries [REL]`: the notification outbox, of one release (its own events and its
//! runs') or of everything: when, which event, which channel, whether it got through, how many
//! attempts it took and the last error. Deliveries that were given up are repeated on standard
//! error, so they are not missed.

use backout_store::{Delivery, DeliveryState};

use super::runs::{json, now, open_store, runtime};
use crate::cli::{Global, LintFormat};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use backout_core::time::utc;

/// How many deliveries are listed, the most recent ones.
const LIMIT: u32 = 500;

pub fn deliveries(
    release: Option<&str>,
    send: bool,
    format: LintFormat,
    global: &Global,
) -> Result<ExitCode, CommandError> {
    // On a server: one release's notifications (the gate refuses the rest).
    if let Some(done) = crate::remote::run(global, |remote| async move {
        let Some(id) = release else {
            return Err(CommandError::usage(
                "give a release id: the server lists the notifications of one release",
            ));
        };
        let path = format!("/api/v1/releases/{}/deliveries", crate::remote::segment(id));
        let value = remote.get(&path).await?;
        let mut listed = crate::remote::convert::deliveries(&value)?;
        listed.reverse();
        print(&listed, release, format)
    }) {
        return done;
    }
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        if send {
            // Whatever is due now (of every release: a dispatcher does not pick), then the list.
            super::notifying::sending_all(&store).await;
        }
        let mut listed = store.list_deliveries(release, LIMIT).await?;
        // Oldest first: the order things happened in.
        listed.reverse();
        print(&listed, release, format)
    })
}

/// The list, oldest first, as a table (with what was given up repeated as warnings) or JSON.
fn print(
    listed: &[Delivery],
    release: Option<&str>,
    format: LintFormat,
) -> Result<ExitCode, CommandError> {
    if format == LintFormat::Json {
        output::out(&format!("{}\n", json(&listed)?));
        return Ok(ExitCode::Ok);
    }
    if listed.is_empty() {
        output::out(&match release {
            Some(id) => format!("no notifications for release {id}\n"),
            None => "no notifications yet\n".to_string(),
        });
        return Ok(ExitCode::Ok);
    }
    output::out(&table(listed, release.is_none(), now()));
    let failed: Vec<&Delivery> = listed
        .iter()
        .filter(|d| d.state == DeliveryState::Failed)
        .collect();
    for d in &failed {
        output::warn(&format!(
            "{} to {} was given up after {} attempt(s): {}",
            d.notify_event,
            d.channel,
            d.attempts.len(),
            d.last_error.as_deref().unwrap_or("no detail")
        ));
    }
    Ok(ExitCode::Ok)
}

/// The table people read; with `whose`, a column says which release or run each belongs to.
pub(super) fn table(deliveries: &[Delivery], whose: bool, now_ms: i64) -> String {
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
        let table = table(
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
