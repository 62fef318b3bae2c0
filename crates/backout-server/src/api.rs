//! The handlers of `/api/v1`. Each one checks the token's role, then calls the same core
//! operation as the CLI with the token's user as the actor: the plan's `people` rules, the
//! window and the quorum are enforced there, never here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use backout_core::StepTarget;
use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::release::decide::Act;
use backout_core::release::{self, StartRelease, decide};
use backout_store::{Role, Run, verify_store};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

type ApiResult = Result<axum::response::Response, ApiError>;

/// `Json<T>` whose rejections (malformed JSON, unknown fields, a body over the limit) are
/// [`ApiError`]s like every other failure.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// A JSON body that may be left out entirely (`{}` is assumed): optional notes and reasons.
pub struct MaybeBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    crate::errors::code_of(rejection.status()),
                    rejection.body_text(),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(MaybeBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))
    }
}

fn now() -> i64 {
    SystemClock.now_ms()
}

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

/// A run without its plan text (the run's page does not need to repeat it).
pub fn run_json(run: &Run) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("plan_source");
    }
    value
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/releases`: newest first, with the verdict the watcher last saw.
pub async fn list_releases(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let releases = state.store.list_releases(limit).await?;
    let verdicts = state.verdicts();
    let now = now();
    let mut outcomes = Vec::with_capacity(releases.len());
    for release in &releases {
        outcomes.push(
            decide::load(state.store.as_ref(), &release.id)
                .await
                .ok()
                .map(|l| decide::Outcome::of(&l.release, &l.decisions).as_str()),
        );
    }
    let items: Vec<Value> = releases
        .iter()
        .zip(outcomes)
        .map(|(release, outcome)| {
            let mut value = serde_json::to_value(release).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.remove("plan_source");
                if let Some(outcome) = outcome {
                    map.insert("outcome".into(), outcome.into());
                }
                map.insert("window_closed".into(), release.window_closed(now).into());
                if let Some(verdict) = verdicts.get(&release.id) {
                    map.insert(
                        "verdict".into(),
                        serde_json::to_value(verdict).unwrap_or_default(),
                    );
                }
            }
            value
        })
        .collect();
    ok(json!({ "releases": items }))
}

/// `GET /api/v1/releases/{id}`: as `backout status REL --format json`.
pub async fn get_release(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    let mut value = status.to_json();
    // For clients that print the release as the CLI does (`BACKOUT_SERVER`): the checkpoints
    // the plan declares (and which one closes the window), and `requested`, which says why
    // the verdict is rollback_required.
    if let Some(map) = value.as_object_mut() {
        if let Some(plan) = backout_model::lint(&status.release.plan_source).plan {
            let no_return = plan
                .window
                .given()
                .and_then(|w| w.closes_at_checkpoint.clone());
            map.insert(
                "plan_checkpoints".into(),
                json!({ "declared": plan.release.checkpoints, "point_of_no_return": no_return }),
            );
        }
        if let Some(report) = &status.report {
            map.insert("requested".into(), report.requested.into());
        }
    }
    ok(value)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The plan's YAML text (stored with the release; its hash guards it).
    plan: String,
    version: Option<String>,
    rollback_to: Option<String>,
    /// When the deployment happened, RFC 3339 (default: now).
    at: Option<String>,
    /// Refuse unless the plan is accepted (`backout start --require-accepted`).
    #[serde(default)]
    require_accepted: bool,
}

/// Refuses a plan whose content hash nobody accepted.
async fn require_plan_accepted(state: &AppState, source: &str) -> Result<(), ApiError> {
    let linted = backout_model::lint(source);
    let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
        return Ok(()); // `valid` already refused it.
    };
    if release::accept::acceptance(state.store.as_ref(), &hash)
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "refused",
            release::accept::not_accepted(&plan, "refusing to open the release"),
        ));
    }
    Ok(())
}

/// `POST /api/v1/releases`: opens a release guarded by the plan in the body.
pub async fn start_release(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<StartBody>,
) -> ApiResult {
    caller.require(Role::Performer, "start releases")?;
    crate::plans::valid(&body.plan, "plan.yaml")?;
    if state.require_accepted || body.require_accepted {
        require_plan_accepted(&state, &body.plan).await?;
    }
    let at_ms = match &body.at {
        Some(at) => {
            let at_ms = backout_core::time::parse_rfc3339(at)
                .map_err(|e| ApiError::bad_request(format!("at: {e}")))?;
            if at_ms > now() + 60_000 {
                return Err(ApiError::bad_request(format!(
                    "at {at} is in the future; give the time the deployment happened"
                )));
            }
            at_ms
        }
        None => now(),
    };
    let started = release::start(
        state.store.as_ref(),
        &StartRelease {
            source: &body.plan,
            version: body.version.as_deref(),
            rollback_to: body.rollback_to.as_deref(),
            actor: &caller.user,
            at_ms,
        },
    )
    .await?;
    let status = release::status(state.store.as_ref(), &started.id, now()).await?;
    Ok((StatusCode::CREATED, Json(status.to_json())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointBody {
    name: String,
}

/// `POST /api/v1/releases/{id}/checkpoints`
pub async fn checkpoint(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<CheckpointBody>,
) -> ApiResult {
    caller.require(Role::Performer, "report checkpoints")?;
    release::checkpoint(state.store.as_ref(), &id, &body.name, &caller.user, now()).await?;
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    ok(status.to_json())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    reason: String,
}

/// `POST /api/v1/releases/{id}/request`: a person asks for a rollback.
pub async fn request(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<RequestBody>,
) -> ApiResult {
    caller.require(Role::Performer, "request rollbacks")?;
    release::request(state.store.as_ref(), &id, &body.reason, &caller.user, now()).await?;
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    ok(status.to_json())
}

/// `POST /api/v1/releases/{id}/check`: measures every criterion once, now (as `backout check`).
pub async fn check(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    caller.require(Role::Performer, "measure criteria")?;
    let report = release::check(
        state.store.as_ref(),
        &id,
        Arc::new(Resolver::from_env()),
        &caller.user,
        now(),
        false,
    )
    .await?;
    ok(serde_json::to_value(&report).map_err(ApiError::internal)?)
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum DecisionChoice {
    Approve,
    Deny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    decision: DecisionChoice,
    reason: String,
    #[serde(default)]
    override_window: bool,
}

/// `POST /api/v1/releases/{id}/decisions`: approve or deny, as the token's user.
pub async fn decide(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<DecisionBody>,
) -> ApiResult {
    caller.require(Role::Decider, "decide rollbacks")?;
    let choice = match body.decision {
        DecisionChoice::Approve => decide::Choice::Approve,
        DecisionChoice::Deny => decide::Choice::Deny,
    };
    let decided = decide::decide(
        state.store.as_ref(),
        &decide::Decide {
            release_id: &id,
            actor: &caller.user,
            choice,
            reason: &body.reason,
            override_window: body.override_window,
            now_ms: now(),
        },
    )
    .await?;
    tracing::info!(release = %id, user = %caller.user, decision = choice.as_str(), approved = decided.approved, "decision");
    ok(json!({
        "release_id": id,
        "decision": choice.as_str(),
        "actor": caller.user,
        "approvals": decided.approvals,
        "quorum": decided.quorum,
        "approved": decided.approved,
        "as_fallback": decided.as_fallback,
        "override_window": decided.override_window,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    /// Run this workaround of the plan instead of the procedure.
    workaround: Option<String>,
}

/// `POST /api/v1/releases/{id}/execute`: starts the approved rollback in the background as the
/// token's user (who must be a performer of the plan); returns the run's id at once.
pub async fn execute(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<ExecuteBody>,
) -> ApiResult {
    caller.require(Role::Performer, "execute rollbacks")?;
    crate::plans::require_accepted(state.store.as_ref(), &id).await?;
    let cleared = decide::clear_execution_of(
        state.store.as_ref(),
        &id,
        &caller.user,
        now(),
        body.workaround.as_deref(),
    )
    .await?;
    let override_window = cleared.override_window;
    let run_id = state.rollbacks.start(cleared, caller.user.clone()).await?;
    tracing::info!(release = %id, run = %run_id, user = %caller.user, "rollback started");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "release_id": id,
            "run_id": run_id,
            "override_window": override_window,
            "events": format!("/api/v1/runs/{run_id}/events"),
        })),
    )
        .into_response())
}

/// `GET /api/v1/releases/{id}/deliveries`: the notifications of a release and its runs.
pub async fn deliveries(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let deliveries = state.store.list_deliveries(Some(&id), 500).await?;
    ok(json!({ "deliveries": deliveries }))
}

/// `GET /api/v1/runs/{id}`: the run and its steps (as `backout status RUN --format json`).
pub async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let run = state.store.get_run(&id).await?;
    let steps = state.store.list_steps(&id).await?;
    // `plan_source` (beside the run, which stays without it) lets a client print each step's
    // `expected` and the service, as `backout status RUN` does.
    let mut value =
        json!({ "run": run_json(&run), "steps": steps, "plan_source": run.plan_source });
    if let Some(gone) =
        backout_core::executor::executor_gone_at(state.store.as_ref(), &run, now()).await
    {
        value["executor_gone"] = gone.into();
    }
    ok(value)
}

/// `GET /api/v1/me`: who the token acts as, so a client can check that it is who it means to be
/// (`backout --as X` against a server refuses when the token's user is someone else).
pub async fn me(axum::Extension(caller): axum::Extension<Caller>) -> ApiResult {
    ok(json!({ "user": caller.user, "role": caller.role, "token_id": caller.token_id }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    note: Option<String>,
}

/// `POST /api/v1/runs/{id}/steps/{step}/confirm`: a manual step is done.
pub async fn confirm(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    MaybeBody(body): MaybeBody<NoteBody>,
) -> ApiResult {
    caller.require(Role::Performer, "confirm steps")?;
    let note = body.note;
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
        note.as_deref(),
        now(),
    )
    .await?;
    get_run(State(state), Path(id)).await
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Failed,
    Retry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    outcome: Outcome,
    note: Option<String>,
}

/// `POST /api/v1/runs/{id}/steps/{step}/resolve`: an in-doubt step took effect, failed, or
/// is to be retried.
pub async fn resolve(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    Body(body): Body<ResolveBody>,
) -> ApiResult {
    caller.require(Role::Performer, "resolve steps")?;
    let target = match body.outcome {
        Outcome::Done => StepTarget::Done,
        Outcome::Failed => StepTarget::Failed,
        Outcome::Retry => StepTarget::Retry,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    reason: Option<String>,
}

/// `POST /api/v1/runs/{id}/abort`: running steps are stopped, nothing new starts.
pub async fn abort(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<AbortBody>,
) -> ApiResult {
    caller.require(Role::Performer, "abort runs")?;
    let reason = body.reason.unwrap_or_else(|| "no reason given".into());
    let run = state.store.get_run(&id).await?;
    decide::may_act(state.store.as_ref(), &run, Act::Abort, &caller.user).await?;
    backout_core::executor::abort(state.store.as_ref(), &id, &caller.user, &reason, now()).await?;
    get_run(State(state), Path(id)).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    #[serde(default)]
    steps: Vec<String>,
}

/// `POST /api/v1/runs/{id}/retry`: failed (or the named) steps get a new attempt; a run that
/// ended is reopened and the server's executor continues it at once.
pub async fn retry(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<RetryBody>,
) -> ApiResult {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipBody {
    reason: String,
}

/// `POST /api/v1/runs/{id}/steps/{step}/skip`: the step counts as done by other means (with
/// the reason); its dependants proceed.
pub async fn skip(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path((id, step)): Path<(String, String)>,
    Body(body): Body<SkipBody>,
) -> ApiResult {
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
pub async fn run_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    Ok(state.hub.follow(id, &headers).await?)
}

/// `GET /api/v1/audit/verify`: recomputes the journal's hash chain.
pub async fn audit_verify(State(state): State<AppState>) -> ApiResult {
    match verify_store(state.store.as_ref(), 1000).await? {
        Ok(summary) => ok(json!({
            "ok": true,
            "events": summary.checked,
            "head": summary.head.map(|h| json!({ "seq": h.seq, "hash": h.hash })),
        })),
        Err(broken) => ok(json!({
            "ok": false,
            "broken_at": broken.seq,
            "reason": broken.kind.to_string(),
            "message": broken.to_string(),
        })),
    }
}
