//! The releases list (with the form that starts a release from a pasted plan), a release's
//! page (window, checkpoints, criteria with charts, verdict, decisions, the buttons the
//! signed-in user may use) and its rendered plan document.
//!
//! Every form calls the same core operation as `api.rs` does, after the same role check, with
//! the signed-in user as the actor: the plan's rules are enforced there, and a refusal is shown
//! with the core's message.

use std::collections::{HashMap, VecDeque};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use backout_core::clock::{Clock, SystemClock};
use backout_core::criteria::{Observation, Verdict};
use backout_core::release::{self, StartRelease, decide};
use backout_model::Plan;
use backout_store::{Release, Role};

use super::chart;
use super::page::{self, UiError, UiResult};
use super::session::{Posted, Session};
use super::view::{self, Me};
use crate::state::AppState;

/// Measurements kept per criterion for its chart.
const CHART_POINTS: usize = 60;
/// Releases on the list.
const LIST_LIMIT: u32 = 100;
/// Events in a release's history.
const HISTORY_LIMIT: usize = 50;

fn now() -> i64 {
    SystemClock.now_ms()
}

/// One release on the list.
struct Row {
    id: String,
    service: String,
    version: String,
    environment: String,
    opened: String,
    window: String,
    verdict: String,
}

/// One lint diagnostic of a plan that was refused.
struct Problem {
    line: usize,
    column: usize,
    code: String,
    message: String,
    help: String,
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ListPage {
    me: Me,
    can_start: bool,
    rows: Vec<Row>,
    plan: String,
    version: String,
    rollback_to: String,
    problems: Vec<Problem>,
    error: Option<String>,
}

/// The verdict of a release: the watcher's latest when this replica watches it, else replayed
/// from the journal.
async fn verdict_of(
    state: &AppState,
    release: &Release,
    seen: &HashMap<String, Verdict>,
) -> String {
    if let Some(verdict) = seen.get(&release.id) {
        return verdict.as_str().into();
    }
    match release::status(state.store.as_ref(), &release.id, now()).await {
        Ok(status) => status
            .report
            .map_or("unknown", |r| r.verdict.as_str())
            .into(),
        Err(_) => "unknown".into(),
    }
}

async fn list_page(state: &AppState, session: &Session) -> Result<ListPage, UiError> {
    let releases = state.store.list_releases(LIST_LIMIT).await?;
    let seen = state.verdicts();
    let now = now();
    let mut rows = Vec::with_capacity(releases.len());
    for release in &releases {
        rows.push(Row {
            id: release.id.clone(),
            service: release.service.clone(),
            version: release.version.clone(),
            environment: release.environment.clone(),
            opened: view::at(release.opened_at_ms),
            window: view::window(
                release.closes_at_ms,
                release.closed_at_ms.is_some(),
                release.close_reason.as_deref(),
                now,
            ),
            verdict: verdict_of(state, release, &seen).await,
        });
    }
    Ok(ListPage {
        me: Me::of(session),
        can_start: session.is(Role::Performer),
        rows,
        plan: String::new(),
        version: String::new(),
        rollback_to: String::new(),
        problems: Vec::new(),
        error: None,
    })
}

/// `GET /ui/releases`: newest first.
pub async fn list(State(state): State<AppState>, session: Session) -> UiResult {
    Ok(page::render(&list_page(&state, &session).await?))
}

/// `POST /ui/releases`: starts a release guarded by the pasted plan; an invalid plan comes
/// back with its diagnostics, located by line and column.
pub async fn start(State(state): State<AppState>, posted: Posted) -> UiResult {
    posted.caller().require(Role::Performer, "start releases")?;
    let plan = posted.text("plan").to_string();
    let version = posted.optional("version");
    let rollback_to = posted.optional("rollback_to");
    let refuse = |mut list: ListPage, status: StatusCode| {
        list.plan = plan.clone();
        list.version = version.unwrap_or_default().to_string();
        list.rollback_to = rollback_to.unwrap_or_default().to_string();
        let mut response = page::render(&list);
        *response.status_mut() = status;
        response
    };
    if plan.trim().is_empty() {
        let mut list = list_page(&state, &posted.session).await?;
        list.error = Some("paste the plan's YAML".into());
        return Ok(refuse(list, StatusCode::BAD_REQUEST));
    }
    let linted = backout_model::lint(&plan);
    if linted.plan.is_none() {
        let mut list = list_page(&state, &posted.session).await?;
        list.problems = linted
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| Problem {
                line: d.span.line,
                column: d.span.column,
                code: d.code.to_string(),
                message: d.message.clone(),
                help: d.help.clone().unwrap_or_default(),
            })
            .collect();
        list.error = Some(format!(
            "the plan has {} error(s); nothing was started",
            list.problems.len()
        ));
        return Ok(refuse(list, StatusCode::UNPROCESSABLE_ENTITY));
    }
    let started = release::start(
        state.store.as_ref(),
        &StartRelease {
            source: &plan,
            version,
            rollback_to,
            actor: &posted.caller().user,
            at_ms: now(),
        },
    )
    .await?;
    tracing::info!(release = %started.id, user = %posted.caller().user, "release started from the web UI");
    Ok(Redirect::to(&format!("/ui/releases/{}", started.id)).into_response())
}

