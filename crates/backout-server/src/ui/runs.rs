//! A run's page: its steps in dependency layers, each with its state, attempt, timing against
//! its `expected`, exit status and captured output, kept current live. The page's script
//! follows `GET /ui/runs/{id}/events` (the same live tail as the API's, authenticated by the
//! session cookie because `EventSource` cannot send a bearer header) and, on each journal
//! event, fetches the steps again as HTML (`GET /ui/runs/{id}/steps`): the server renders the
//! truth, the browser only swaps it in.
//!
//! The forms confirm manual steps, resolve in-doubt ones and abort the run, through the same
//! core operations and checks as the API (`decide::may_perform` for separation of duties).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use backout_core::StepTarget;
use backout_core::clock::{Clock, SystemClock};
use backout_core::release::decide;
use backout_model::Plan;
use backout_model::render::ActualStep;
use backout_store::{Event, Role, Run, RunState, StepRecord, StepState};

use super::page::{self, UiError, UiResult};
use super::session::{Posted, Session};
use super::view::{self, Me};
use crate::state::AppState;

/// Captured output shown per stream (the store keeps what the executor captured; the page
/// shows its end).
const OUTPUT_CHARS: usize = 16 * 1024;

/// The journal read for the Gantt chart's attempt starts (as many as `report` reads).
const JOURNAL_EVENTS: u32 = 100_000;

fn now() -> i64 {
    SystemClock.now_ms()
}

/// One step as the page shows it.
struct StepRow {
    id: String,
    title: String,
    kind: String,
    state: String,
    attempt: u32,
    started: String,
    took: String,
    expected: String,
    exit: String,
    note: String,
    instructions: String,
    output: String,
    waiting: bool,
    in_doubt: bool,
    /// Failed or aborted: a performer may retry or skip it.
    failed: bool,
}

/// The steps of one dependency layer: each needs only steps of earlier layers.
struct Layer {
    number: usize,
    steps: Vec<StepRow>,
}

/// Everything the live part of the page shows.
struct RunView {
    state: String,
    kind: String,
    release_id: String,
    actor: String,
    created: String,
    finished: String,
    terminal: bool,
    layers: Vec<Layer>,
    can_act: bool,
    /// A performer may still retry or skip steps (the run did not succeed and was not refused).
    can_recover: bool,
    /// The Gantt chart of the run against its plan (SVG, every string escaped by the renderer).
    gantt: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    me: Me,
    id: String,
    r: RunView,
}

#[derive(Template)]
#[template(path = "run_steps.html")]
struct StepsFragment {
    me: Me,
    id: String,
    r: RunView,
}

