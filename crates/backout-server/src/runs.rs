//! The run handlers of `/api/v1`: a run and its steps, what people do to them, and its live
//! event stream. As in [`crate::api`], each checks the token's role, then the core decides
//! (`decide::may_act`) whether the plan lets the token's user act on the run.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use backout_api as api;
use backout_api::ErrorBody;
use backout_core::StepTarget;
use backout_core::release::decide::{self, Act};
use backout_store::Role;

use crate::api::{Answer, Body, MaybeBody, now};
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

/// `GET /api/v1/runs/{id}`: the run and its steps (as `backout status RUN --format json`).
///
/// `plan_source` (beside the run, which stays without it) lets a client print each step's
/// `expected` and the service, as `backout status RUN` does.
#[utoipa::path(
    get, path = "/api/v1/runs/{id}", operation_id = "getRun", tag = "runs",
    extensions(("x-backout-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The run (`run-…`).")),
    responses(
        (status = 200, description = "The run, its steps and its plan text.", body = api::RunWithSteps),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<api::RunWithSteps> {
    run_with_steps(&state, &id).await.map(Json)
}

async fn run_with_steps(state: &AppState, id: &str) -> Result<api::RunWithSteps, ApiError> {
    let run = state.store.get_run(id).await?;
    let steps = state.store.list_steps(id).await?;
    let executor_gone =
        backout_core::executor::executor_gone_at(state.store.as_ref(), &run, now()).await;
    Ok(api::RunWithSteps {
        run: api::Run::from(&run),
        steps: steps.iter().map(api::Step::from).collect(),
        plan_source: run.plan_source,
        executor_gone,
    })
}

/// `POST /api/v1/runs/{id}/steps/{step}/confirm`: a manual step is done.
///
/// Needs a performer's token; the plan's performers rule applies to the token's user. The
/// body may be left out.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/steps/{step}/confirm", operation_id = "confirmStep", tag = "runs",
    extensions(("x-backout-role" = json!("performer"))),
    params(
        ("id" = String, Path, description = "The run (`run-…`)."),
        ("step" = String, Path, description = "The step's id in the plan."),
    ),
    request_body(content = Option<api::NoteRequest>, description = "May be left out."),
    responses(
        (status = 200, description = "The run after the confirmation.", body = api::RunWithSteps),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such run or step.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    MaybeBody(body): MaybeBody<api::NoteRequest>,
) -> Answer<api::RunWithSteps> {
    caller.require(Role::Performer, "confirm steps")?;
    let run = state.store.get_run(&id).await?;
    decide::may_act(
        state.store.as_ref(),
        &run,
        Act::Confirm(&step),
        &caller.user,
    )
    .await?;
    backout_core::executor::confirm(
        state.store.as_ref(),
        &id,
        &step,
        &caller.user,
        body.note.as_deref(),
        now(),
    )
    .await?;
    get_run(State(state), Path(id)).await
}

/// `POST /api/v1/runs/{id}/steps/{step}/resolve`: an in-doubt step took effect, failed, or is to
/// be retried.
///
/// Needs a performer's token.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/steps/{step}/resolve", operation_id = "resolveStep", tag = "runs",
    extensions(("x-backout-role" = json!("performer"))),
    params(
        ("id" = String, Path, description = "The run (`run-…`)."),
        ("step" = String, Path, description = "The step's id in the plan."),
    ),
    request_body = api::ResolveRequest,
    responses(
        (status = 200, description = "The run after the resolution.", body = api::RunWithSteps),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such run or step.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn resolve(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    Body(body): Body<api::ResolveRequest>,
) -> Answer<api::RunWithSteps> {
    caller.require(Role::Performer, "resolve steps")?;
    let target = match body.outcome {
        api::ResolveOutcome::Done => StepTarget::Done,
        api::ResolveOutcome::Failed => StepTarget::Failed,
        api::ResolveOutcome::Retry => StepTarget::Retry,
    };
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, Act::Resolve, &caller.user).await?;
    backout_core::executor::resolve(
        state.store.as_ref(),
        &id,
        &step,
        target,
        &caller.user,
        body.note.as_deref(),
        now(),
    )
    .await?;
    get_run(State(state), Path(id)).await
}

/// `POST /api/v1/runs/{id}/abort`: running steps are stopped, nothing new starts.
///
/// Needs a performer's token. The body may be left out.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/abort", operation_id = "abortRun", tag = "runs",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The run (`run-…`).")),
    request_body(content = Option<api::AbortRequest>, description = "May be left out."),
    responses(
        (status = 200, description = "The run after the abort.", body = api::RunWithSteps),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn abort(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<api::AbortRequest>,
) -> Answer<api::RunWithSteps> {
    caller.require(Role::Performer, "abort runs")?;
    let reason = body.reason.unwrap_or_else(|| "no reason given".into());
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, Act::Abort, &caller.user).await?;
    backout_core::executor::abort(state.store.as_ref(), &id, &caller.user, &reason, now()).await?;
    get_run(State(state), Path(id)).await
}

/// `POST /api/v1/runs/{id}/retry`: failed (or the named) steps get a new attempt.
///
/// A run that ended is reopened and the server's executor continues it at once. Needs a
/// performer's token. The body may be left out.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/retry", operation_id = "retryRun", tag = "runs",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The run (`run-…`).")),
    request_body(content = Option<api::RetryRequest>, description = "May be left out."),
    responses(
        (status = 200, description = "The run after the retry.", body = api::RunWithSteps),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<api::RetryRequest>,
) -> Answer<api::RunWithSteps> {
    caller.require(Role::Performer, "retry steps")?;
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, Act::Retry, &caller.user).await?;
    let steps =
        backout_core::executor::retry(state.store.as_ref(), &id, &body.steps, &caller.user, now())
            .await?;
    tracing::info!(run = %id, user = %caller.user, ?steps, "steps to be retried");
    continue_reopened(&state).await;
    get_run(State(state), Path(id)).await
}