/// One criterion with its last value against its condition and its recent measurements.
pub struct CriterionRow {
    id: String,
    title: String,
    status: String,
    condition: String,
    last: String,
    measured: String,
    streak: String,
    chart: String,
}

/// What the status part of a release page shows (also served alone, for htmx to refresh).
pub struct StatusView {
    /// Open, rolling_back, rolled_back, rollback_unverified, rollback_failed, succeeded, closed.
    outcome: String,
    verdict: String,
    why: String,
    window: String,
    decision: String,
    criteria: Vec<CriterionRow>,
}

/// One event of a release's history.
struct HistoryRow {
    at: String,
    kind: String,
    actor: String,
    text: String,
}

struct CheckpointRow {
    name: String,
    at: String,
    actor: String,
}

struct RunRow {
    id: String,
    state: String,
    started: String,
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    me: Me,
    id: String,
    s: StatusView,
    service: String,
    version: String,
    rollback_to: String,
    environment: String,
    opened: String,
    opened_by: String,
    reached: Vec<CheckpointRow>,
    remaining: Vec<String>,
    history: Vec<HistoryRow>,
    runs: Vec<RunRow>,
    can_checkpoint: bool,
    can_request: bool,
    can_decide: bool,
    can_execute: bool,
    window_closed: bool,
}

#[derive(Template)]
#[template(path = "release_status.html")]
struct StatusFragment {
    id: String,
    s: StatusView,
}

/// What the page needs from the release's journal besides its status, gathered in the same
/// pass as the status ([`release::view`]): each criterion's recent measurements, the history of
/// people's actions, and the release's runs.
#[derive(Default)]
struct Journal {
    points: HashMap<String, VecDeque<(i64, Option<f64>)>>,
    history: VecDeque<HistoryRow>,
    /// Runs started for the release, in order.
    runs: Vec<String>,
}

/// The number a measurement plots: the worst (largest) value of its series, 1 or 0 for a
/// source that judges by itself, none for no data or an error.
fn plotted(observation: &Observation) -> Option<f64> {
    match observation {
        Observation::Values { series } => series
            .iter()
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .reduce(f64::max),
        Observation::Judged { failing, .. } => Some(if *failing { 1.0 } else { 0.0 }),
        Observation::NoData | Observation::Error { .. } => None,
    }
}

