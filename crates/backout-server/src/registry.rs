//! `POST /api/v1/plans/register`: registers a plan's current content for scheduled rehearsals
//! (`testing.schedule`, `renew_before`), as `backout plans add` does: a `plan_registered`
//! journal event built by the core. The scheduler ([`crate::drills`]) rehearses it once its
//! content is accepted.

use axum::Json;
use axum::extract::State;
use backout_api::{ErrorBody, RegisterRequest, Registered};
use backout_core::clock::{Clock, SystemClock};
use backout_core::drill::rehearse;
use backout_store::Role;

use crate::api::Body;
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

/// Registers the plan in the body (a performer or more); registering the same content again
/// changes nothing.
#[utoipa::path(
    post, path = "/api/v1/plans/register", operation_id = "registerPlan", tag = "plans",
    extensions(("x-backout-role" = json!("performer"))),
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "The plan is registered for scheduled rehearsals.", body = Registered),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's role is below performer.", body = ErrorBody),
        (status = 422, description = "The plan has errors (`invalid_plan`, diagnostics in `details`).", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<RegisterRequest>,
) -> Result<Json<Registered>, ApiError> {
    caller.require(Role::Performer, "register plans for scheduled rehearsals")?;
    let event = rehearse::registered(&body.plan, &caller.user, SystemClock.now_ms())?;
    let hash = event.payload["plan_hash"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let known = rehearse::registered_plans(state.store.as_ref()).await?;
    let already = known.contains_key(&hash);
    if !already {
        state.store.append_event(&event).await?;
        tracing::info!(hash = %hash, user = %caller.user, "plan registered for scheduled rehearsals");
    }
    Ok(Json(Registered {
        plan_hash: hash,
        registered: true,
        already,
    }))
}
