//! `/healthz` and `/metrics` (Prometheus text format), both without authentication: they say
//! how much there is, never what it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backout_core::criteria::Verdict;
use backout_store::{DeliveryState, RunState};
use serde_json::json;

use crate::errors::ApiError;
use crate::state::AppState;

/// How many of the most recent runs and deliveries `/metrics` counts.
const RECENT: u32 = 10_000;

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.last_event().await {
        Ok(last) => Json(json!({
            "status": "ok",
            "events": last.map_or(0, |e| e.seq),
        }))
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "health check: the store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store does not answer",
            )
            .into_response()
        }
    }
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let open = state.store.open_releases().await?.len();
    let mut verdicts: BTreeMap<&'static str, usize> = [
        Verdict::RollbackRequired,
        Verdict::Inconclusive,
        Verdict::Success,
        Verdict::Healthy,
        Verdict::Closed,
    ]
    .into_iter()
    .map(|v| (verdict_name(v), 0))
    .collect();
    for verdict in state.verdicts().values() {
        *verdicts.entry(verdict_name(*verdict)).or_default() += 1;
    }
    let mut runs: BTreeMap<&'static str, usize> =
        RunState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for run in state.store.list_runs(RECENT).await? {
        *runs.entry(run.state.as_str()).or_default() += 1;
    }
    let mut deliveries: BTreeMap<&'static str, usize> =
        DeliveryState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for delivery in state.store.list_deliveries(None, RECENT).await? {
        *deliveries.entry(delivery.state.as_str()).or_default() += 1;
    }
    let failed = deliveries
        .get(DeliveryState::Failed.as_str())
        .copied()
        .unwrap_or(0);

    let mut text = String::new();
    gauge(
        &mut text,
        "backout_open_releases",
        "Releases whose rollback window is open.",
    );
    let _ = writeln!(text, "backout_open_releases {open}");
    gauge(
        &mut text,
        "backout_release_verdicts",
        "Releases watched by this server, by their current verdict.",
    );
    for (verdict, n) in &verdicts {
        let _ = writeln!(
            text,
            "backout_release_verdicts{{verdict=\"{verdict}\"}} {n}"
        );
    }
    gauge(
        &mut text,
        "backout_runs",
        "Runs by state (the 10000 most recent).",
    );
    for (state, n) in &runs {
        let _ = writeln!(text, "backout_runs{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut text,
        "backout_deliveries",
        "Notifications by state (the 10000 most recent).",
    );
    for (state, n) in &deliveries {
        let _ = writeln!(text, "backout_deliveries{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut text,
        "backout_delivery_failures",
        "Notifications given up after their retries (the 10000 most recent).",
    );
    let _ = writeln!(text, "backout_delivery_failures {failed}");
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn gauge(text: &mut String, name: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} gauge");
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::RollbackRequired => "rollback_required",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Success => "success",
        Verdict::Healthy => "healthy",
        Verdict::Closed => "closed",
    }
}
