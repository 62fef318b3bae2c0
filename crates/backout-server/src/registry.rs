//! `POST /api/v1/plans/register`: registers a plan's current content for scheduled rehearsals
//! (`testing.schedule`, `renew_before`), as `backout plans add` does: a `plan_registered`
//! journal event built by the core. The scheduler ([`crate::drills`]) rehearses it once its
//! content is accepted.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use backout_core::clock::{Clock, SystemClock};
use backout_core::drill::rehearse;
use backout_store::Role;
use serde::Deserialize;
use serde_json::json;

use crate::api::Body;
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    plan: String,
}

/// Registers the plan in the body (a performer or more); registering the same content again
/// changes nothing.
pub async fn register(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<RegisterBody>,
) -> Result<Response, ApiError> {
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
    Ok(Json(json!({ "plan_hash": hash, "registered": true, "already": already })).into_response())
}
