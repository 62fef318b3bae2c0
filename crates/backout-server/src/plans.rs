//! Plans and rehearsal evidence over the API: lint a plan as `backout lint --format json
//! --hash` does, render it as `backout render` does (with Q9 and Q7 from the evidence on
//! record), the plan a release was started with, and the evidence of rehearsals.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backout_core::clock::{Clock, SystemClock};
use backout_model::{Plan, Severity};
use backout_store::{Evidence, EvidenceFilter, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Body;
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

/// Evidence of one service read at most for a document, and listed at most.
const EVIDENCE_LIMIT: u32 = 10_000;

/// A plan sent for linting or rendering.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// The plan's YAML text.
    plan: String,
    /// How the plan is named in diagnostics and the document (default `plan.yaml`).
    #[serde(default)]
    file: Option<String>,
    /// `md` or `html` (render only; default `html`).
    #[serde(default)]
    format: Option<String>,
}

impl PlanBody {
    fn file(&self) -> &str {
        self.file.as_deref().unwrap_or("plan.yaml")
    }
}

/// `POST /api/v1/plans/lint`: every problem of the plan at once, with line and column. 200
/// whether or not the plan is valid (`ok` says); the diagnostics are the answer.
pub async fn lint(
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<PlanBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "lint plans")?;
    let linted = backout_model::lint(&body.plan);
    let file = body.file();
    let errors = linted.errors();
    let warnings = linted
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let diagnostics: Vec<Value> = linted
        .diagnostics
        .iter()
        .map(|d| serde_json::to_value(d.located(file)).unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({
        "ok": linted.plan.is_some(),
        "file": file,
        "hash": linted.hash,
        "errors": errors,
        "warnings": warnings,
        "diagnostics": diagnostics,
    }))
    .into_response())
}

/// `POST /api/v1/plans/render`: the production-support document of a valid plan, Markdown or
/// one self-contained HTML page; 422 with the diagnostics when the plan is invalid.
pub async fn render(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<PlanBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer, "render plans")?;
    let html = match body.format.as_deref() {
        None | Some("html") => true,
        Some("md") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format `{other}`: expected `md` or `html`"
            )));
        }
    };
    let (plan, hash) = valid(&body.plan, body.file())?;
    document(&state, &plan, body.file(), &hash, html).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// `yaml` (the text as started), `md` or `html` (default).
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/v1/releases/{id}/plan`: the plan the release was started with, as its text or as
/// the rendered document.
pub async fn of_release(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let release = state.store.get_release(&id).await?;
    let file = format!("{}.yaml", release.service);
    match query.format.as_deref() {
        Some("yaml") => Ok((
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            release.plan_source,
        )
            .into_response()),
        None | Some("html") | Some("md") => {
            let html = query.format.as_deref() != Some("md");
            let (plan, hash) = valid(&release.plan_source, &file)?;
            document(&state, &plan, &file, &hash, html).await
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format `{other}`: expected `yaml`, `md` or `html`"
        ))),
    }
}

/// The validated plan and its hash, or 422 `invalid_plan` with the errors as `backout lint
/// --format json` gives them.
pub fn valid(source: &str, file: &str) -> Result<(Plan, String), ApiError> {
    let linted = backout_model::lint(source);
    let errors = linted.errors();
    if let (Some(plan), Some(hash)) = (linted.plan, linted.hash) {
        return Ok((plan, hash));
    }
    let diagnostics: Vec<Value> = linted
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| serde_json::to_value(d.located(file)).unwrap_or(Value::Null))
        .collect();
    Err(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_plan",
        format!("the plan has {errors} error(s); the details list them with their lines"),
    )
    .with_details(Value::Array(diagnostics)))
}

async fn document(
    state: &AppState,
    plan: &Plan,
    file: &str,
    hash: &str,
    html: bool,
) -> Result<Response, ApiError> {
    let filter = EvidenceFilter {
        service: Some(plan.release.service.clone()),
        ..EvidenceFilter::default()
    };
    let evidence = state.store.list_evidence(&filter, EVIDENCE_LIMIT).await?;
    let info =
        backout_core::rehearsal::document_info(plan, file, hash, &evidence, SystemClock.now_ms());
    if html {
        let page = backout_model::render::html(plan, &info);
        Ok((
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // The document is self-contained and has no script.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
                ),
            ],
            page,
        )
            .into_response())
    } else {
        let text = backout_model::render::markdown(plan, &info);
        Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            text,
        )
            .into_response())
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EvidenceQuery {
    #[serde(default)]
    plan_hash: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/v1/evidence`: rehearsal evidence, newest first, filtered by plan hash, service or
/// environment (as `backout evidence list --format json`).
pub async fn list_evidence(
    State(state): State<AppState>,
    query: Result<Query<EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = EvidenceFilter {
        plan_hash: query.plan_hash,
        service: query.service,
        environment: query.environment,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, EVIDENCE_LIMIT);
    let evidence = state.store.list_evidence(&filter, limit).await?;
    let items: Vec<Value> = evidence.iter().map(evidence_json).collect();
    Ok(Json(json!({ "evidence": items })).into_response())
}

/// `GET /api/v1/evidence/{id}`: one piece of evidence with every step.
pub async fn get_evidence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let evidence = state.store.get_evidence(&id).await?;
    Ok(Json(evidence_json(&evidence)).into_response())
}

fn evidence_json(evidence: &Evidence) -> Value {
    let mut value = serde_json::to_value(evidence).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("took_ms".into(), json!(evidence.took_ms()));
    }
    value
}

/// Executions on the server need the release's plan accepted (`backout accept`): a plan whose
/// uploader could run commands as the server would be its own root of trust.
pub async fn require_accepted(
    store: &dyn backout_store::Store,
    release_id: &str,
) -> Result<(), ApiError> {
    let release = store.get_release(release_id).await?;
    if backout_core::release::accept::acceptance(store, &release.plan_hash)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let plan = backout_core::release::Tracker::plan_of(&release)?;
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "refused",
        backout_core::release::accept::not_accepted(
            &plan,
            "this server executes nothing of this release yet",
        ),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    plan: String,
}

/// `POST /api/v1/plans/accept`: the plan's deployment engineer (the token's user) or an admin
/// accepts its exact content; the server then runs its command criteria, honours its automatic
/// approvals and executes it.
pub async fn accept(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    crate::api::Body(body): crate::api::Body<AcceptBody>,
) -> Result<Response, ApiError> {
    valid(&body.plan, "plan.yaml")?;
    let admin = caller.role == Role::Admin;
    let accepted = backout_core::release::accept::accept(
        state.store.as_ref(),
        &body.plan,
        &caller.user,
        admin,
        backout_core::clock::Clock::now_ms(&backout_core::clock::SystemClock),
    )
    .await?;
    tracing::info!(hash = %accepted.plan_hash, user = %caller.user, "plan accepted");
    Ok(Json(json!({
        "plan_hash": accepted.plan_hash,
        "accepted_by": accepted.actor,
        "accepted_at_ms": accepted.at_ms,
    }))
    .into_response())
}
