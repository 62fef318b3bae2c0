//! The release handlers of `/api/v1` (the run handlers are in [`crate::runs`]). Each one checks
//! the token's role, then calls the same core operation as the CLI with the token's user as the
//! actor: the plan's `people` rules, the window and the quorum are enforced there, never here.
//!
//! Every handler answers with a type of [`backout_api`]; its `#[utoipa::path]` says which, and
//! the OpenAPI document ([`crate::openapi`]) is generated from those attributes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use backout_api as api;
use backout_api::ErrorBody;
use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::release::{self, StartRelease, decide};
use backout_store::{Role, verify_store};
use serde::de::DeserializeOwned;

use crate::answers;
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

/// The result of a handler: a typed JSON answer or the API's error.
pub type Answer<T> = Result<Json<T>, ApiError>;

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

pub(crate) fn now() -> i64 {
    SystemClock.now_ms()
}

/// `GET /api/v1/releases`: newest first, with the verdict the watcher last saw.
#[utoipa::path(
    get, path = "/api/v1/releases", operation_id = "listReleases", tag = "releases",
    extensions(("x-backout-role" = json!("viewer"))),
    params(api::ListQuery),
    responses(
        (status = 200, description = "The releases, newest first.", body = api::ReleaseList),
        (status = 400, description = "A query parameter that does not parse.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn list_releases(
    State(state): State<AppState>,
    Query(query): Query<api::ListQuery>,
) -> Answer<api::ReleaseList> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let releases = state.store.list_releases(limit).await?;
    let verdicts = state.verdicts();
    let now = now();
    let mut items = Vec::with_capacity(releases.len());
    for release in &releases {
        let outcome = decide::load(state.store.as_ref(), &release.id)
            .await
            .ok()
            .map(|l| answers::outcome(decide::Outcome::of(&l.release, &l.decisions)));
        items.push(api::ReleaseSummary {
            release: api::Release::from(release),
            outcome,
            window_closed: release.window_closed(now),
            verdict: verdicts.get(&release.id).copied().map(answers::verdict),
        });
    }
    Ok(Json(api::ReleaseList { releases: items }))
}

