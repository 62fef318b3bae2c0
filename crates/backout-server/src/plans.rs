//! Plans and rehearsal evidence over the API: lint a plan as `backout lint --format json
//! --hash` does, render it as `backout render` does (with Q9 and Q7 from the evidence on
//! record), the plan a release was started with, and the evidence of rehearsals.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backout_api as api;
use backout_api::ErrorBody;
use backout_core::clock::{Clock, SystemClock};
use backout_model::{Diagnostic, Plan, Severity};
use backout_store::{EvidenceFilter, Role};
use serde_json::Value;

use crate::api::{Answer, Body};
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::state::AppState;

/// Evidence of one service read at most for a document, and listed at most.
const EVIDENCE_LIMIT: u32 = 10_000;

/// The name a plan sent without one goes by in diagnostics and documents.
fn file_of(body: &api::PlanRequest) -> &str {
    body.file.as_deref().unwrap_or("plan.yaml")
}

/// A diagnostic placed in `file`, as the API shows it.
fn located(diagnostic: &Diagnostic, file: &str) -> api::LocatedDiagnostic {
    let located = diagnostic.located(file);
    api::LocatedDiagnostic {
        file: file.to_string(),
        code: located.code.to_string(),
        severity: match located.severity {
            Severity::Error => api::Severity::Error,
            Severity::Warning => api::Severity::Warning,
            Severity::Note => api::Severity::Note,
        },
        line: u64::try_from(located.line).unwrap_or(u64::MAX),
        column: u64::try_from(located.column).unwrap_or(u64::MAX),
        message: located.message.to_string(),
        help: located.help.map(str::to_string),
    }
}

/// `POST /api/v1/plans/lint`: every problem of the plan at once, with line and column.
///
/// 200 whether or not the plan is valid (`ok` says); the diagnostics are the answer. Needs a
/// viewer's token.
#[utoipa::path(
    post, path = "/api/v1/plans/lint", operation_id = "lintPlan", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    request_body = api::PlanRequest,
    responses(
        (status = 200, description = "The diagnostics, as `backout lint --format json --hash`.", body = api::LintAnswer),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 413, description = "A body over the limit.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn lint(
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<api::PlanRequest>,
) -> Answer<api::LintAnswer> {
    caller.require(Role::Viewer, "lint plans")?;
    let linted = backout_model::lint(&body.plan);
    let file = file_of(&body);
    let warnings = linted
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    Ok(Json(api::LintAnswer {
        ok: linted.plan.is_some(),
        file: file.to_string(),
        hash: linted.hash.clone(),
        errors: u64::try_from(linted.errors()).unwrap_or(u64::MAX),
        warnings: u64::try_from(warnings).unwrap_or(u64::MAX),
        diagnostics: linted
            .diagnostics
            .iter()
            .map(|d| located(d, file))
            .collect(),
    }))
}

/// `POST /api/v1/plans/render`: the production-support document of a valid plan.
///
/// Markdown or one self-contained HTML page (Q9 and Q7 from the rehearsal evidence on record);
/// 422 with the diagnostics when the plan is invalid. Needs a viewer's token.
#[utoipa::path(
    post, path = "/api/v1/plans/render", operation_id = "renderPlan", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    request_body = api::PlanRequest,
    responses(
        (status = 200, description = "The document.", content(
            (String = "text/html"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "A body that is not the JSON expected, or an unknown `format`.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 413, description = "A body over the limit.", body = ErrorBody),
        (status = 422, description = "The plan has errors (`invalid_plan`, diagnostics in `details`).", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn render(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Body(body): Body<api::PlanRequest>,
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
    let (plan, hash) = valid(&body.plan, file_of(&body))?;
    document(&state, &plan, file_of(&body), &hash, html).await
}

/// `GET /api/v1/releases/{id}/plan`: the plan the release was started with.
///
/// As its text or as the rendered document.
#[utoipa::path(
    get, path = "/api/v1/releases/{id}/plan", operation_id = "releasePlan", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The release (`rel-…`)."), api::PlanQuery),
    responses(
        (status = 200, description = "The plan's text or document.", content(
            (String = "application/yaml"),
            (String = "text/html"),
            (String = "text/markdown"),
        )),
        (status = 400, description = "An unknown `format`.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such release.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn of_release(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<api::PlanQuery>, axum::extract::rejection::QueryRejection>,
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
        .map(|d| serde_json::to_value(located(d, file)).unwrap_or(Value::Null))
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

/// `GET /api/v1/evidence`: rehearsal evidence, newest first.
///
/// Filtered by plan hash, service or environment (as `backout evidence list --format json`).
#[utoipa::path(
    get, path = "/api/v1/evidence", operation_id = "listEvidence", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    params(api::EvidenceQuery),
    responses(
        (status = 200, description = "The evidence, newest first.", body = api::EvidenceList),
        (status = 400, description = "A query parameter that does not parse.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn list_evidence(
    State(state): State<AppState>,
    query: Result<Query<api::EvidenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<api::EvidenceList> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = EvidenceFilter {
        plan_hash: query.plan_hash,
        service: query.service,
        environment: query.environment,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, EVIDENCE_LIMIT);
    let evidence = state.store.list_evidence(&filter, limit).await?;
    Ok(Json(api::EvidenceList {
        evidence: evidence.iter().map(api::Evidence::from).collect(),
    }))
}

/// `GET /api/v1/evidence/{id}`: one piece of evidence with every step.
#[utoipa::path(
    get, path = "/api/v1/evidence/{id}", operation_id = "getEvidence", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    params(("id" = String, Path, description = "The evidence (`evi-…`).")),
    responses(
        (status = 200, description = "The evidence.", body = api::Evidence),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 404, description = "No such evidence.", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn get_evidence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<api::Evidence> {
    let evidence = state.store.get_evidence(&id).await?;
    Ok(Json(api::Evidence::from(&evidence)))
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

/// `POST /api/v1/plans/accept`: the plan's deployment engineer or an admin accepts its content.
///
/// The token's user accepts the exact content; the server then runs its command criteria,
/// honours its automatic approvals and executes it.
#[utoipa::path(
    post, path = "/api/v1/plans/accept", operation_id = "acceptPlan", tag = "plans",
    extensions(("x-backout-role" = json!("viewer"))),
    request_body = api::AcceptRequest,
    responses(
        (status = 200, description = "The acceptance recorded.", body = api::Accepted),
        (status = 400, description = "A body that is not the JSON expected.", body = ErrorBody),
        (status = 401, description = "No valid token.", body = ErrorBody),
        (status = 403, description = "The token's user is neither the plan's deployment engineer nor an admin.", body = ErrorBody),
        (status = 422, description = "The plan has errors (`invalid_plan`, diagnostics in `details`).", body = ErrorBody),
        (status = "default", description = "Any other failure.", body = ErrorBody),
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Body(body): Body<api::AcceptRequest>,
) -> Answer<api::Accepted> {
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
    Ok(Json(api::Accepted {
        plan_hash: accepted.plan_hash,
        accepted_by: accepted.actor,
        accepted_at_ms: accepted.at_ms,
    }))
}
