//! `backout deliveries [REL]`: the notification outbox, of one release (its own events and its
//! runs') or of everything: when, which event, which channel, whether it got through, how many
//! attempts it took and the last error. Deliveries that were given up are repeated on standard
//! error, so they are not missed.

use backout_store::{Delivery, DeliveryState};

use crate::cli::LintFormat;
use crate::commands::context::Context;
use crate::commands::context::notifying;
use crate::commands::shared::listing::deliveries_table;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// How many deliveries are listed, the most recent ones.
const LIMIT: u32 = 500;

pub fn deliveries(
    release: Option<&str>,
    send: bool,
    format: LintFormat,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    // On a server: one release's notifications (the gate refuses the rest).
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let Some(id) = release else {
            return Err(CommandError::usage(
                "give a release id: the server lists the notifications of one release",
            ));
        };
        let path = format!("/api/v1/releases/{}/deliveries", crate::remote::segment(id));
        let value = remote.get(&path).await?;
        let mut listed = crate::remote::convert::deliveries(&value)?;
        listed.reverse();
        print(&listed, release, format, ctx.now())
    }) {
        return done;
    }
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        if send {
            // Whatever is due now (of every release: a dispatcher does not pick), then the list.
            notifying::sending_all(&store).await;
        }
        let mut listed = store.list_deliveries(release, LIMIT).await?;
        // Oldest first: the order things happened in.
        listed.reverse();
        print(&listed, release, format, ctx.now())
    })
}

/// The list, oldest first, as a table (with what was given up repeated as warnings) or JSON.
fn print(
    listed: &[Delivery],
    release: Option<&str>,
    format: LintFormat,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    if format == LintFormat::Json {
        output::out(&format!("{}\n", output::json(&listed)?));
        return Ok(ExitCode::Ok);
    }
    if listed.is_empty() {
        output::out(&match release {
            Some(id) => format!("no notifications for release {id}\n"),
            None => "no notifications yet\n".to_string(),
        });
        return Ok(ExitCode::Ok);
    }
    output::out(&deliveries_table(listed, release.is_none(), now_ms));
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