/// The layer of each step: 1 for a step that needs nothing, else one more than the deepest
/// of its needs (needs outside the run are ignored; a cycle, which lint refuses, stops).
fn layers_of(ids: &[&str], needs: &HashMap<&str, Vec<&str>>) -> HashMap<String, usize> {
    fn depth<'a>(
        id: &'a str,
        needs: &HashMap<&str, Vec<&'a str>>,
        known: &mut HashMap<String, usize>,
        visiting: &mut Vec<&'a str>,
    ) -> usize {
        if let Some(d) = known.get(id) {
            return *d;
        }
        if visiting.contains(&id) {
            return 1;
        }
        visiting.push(id);
        let d = 1 + needs
            .get(id)
            .map(|n| {
                n.iter()
                    .filter(|n| needs.contains_key(*n))
                    .map(|n| depth(n, needs, known, visiting))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        visiting.pop();
        known.insert(id.to_string(), d);
        d
    }
    let mut known = HashMap::new();
    for id in ids {
        depth(id, needs, &mut known, &mut Vec::new());
    }
    known
}

/// The end of a captured stream, cut at a character boundary.
fn tail(text: &str) -> &str {
    if text.len() <= OUTPUT_CHARS {
        return text;
    }
    let mut start = text.len() - OUTPUT_CHARS;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn step_row(record: &StepRecord, plan: Option<&Plan>, now: i64) -> StepRow {
    let step = plan.and_then(|p| p.all_steps().find(|s| s.id == record.step_id));
    let took = match (record.started_at_ms, record.finished_at_ms) {
        (Some(s), Some(f)) => view::took(f - s),
        (Some(s), None) if record.state == StepState::Running => {
            format!("{} so far", view::took(now - s))
        }
        _ => String::new(),
    };
    let instructions = match step.map(|s| &s.kind) {
        Some(backout_model::plan::StepKind::Manual { by, instructions }) => {
            format!("{instructions} (by {by})")
        }
        _ => String::new(),
    };
    let mut output = String::new();
    for (name, text) in [("stdout", &record.stdout), ("stderr", &record.stderr)] {
        if !text.is_empty() {
            output.push_str(&format!("--- {name} ---\n{}", tail(text)));
            if !output.ends_with('\n') {
                output.push('\n');
            }
        }
    }
    StepRow {
        id: record.step_id.clone(),
        title: step.map(|s| s.name().to_string()).unwrap_or_default(),
        kind: step.map(|s| s.kind.keyword()).unwrap_or("").into(),
        state: record.state.as_str().into(),
        attempt: record.attempt,
        started: record.started_at_ms.map(view::at).unwrap_or_default(),
        took,
        expected: step
            .and_then(|s| s.expected)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        exit: record
            .exit_status
            .map(|c| c.to_string())
            .unwrap_or_default(),
        note: record.note.clone().unwrap_or_default(),
        instructions,
        output,
        waiting: record.state == StepState::WaitingManual,
        in_doubt: record.state == StepState::InDoubt,
        failed: matches!(record.state, StepState::Failed | StepState::Aborted),
    }
}

/// Each step as the Gantt chart draws it: every attempt's start from the journal's
/// `step_started` events (the record keeps only the last), in milliseconds after the run began.
fn actual_steps(run: &Run, records: &[StepRecord], events: &[Event]) -> Vec<ActualStep> {
    let after = |t: i64| u64::try_from(t - run.created_at_ms).unwrap_or(0);
    records
        .iter()
        .map(|r| {
            let mut attempts: Vec<u64> = events
                .iter()
                .filter(|e| e.kind == "step_started" && e.step_id.as_deref() == Some(&r.step_id))
                .map(|e| after(e.at_ms))
                .collect();
            if attempts.is_empty()
                && let Some(t) = r.started_at_ms
            {
                attempts.push(after(t));
            }
            ActualStep {
                id: r.step_id.clone(),
                state: r.state.as_str().to_string(),
                attempts,
                finished: r.finished_at_ms.map(after),
            }
        })
        .collect()
}

fn run_view(run: &Run, records: &[StepRecord], events: &[Event], session: &Session) -> RunView {
    let plan = backout_model::lint(&run.plan_source).plan;
    let now = now();
    let end = run.finished_at_ms.unwrap_or(if run.state.is_terminal() {
        run.updated_at_ms
    } else {
        now
    });
    let gantt = plan.as_ref().map_or_else(String::new, |plan| {
        backout_model::render::run_gantt(
            plan,
            &actual_steps(run, records, events),
            backout_model::Duration::from_millis(
                u64::try_from(end - run.created_at_ms).unwrap_or(0),
            ),
        )
    });
    let needs: HashMap<&str, Vec<&str>> = records
        .iter()
        .map(|r| {
            let step = plan
                .as_ref()
                .and_then(|p| p.all_steps().find(|s| s.id == r.step_id));
            (
                r.step_id.as_str(),
                step.map(|s| s.needs.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let ids: Vec<&str> = records.iter().map(|r| r.step_id.as_str()).collect();
    let depth = layers_of(&ids, &needs);
    let deepest = depth.values().copied().max().unwrap_or(0);
    let layers = (1..=deepest)
        .map(|number| Layer {
            number,
            steps: records
                .iter()
                .filter(|r| depth.get(&r.step_id) == Some(&number))
                .map(|r| step_row(r, plan.as_ref(), now))
                .collect(),
        })
        .collect();
    RunView {
        state: run.state.as_str().into(),
        kind: run.kind.as_str().into(),
        release_id: run.release_id.clone().unwrap_or_default(),
        actor: run.actor.clone(),
        created: view::at(run.created_at_ms),
        finished: run.finished_at_ms.map(view::at).unwrap_or_default(),
        terminal: run.state.is_terminal(),
        layers,
        can_act: session.is(Role::Performer) && !run.state.is_terminal(),
        can_recover: session.is(Role::Performer)
            && !matches!(run.state, RunState::Succeeded | RunState::Refused),
        gantt,
    }
}

async fn load(state: &AppState, id: &str, session: &Session) -> Result<RunView, UiError> {
    let run = state.store.get_run(id).await?;
    let records = state.store.list_steps(id).await?;
    let events = state.store.run_events(id, 0, JOURNAL_EVENTS).await?;
    Ok(run_view(&run, &records, &events, session))
}

/// `GET /ui/runs/{id}`
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> UiResult {
    let r = load(&state, &id, &session).await?;
    Ok(page::render(&RunPage {
        me: Me::of(&session),
        id,
        r,
    }))
}

/// `GET /ui/runs/{id}/steps`: the live part of the page alone, for the script to swap in.
pub async fn steps_fragment(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> UiResult {
    let r = load(&state, &id, &session).await?;
    Ok(page::render(&StepsFragment {
        me: Me::of(&session),
        id,
        r,
    }))
}

/// `GET /ui/runs/{id}/events`: the run's journal, then live, as server-sent events (the same
/// stream as `GET /api/v1/runs/{id}/events`).
pub async fn events(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> UiResult {
    Ok(state.hub.follow(id, &headers).await?)
}

fn back_to(id: &str) -> axum::response::Response {
    Redirect::to(&format!("/ui/runs/{id}")).into_response()
}

/// `POST /ui/runs/{id}/steps/{step}/confirm`: a manual step is done.
pub async fn confirm(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Performer, "confirm steps")?;
    let user = &posted.caller().user;
    let run = state.store.get_run(&id).await?;
    decide::may_act(
        state.store.as_ref(),
        &run,
        decide::Act::Confirm(&step),
        user,
    )
    .await?;
    backout_core::executor::confirm(
        state.store.as_ref(),
        &id,
        &step,
        user,
        posted.optional("note"),
        now(),
    )
    .await?;
    Ok(back_to(&id))
}

/// `POST /ui/runs/{id}/steps/{step}/resolve`: an in-doubt step took effect, failed, or is to
/// be retried.
pub async fn resolve(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Performer, "resolve steps")?;
    let target = match posted.text("outcome") {
        "done" => StepTarget::Done,
        "failed" => StepTarget::Failed,
        "retry" => StepTarget::Retry,
        other => {
            return Err(UiError::new(
                StatusCode::BAD_REQUEST,
                format!("outcome `{other}`: expected done, failed or retry"),
            ));
        }
    };
    let user = &posted.caller().user;
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, decide::Act::Resolve, user).await?;
    backout_core::executor::resolve(
        state.store.as_ref(),
        &id,
        &step,
        target,
        user,
        posted.optional("note"),
        now(),
    )
    .await?;
    Ok(back_to(&id))
}

/// `POST /ui/runs/{id}/steps/{step}/retry`: the failed step gets a new attempt; a run that
/// ended is reopened and this server's executor continues it.
pub async fn retry(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Performer, "retry steps")?;
    let user = &posted.caller().user;
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, decide::Act::Retry, user).await?;
    backout_core::executor::retry(state.store.as_ref(), &id, &[step], user, now()).await?;
    let _ = state.rollbacks.take_over().await;
    Ok(back_to(&id))
}

/// `POST /ui/runs/{id}/steps/{step}/skip`: the step counts as done by other means, with the
/// reason; its dependants proceed.
pub async fn skip(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Performer, "skip steps")?;
    let user = &posted.caller().user;
    let reason = posted.text("reason");
    if reason.trim().is_empty() {
        return Err(UiError::new(
            StatusCode::BAD_REQUEST,
            "a skip needs a reason: say how the step's effect was achieved",
        ));
    }
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, decide::Act::Skip, user).await?;
    backout_core::executor::skip(state.store.as_ref(), &id, &step, reason, user, now()).await?;
    let _ = state.rollbacks.take_over().await;
    Ok(back_to(&id))
}

/// `POST /ui/runs/{id}/abort`: running steps are stopped, nothing new starts.
pub async fn abort(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Performer, "abort runs")?;
    let reason = posted.optional("reason").unwrap_or("no reason given");
    let run = state.store.get_run(&id).await?;
    decide::may_act(
        state.store.as_ref(),
        &run,
        decide::Act::Abort,
        &posted.caller().user,
    )
    .await?;
    backout_core::executor::abort(
        state.store.as_ref(),
        &id,
        &posted.caller().user,
        reason,
        now(),
    )
    .await?;
    Ok(back_to(&id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_fall_into_layers_by_their_needs() {
        let needs: HashMap<&str, Vec<&str>> = [
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["a", "outside"]),
            ("d", vec!["b", "c"]),
        ]
        .into_iter()
        .collect();
        let layers = layers_of(&["a", "b", "c", "d"], &needs);
        assert_eq!(layers["a"], 1);
        assert_eq!(layers["b"], 2);
        assert_eq!(layers["c"], 2);
        assert_eq!(layers["d"], 3);
    }

    #[test]
    fn long_output_keeps_its_end() {
        let text = "é".repeat(OUTPUT_CHARS);
        let cut = tail(&text);
        assert!(cut.len() <= OUTPUT_CHARS);
        assert!(text.ends_with(cut));
    }
}