/// `GET /api/v1/releases/{id}`: as `backout status REL --format json`.
///
/// Also `plan_checkpoints` (the checkpoints the plan declares, and which one closes the
/// window) and `requested` (why the verdict is `rollback_required`), for clients that print
/// the release as the CLI does (`BACKOUT_SERVER`).
#[utoipa::path(
    get, path = "/api/v1/releases/{id}", operation_id = "getRelease", tag = "releases",
    extensions(("x-backout-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    responses(
        (status = 200, description = "The release and where it stands.", body = api::ReleaseStatus),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn get_release(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<api::ReleaseStatus> {
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    let mut answer = answers::release_status(&status);
    if let Some(plan) = backout_model::lint(&status.release.plan_source).plan {
        let no_return = plan
            .window
            .given()
            .and_then(|w| w.closes_at_checkpoint.clone());
        answer.plan_checkpoints = Some(api::PlanCheckpoints {
            declared: plan.release.checkpoints.clone(),
            point_of_no_return: no_return,
        });
    }
    answer.requested = status.report.as_ref().map(|r| r.requested);
    Ok(Json(answer))
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

/// `POST /api/v1/releases`: opens a release guarded by the plan in the body (as `backout start`).
///
/// Needs a performer's token. A plan with errors is refused with 422, code `invalid_plan`, and
/// its diagnostics in `error.details`.
#[utoipa::path(
    post, path = "/api/v1/releases", operation_id = "startRelease", tag = "releases",
    extensions(("x-backout-role" = json!("performer"))),
    request_body = api::StartRelease,
    responses(
        (status = 201, description = "The release, as `GET /api/v1/releases/{id}` (without `plan_checkpoints` and `requested`).", body = api::ReleaseStatus),
        (status = 400, description = "A body that is not the JSON expected, or a bad `at`.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or an unaccepted plan when acceptance is required.", body = ErrorBody),
        (status = 413, description = "A body over the limit.", body = ErrorBody),
        (status = 422, description = "The plan has errors (`invalid_plan`, diagnostics in `details`).", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn start_release(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<api::StartRelease>,
) -> Result<(StatusCode, Json<api::ReleaseStatus>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(answers::release_status(&status))))
}

/// `POST /api/v1/releases/{id}/checkpoints`: reports a checkpoint (as `backout checkpoint`).
///
/// Needs a performer's token.
#[utoipa::path(
    post, path = "/api/v1/releases/{id}/checkpoints", operation_id = "checkpoint", tag = "releases",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    request_body = api::CheckpointRequest,
    responses(
        (status = 200, description = "The release's status after the checkpoint.", body = api::ReleaseStatus),
        (status = 400, description = "A body that is not the JSON expected, or a checkpoint the plan does not declare.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or the state of the release.", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn checkpoint(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<api::CheckpointRequest>,
) -> Answer<api::ReleaseStatus> {
    caller.require(Role::Performer, "report checkpoints")?;
    release::checkpoint(state.store.as_ref(), &id, &body.name, &caller.user, now()).await?;
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    Ok(Json(answers::release_status(&status)))
}

/// `POST /api/v1/releases/{id}/request`: a person asks for a rollback (as `backout request`).
///
/// Needs a performer's token.
#[utoipa::path(
    post, path = "/api/v1/releases/{id}/request", operation_id = "requestRollback", tag = "releases",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    request_body = api::RollbackRequest,
    responses(
        (status = 200, description = "The release's status after the request.", body = api::ReleaseStatus),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or the state of the release.", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn request(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<api::RollbackRequest>,
) -> Answer<api::ReleaseStatus> {
    caller.require(Role::Performer, "request rollbacks")?;
    release::request(state.store.as_ref(), &id, &body.reason, &caller.user, now()).await?;
    let status = release::status(state.store.as_ref(), &id, now()).await?;
    Ok(Json(answers::release_status(&status)))
}

/// `POST /api/v1/releases/{id}/check`: measures every criterion once, now (as `backout check`).
///
/// Needs a performer's token.
#[utoipa::path(
    post, path = "/api/v1/releases/{id}/check", operation_id = "checkRelease", tag = "releases",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    responses(
        (status = 200, description = "The verdict and every criterion.", body = api::CheckReport),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role.", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Answer<api::CheckReport> {
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
    Ok(Json(answers::check_report(&report)))
}

/// `POST /api/v1/releases/{id}/decisions`: approve or deny, as the token's user.
///
/// Needs a decider's token; the plan's `authorization` rules then apply to the token's user.
#[utoipa::path(
    post, path = "/api/v1/releases/{id}/decisions", operation_id = "decide", tag = "releases",
    extensions(("x-backout-role" = json!("decider"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    request_body = api::DecisionRequest,
    responses(
        (status = 200, description = "The decision recorded, and where the quorum stands.", body = api::Decision),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn decide(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    Body(body): Body<api::DecisionRequest>,
) -> Answer<api::Decision> {
    caller.require(Role::Decider, "decide rollbacks")?;
    let choice = match body.decision {
        api::DecisionChoice::Approve => decide::Choice::Approve,
        api::DecisionChoice::Deny => decide::Choice::Deny,
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
    Ok(Json(api::Decision {
        release_id: id,
        decision: body.decision,
        actor: caller.user,
        approvals: u64::try_from(decided.approvals).unwrap_or(u64::MAX),
        quorum: decided.quorum,
        approved: decided.approved,
        as_fallback: decided.as_fallback,
        override_window: decided.override_window,
    }))
}

/// `POST /api/v1/releases/{id}/execute`: starts the approved rollback in the background.
///
/// As the token's user (a performer of the plan); answers with the run's id at once. The
/// body may be left out.
#[utoipa::path(
    post, path = "/api/v1/releases/{id}/execute", operation_id = "execute", tag = "releases",
    extensions(("x-backout-role" = json!("performer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    request_body(content = Option<api::ExecuteRequest>, description = "May be left out."),
    responses(
        (status = 202, description = "The rollback started; follow its events.", body = api::Executed),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role, an unaccepted plan, or a rule of the plan (`refused`).", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn execute(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    MaybeBody(body): MaybeBody<api::ExecuteRequest>,
) -> Result<(StatusCode, Json<api::Executed>), ApiError> {
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
        Json(api::Executed {
            release_id: id,
            events: format!("/api/v1/runs/{run_id}/events"),
            run_id,
            override_window,
        }),
    ))
}

/// `GET /api/v1/releases/{id}/deliveries`: the notifications of a release and its runs.
#[utoipa::path(
    get, path = "/api/v1/releases/{id}/deliveries", operation_id = "releaseDeliveries", tag = "releases",
    extensions(("x-backout-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The release (`rel-…`).")),
    responses(
        (status = 200, description = "Newest first, at most 500.", body = api::DeliveryList),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<api::DeliveryList> {
    let deliveries = state.store.list_deliveries(Some(&id), 500).await?;
    Ok(Json(api::DeliveryList {
        deliveries: deliveries.iter().map(api::Delivery::from).collect(),
    }))
}

/// `GET /api/v1/me`: who the token acts as.
///
/// So a client can check that it is who it means to be (`backout --as X` against a server
/// refuses when the token's user is someone else).
#[utoipa::path(
    get, path = "/api/v1/me", operation_id = "whoAmI", tag = "tokens",
    extensions(("x-backout-role" = json!("viewer"))),
    responses(
        (status = 200, description = "The token's user and role.", body = api::Me),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn me(axum::Extension(caller): axum::Extension<Caller>) -> Answer<api::Me> {
    Ok(Json(api::Me {
        user: caller.user,
        role: caller.role,
        token_id: caller.token_id,
    }))
}

/// `GET /api/v1/audit/verify`: recomputes the journal's hash chain.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", operation_id = "auditVerify", tag = "audit",
    extensions(("x-backout-role" = json!("viewer"))),
    responses(
        (status = 200, description = "Whether the chain holds (`ok`), and where it breaks when it does not.", body = api::AuditVerify),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn audit_verify(State(state): State<AppState>) -> Answer<api::AuditVerify> {
    let answer = match verify_store(state.store.as_ref(), 1000).await? {
        Ok(summary) => api::AuditVerify {
            ok: true,
            events: Some(summary.checked),
            head: Some(summary.head.map(|h| api::AuditHead {
                seq: h.seq,
                hash: h.hash,
            })),
            broken_at: None,
            reason: None,
            message: None,
        },
        Err(broken) => api::AuditVerify {
            ok: false,
            events: None,
            head: None,
            broken_at: Some(broken.seq),
            reason: Some(broken.kind.to_string()),
            message: Some(broken.to_string()),
        },
    };
    Ok(Json(answer))
}