/// `POST /api/v1/runs/{id}/steps/{step}/skip`: the step counts as done by other means.
///
/// With the reason; its dependants proceed. Needs a performer's token.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/steps/{step}/skip", operation_id = "skipStep", tag = "runs",
    extensions(("x-backout-role" = json!("performer"))),
    params(
        ("id" = String, Path, description = "The run (`run-…`)."),
        ("step" = String, Path, description = "The step's id in the plan."),
    ),
    request_body = api::SkipRequest,
    responses(
        (status = 200, description = "The run after the skip.", body = api::RunWithSteps),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such run or step.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn skip(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    Body(body): Body<api::SkipRequest>,
) -> Answer<api::RunWithSteps> {
    caller.require(Role::Performer, "skip steps")?;
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, Act::Skip, &caller.user).await?;
    backout_core::executor::skip(
        state.store.as_ref(),
        &id,
        &step,
        &body.reason,
        &caller.user,
        now(),
    )
    .await?;
    continue_reopened(&state).await;
    get_run(State(state), Path(id)).await
}

/// A run reopened by a person is continued by this server's executor now, not at the next scan.
async fn continue_reopened(state: &AppState) {
    if let Err(error) = state.rollbacks.take_over().await {
        tracing::warn!(%error, "could not take over the reopened run now; the next scan will");
    }
}

/// `GET /api/v1/runs/{id}/events`: the run's journal, then live (server-sent events).
///
/// Messages: `journal` (data: a `JournalEvent`, id: its `seq`; send `Last-Event-ID` to resume
/// after it), `resync` (data: a `StreamResync`; the client fell behind, what it missed follows)
/// and `end` (data: a `StreamEnd`; the run ended, the stream closes). A run that waits for a
/// person keeps the stream open.
#[utoipa::path(
    get, path = "/api/v1/runs/{id}/events", operation_id = "runEvents", tag = "runs",
    extensions(("x-backout-role" = json!("viewer"))),
    params(
        ("id" = String, Path, description = "The run (`run-…`)."),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this `seq`."),
    ),
    responses(
        (status = 200, description = "A stream of server-sent events.", content_type = "text/event-stream", body = String),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such run.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    Ok(state.hub.follow(id, &headers).await?)
}
