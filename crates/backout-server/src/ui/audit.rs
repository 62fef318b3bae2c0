//! The audit page: the journal's hash chain verified again (as `GET /api/v1/audit/verify`
//! and `backout audit verify` do), and the latest events of the journal.

use askama::Template;
use axum::extract::State;
use backout_store::verify_store;

use super::page::{self, UiResult};
use super::session::Session;
use super::view::{self, Me};
use crate::state::AppState;

/// Events shown, newest first.
const LATEST: u64 = 100;

struct EventRow {
    seq: u64,
    at: String,
    kind: String,
    actor: String,
    subject: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    me: Me,
    ok: bool,
    summary: String,
    events: Vec<EventRow>,
}

/// `GET /ui/audit`
pub async fn page(State(state): State<AppState>, session: Session) -> UiResult {
    let (ok, summary) = match verify_store(state.store.as_ref(), 1000).await? {
        Ok(summary) => (
            true,
            match summary.head {
                Some(head) => format!(
                    "the chain holds: {} event(s) checked, head #{} {}",
                    summary.checked, head.seq, head.hash
                ),
                None => "the journal is empty".to_string(),
            },
        ),
        Err(broken) => (false, format!("the chain is broken: {broken}")),
    };
    let last = state.store.last_event().await?.map_or(0, |e| e.seq);
    let after = last.saturating_sub(LATEST);
    let mut events: Vec<EventRow> = state
        .store
        .events(after, u32::try_from(LATEST).unwrap_or(100))
        .await?
        .into_iter()
        .map(|e| EventRow {
            seq: e.seq,
            at: view::at(e.at_ms),
            subject: [
                e.release_id.as_deref().map(|r| format!("release {r}")),
                e.run_id.as_deref().map(|r| format!("run {r}")),
                e.step_id.as_deref().map(|s| format!("step {s}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
            kind: e.kind,
            actor: e.actor,
            payload: e.payload.to_string(),
        })
        .collect();
    events.reverse();
    Ok(page::render(&AuditPage {
        me: Me::of(&session),
        ok,
        summary,
        events,
    }))
}