fn described(event: &backout_store::Event) -> Option<String> {
    let text = |key: &str| {
        event
            .payload
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    Some(match event.kind.as_str() {
        "release_started" => format!(
            "started {} (rollback to {})",
            text("version"),
            text("rollback_to")
        ),
        "checkpoint_reached" => format!("checkpoint {}", text("checkpoint")),
        "window_closed" => format!("window closed: {}", text("reason")),
        "window_closing" => "the window closes soon".into(),
        "verdict" => format!("verdict {}", text("verdict")),
        "rollback_requested" => format!("rollback requested: {}", text("reason")),
        "decision_requested" => "deciders asked for a decision".into(),
        "escalated" => "escalated to the fallback deciders".into(),
        "decision" => format!("{}: {}", text("decision"), text("reason")),
        "execution_started" => "execution started".into(),
        "execution_abandoned" => format!("execution abandoned: {}", text("error")),
        _ => return None,
    })
}

impl Journal {
    fn see(&mut self, event: &backout_store::Event) {
        if event.kind == "measurement" {
            let criterion = event.payload.get("criterion").and_then(|v| v.as_str());
            let observation = event
                .payload
                .get("observation")
                .cloned()
                .and_then(|o| serde_json::from_value::<Observation>(o).ok());
            if let (Some(criterion), Some(observation)) = (criterion, observation) {
                let points = self.points.entry(criterion.to_string()).or_default();
                points.push_back((event.at_ms, plotted(&observation)));
                if points.len() > CHART_POINTS {
                    points.pop_front();
                }
            }
            return;
        }
        if event.kind == "run_started"
            && let Some(run) = &event.run_id
        {
            self.runs.push(run.clone());
        }
        if let Some(text) = described(event) {
            self.history.push_back(HistoryRow {
                at: view::at(event.at_ms),
                kind: event.kind.clone(),
                actor: event.actor.clone(),
                text,
            });
            if self.history.len() > HISTORY_LIMIT {
                self.history.pop_front();
            }
        }
    }
}

/// The release's status, plan, decisions and the page's journal, from one read of its journal.
async fn journal(
    state: &AppState,
    release_id: &str,
) -> Result<(release::ReleaseView, Journal), UiError> {
    let mut journal = Journal::default();
    let view = release::view(state.store.as_ref(), release_id, now(), |e| journal.see(e)).await?;
    Ok((view, journal))
}

fn status_view(
    status: &release::ReleaseStatus,
    plan: Option<&Plan>,
    journal: &Journal,
) -> StatusView {
    let now = status.now_ms;
    let release = &status.release;
    let criteria_of = |id: &str| {
        plan.and_then(|p| p.criteria.given())
            .and_then(|c| c.rollback_when.iter().find(|c| c.id == id))
    };
    let criteria = status
        .report
        .iter()
        .flat_map(|r| r.criteria.iter())
        .map(|c| {
            let criterion = criteria_of(&c.id);
            let fails = criterion.and_then(|c| c.fails_if);
            let passes = criterion.and_then(|c| c.passes_if);
            let condition = match (fails, passes) {
                (Some(f), Some(p)) => {
                    format!("fails if {}; passes if {}", f.describe(), p.describe())
                }
                (Some(f), None) => format!("fails if {}", f.describe()),
                (None, Some(p)) => format!("passes if {}", p.describe()),
                (None, None) => "judged by its source".into(),
            };
            let streak = if c.state.consecutive_failures > 0 {
                format!("{} failing in a row", c.state.consecutive_failures)
            } else if c.state.consecutive_errors > 0 {
                format!("{} source errors in a row", c.state.consecutive_errors)
            } else {
                String::new()
            };
            let points: Vec<(i64, Option<f64>)> = journal
                .points
                .get(&c.id)
                .map(|p| p.iter().copied().collect())
                .unwrap_or_default();
            CriterionRow {
                id: c.id.clone(),
                title: c.title.clone(),
                status: c.state.status.as_str().into(),
                condition,
                last: c
                    .state
                    .last_reason
                    .clone()
                    .unwrap_or_else(|| "no measurement yet".into()),
                measured: c
                    .state
                    .last_measured_ms
                    .map(|t| view::ago(t, now))
                    .unwrap_or_default(),
                streak,
                chart: chart::sparkline(
                    &points,
                    // A baseline condition has no fixed line to draw.
                    fails.filter(|f| !f.is_relative()).map(|f| f.threshold),
                    &format!("recent measurements of {}", c.id),
                ),
            }
        })
        .collect();
    let (verdict, why) = match &status.report {
        Some(report) => {
            let mut why: Vec<String> = report
                .criteria
                .iter()
                .filter(|c| {
                    use backout_core::criteria::CriterionStatus as S;
                    // Why the verdict is what it is: the tripped ones, or for `degrading` the
                    // ones failing or erring below their thresholds.
                    matches!(
                        (report.verdict, c.state.status),
                        (_, S::Tripped) | (Verdict::Degrading, S::Failing | S::Erring)
                    )
                })
                .map(|c| c.id.clone())
                .collect();
            if report.requested && report.verdict == Verdict::RollbackRequired {
                why.insert(0, "a person requested it".into());
            }
            (report.verdict.as_str().to_string(), why.join(", "))
        }
        None => ("unknown".into(), "the stored plan no longer lints".into()),
    };
    StatusView {
        outcome: status.outcome.as_str().into(),
        verdict,
        why,
        window: view::window(
            release.closes_at_ms,
            release.closed_at_ms.is_some(),
            release.close_reason.as_deref(),
            now,
        ),
        decision: status.decision.clone().unwrap_or_default(),
        criteria,
    }
}

/// `GET /ui/releases/{id}`
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> UiResult {
    let (
        release::ReleaseView {
            status,
            plan,
            decisions,
        },
        journal,
    ) = journal(&state, &id).await?;
    let plan = plan.as_deref();
    let s = status_view(&status, plan, &journal);
    let release = &status.release;
    let now = status.now_ms;
    let window_closed = release.window_closed(now);
    let decisions = &decisions;
    let user = &session.caller.user;
    let can_decide = session.is(Role::Decider)
        && plan.is_some_and(|p| decide::may_decide(p, decisions, user, now));
    let approved = plan.is_some_and(|p| {
        decisions.executions.is_empty()
            && (decisions.approved_at_ms.is_some()
                || (p.authorization.given().is_none()
                    && s.verdict == Verdict::RollbackRequired.as_str()))
    });
    let remaining: Vec<String> = plan
        .map(|p| {
            p.release
                .checkpoints
                .iter()
                .filter(|c| !release.reached(c))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // The release's own runs, found in its journal (not among every run of the store).
    let mut runs = Vec::new();
    for run_id in journal.runs.iter().rev() {
        let r = state.store.get_run(run_id).await?;
        runs.push(RunRow {
            id: r.id,
            state: r.state.as_str().into(),
            started: view::at(r.created_at_ms),
        });
    }
    let page = ReleasePage {
        me: Me::of(&session),
        id: id.clone(),
        service: release.service.clone(),
        version: release.version.clone(),
        rollback_to: release.rollback_to.clone(),
        environment: release.environment.clone(),
        opened: view::at(release.opened_at_ms),
        opened_by: release.actor.clone(),
        reached: release
            .checkpoints
            .iter()
            .map(|c| CheckpointRow {
                name: c.name.clone(),
                at: view::at(c.at_ms),
                actor: c.actor.clone(),
            })
            .collect(),
        can_checkpoint: session.is(Role::Performer) && !window_closed && !remaining.is_empty(),
        remaining,
        history: journal.history.into_iter().rev().collect(),
        runs,
        can_request: session.is(Role::Performer) && !window_closed,
        can_decide,
        can_execute: session.is(Role::Performer) && approved,
        window_closed,
        s,
    };
    Ok(page::render(&page))
}

/// `GET /ui/releases/{id}/status`: the verdict and criteria alone (htmx refreshes them).
pub async fn status_fragment(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> UiResult {
    let (view, journal) = journal(&state, &id).await?;
    let s = status_view(&view.status, view.plan.as_deref(), &journal);
    Ok(page::render(&StatusFragment { id, s }))
}

/// `GET /ui/releases/{id}/plan`: the plan as `backout render --format html` draws it (a whole
/// page of its own, served under a policy that allows no script).
pub async fn plan_document(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> UiResult {
    let release = state.store.get_release(&id).await?;
    let plan = backout_model::lint(&release.plan_source)
        .plan
        .ok_or_else(|| {
            UiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the plan stored with release `{id}` no longer lints"),
            )
        })?;
    let info = backout_model::render::DocumentInfo::new(
        format!("{} {} (release {id})", release.service, release.version),
        release.plan_hash.clone(),
    );
    Ok(page::document(backout_model::render::html(&plan, &info)))
}

fn back_to(id: &str) -> axum::response::Response {
    Redirect::to(&format!("/ui/releases/{id}")).into_response()
}

/// `POST /ui/releases/{id}/checkpoint`
pub async fn checkpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> UiResult {
    posted
        .caller()
        .require(Role::Performer, "report checkpoints")?;
    let name = posted.text("name");
    release::checkpoint(
        state.store.as_ref(),
        &id,
        name,
        &posted.caller().user,
        now(),
    )
    .await?;
    Ok(back_to(&id))
}

/// `POST /ui/releases/{id}/request`: a person asks for a rollback.
pub async fn request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> UiResult {
    posted
        .caller()
        .require(Role::Performer, "request rollbacks")?;
    let reason = posted.text("reason");
    release::request(
        state.store.as_ref(),
        &id,
        reason,
        &posted.caller().user,
        now(),
    )
    .await?;
    Ok(back_to(&id))
}

/// `POST /ui/releases/{id}/decide`: approve or deny with a reason, as the signed-in user.
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> UiResult {
    posted.caller().require(Role::Decider, "decide rollbacks")?;
    let choice = match posted.text("decision") {
        "approve" => decide::Choice::Approve,
        "deny" => decide::Choice::Deny,
        other => {
            return Err(UiError::new(
                StatusCode::BAD_REQUEST,
                format!("decision `{other}`: expected approve or deny"),
            ));
        }
    };
    let decided = decide::decide(
        state.store.as_ref(),
        &decide::Decide {
            release_id: &id,
            actor: &posted.caller().user,
            choice,
            reason: posted.text("reason"),
            override_window: posted.checked("override_window"),
            now_ms: now(),
        },
    )
    .await?;
    tracing::info!(release = %id, user = %posted.caller().user, decision = choice.as_str(), approved = decided.approved, "decision from the web UI");
    Ok(back_to(&id))
}

/// `POST /ui/releases/{id}/execute`: starts the approved rollback in the background and
/// shows its run.
pub async fn execute(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted,
) -> UiResult {
    posted
        .caller()
        .require(Role::Performer, "execute rollbacks")?;
    let user = posted.caller().user.clone();
    crate::plans::require_accepted(state.store.as_ref(), &id).await?;
    let cleared = decide::clear_execution(state.store.as_ref(), &id, &user, now()).await?;
    let run_id = state
        .rollbacks
        .start(cleared, user.clone())
        .await
        .map_err(UiError::from)?;
    tracing::info!(release = %id, run = %run_id, user = %user, "rollback started from the web UI");
    Ok(Redirect::to(&format!("/ui/runs/{run_id}")).into_response())
}
