//! `backout serve --demo`: everything a newcomer needs to see the whole lifecycle on one
//! machine with nothing else installed.
//!
//! - A fake checkout service ([`Target`], [`router`]) served by the same process on a port of
//!   its own: `/demo/health` reports its error rate (what the demo plan's criterion reads), a
//!   page at `/demo` has buttons to raise and lower it, `/demo/deploy` is what the rollback step
//!   calls (deploying the previous version heals it), and `/demo/inbox` is the webhook of the
//!   plan's `team` channel, so the page lists every notification sent.
//! - A plan ([`plan`], `plan.yaml`) whose steps are harmless local commands in a directory of
//!   the demo's own, and tokens for each role ([`prepare`]).
//!
//! The demo adds no business rule: the release is watched, decided and run by the same server
//! code as any other.

mod page;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use backout_core::release::{self, StartRelease};
use backout_store::{Role, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth;

/// The plan, with `@TARGET@` and `@DIR@` still to fill in.
const PLAN: &str = include_str!("plan.yaml");

/// The version the demo deploys, and the one its rollback returns to.
pub const DEPLOYED: &str = "2.4.1";
pub const PREVIOUS: &str = "2.4.0";
/// The error rate of a healthy service, and of the broken one.
pub const HEALTHY_RATE: f64 = 0.002;
pub const BROKEN_RATE: f64 = 0.2;
/// Notifications the page keeps.
const INBOX: usize = 50;

/// The demo plan for a target served at `target` (e.g. `http://127.0.0.1:4000/demo`) and
/// steps working in `dir`.
pub fn plan(target: &str, dir: &Path) -> String {
    PLAN.replace("@TARGET@", target)
        .replace("@DIR@", &dir.display().to_string())
}

/// The fake service's state. Cheap to share.
#[derive(Default)]
pub struct Target {
    state: Mutex<TargetState>,
}

#[derive(Clone, Debug)]
struct TargetState {
    version: String,
    error_rate: f64,
    /// Health checks answered (the criterion's measurements).
    checks: u64,
    inbox: VecDeque<Received>,
    /// Deliveries received again with a key already seen (retries the receiver dropped).
    duplicates: u64,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            version: DEPLOYED.to_string(),
            error_rate: HEALTHY_RATE,
            checks: 0,
            inbox: VecDeque::new(),
            duplicates: 0,
        }
    }
}

/// A notification the `team` channel received.
#[derive(Clone, Debug)]
struct Received {
    key: String,
    at: String,
    event: String,
    summary: String,
}

impl Target {
    fn state(&self) -> MutexGuard<'_, TargetState> {
        // A panic while holding the lock cannot leave this plain data half-written.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current error rate.
    pub fn error_rate(&self) -> f64 {
        self.state().error_rate
    }

    /// The version the service runs.
    pub fn version(&self) -> String {
        self.state().version.clone()
    }

    /// The lifecycle events received by the `team` channel, oldest first.
    pub fn received(&self) -> Vec<String> {
        self.state().inbox.iter().map(|r| r.event.clone()).collect()
    }
}

/// The fake service's routes, all under `/demo`.
pub fn router(target: Arc<Target>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/demo") }))
        .route("/demo", get(page::show))
        .route("/demo/health", get(health))
        .route("/demo/version", get(version))
        .route("/demo/error-rate", post(set_error_rate))
        .route("/demo/deploy", post(deploy))
        .route("/demo/inbox", post(inbox))
        .with_state(target)
}

/// Serves the fake service on `listener` until the runtime stops.
pub async fn serve(listener: tokio::net::TcpListener, target: Arc<Target>) -> std::io::Result<()> {
    axum::serve(listener, router(target)).await
}

async fn health(State(target): State<Arc<Target>>) -> Response {
    let mut state = target.state();
    state.checks += 1;
    axum::Json(json!({
        "service": "demo-checkout",
        "version": state.version,
        "error_rate": state.error_rate,
    }))
    .into_response()
}

async fn version(State(target): State<Arc<Target>>) -> String {
    target.version()
}

#[derive(Deserialize)]
struct RateQuery {
    value: f64,
}

/// `POST /demo/error-rate?value=0.2`: a button on the page, or curl.
async fn set_error_rate(
    State(target): State<Arc<Target>>,
    headers: HeaderMap,
    query: Result<Query<RateQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(RateQuery { value })) = query else {
        return refuse("give the new error rate as ?value=0.2 (a number from 0 to 1)");
    };
    if !(0.0..=1.0).contains(&value) {
        return refuse("the error rate is a share of requests: a number from 0 to 1");
    }
    target.state().error_rate = value;
    tracing::info!(error_rate = value, "demo service: error rate set");
    answer(&headers, format!("the error rate is now {value}\n"))
}

#[derive(Deserialize)]
struct DeployQuery {
    version: String,
}

/// `POST /demo/deploy?version=2.4.0`: what the rollback step calls. Any deploy heals the
/// service (the bug lives in the running process, as far as this demo is concerned).
async fn deploy(
    State(target): State<Arc<Target>>,
    headers: HeaderMap,
    query: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(DeployQuery { version })) = query else {
        return refuse("give the version to deploy as ?version=2.4.0");
    };
    let version = version.trim();
    if version.is_empty() || version.len() > 64 {
        return refuse("the version must be 1 to 64 characters");
    }
    {
        let mut state = target.state();
        state.version = version.to_string();
        state.error_rate = HEALTHY_RATE;
    }
    tracing::info!(%version, "demo service: deployed");
    answer(&headers, format!("deployed {version}\n"))
}

/// `POST /demo/inbox`: the webhook of the plan's `team` channel. Drops repeats by
/// `Idempotency-Key`, as a careful receiver does.
async fn inbox(
    State(target): State<Arc<Target>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(notice) = serde_json::from_slice::<Value>(&body) else {
        return refuse("expected the JSON body of a backout webhook notification");
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let received = Received {
        at: text(&notice, "/at"),
        event: text(&notice, "/event"),
        summary: summary(&notice),
        key,
    };
    let mut state = target.state();
    if !received.key.is_empty() && state.inbox.iter().any(|r| r.key == received.key) {
        state.duplicates += 1;
        return StatusCode::OK.into_response();
    }
    state.inbox.push_back(received);
    while state.inbox.len() > INBOX {
        state.inbox.pop_front();
    }
    StatusCode::OK.into_response()
}

fn text(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One line about a notification: the decision's reason, the run's state, or the verdict.
fn summary(notice: &Value) -> String {
    let parts = [
        ("/decision/decision", "decision"),
        ("/decision/actor", "by"),
        ("/decision/reason", "reason"),
        ("/run/state", "run"),
        ("/run/step/id", "step"),
        ("/verdict/verdict", "verdict"),
    ];
    parts
        .iter()
        .filter_map(|(pointer, label)| {
            let value = text(notice, pointer);
            (!value.is_empty()).then(|| format!("{label}: {value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A form post goes back to the page; curl gets one line of text.
fn answer(headers: &HeaderMap, text: String) -> Response {
    let from_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if from_form {
        Redirect::to("/demo").into_response()
    } else {
        text_response(StatusCode::OK, text)
    }
}

fn refuse(message: &str) -> Response {
    text_response(StatusCode::BAD_REQUEST, format!("{message}\n"))
}

fn text_response(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// What [`prepare`] made.
#[derive(Debug)]
pub struct Prepared {
    /// The plan as written to disk (to paste into the UI for another release).
    pub plan_path: PathBuf,
    /// One token per demo person: user, role, bearer (shown once).
    pub tokens: Vec<(String, Role, String)>,
    /// The release being watched: started now, or one a previous demo left open.
    pub release_id: String,
    pub release_is_new: bool,
}

/// Why the demo could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write the demo's files in {dir}: {error}")]
    Files { dir: PathBuf, error: std::io::Error },
    #[error("cannot create the demo's tokens: {0}")]
    Token(#[from] auth::CreateError),
    #[error(transparent)]
    Store(#[from] backout_store::StoreError),
    #[error(transparent)]
    Exec(#[from] backout_core::ExecError),
}

/// The people of the demo plan, and the role each one's token gets.
pub const PEOPLE: &[(&str, Role)] = &[
    ("dana@demo.example", Role::Decider),
    ("pat@demo.example", Role::Performer),
    ("sam@demo.example", Role::Performer),
    ("vic@demo.example", Role::Viewer),
];

/// Writes the plan into `dir`, creates a token for each of [`PEOPLE`], and starts a release of
/// the plan unless one is already open.
pub async fn prepare(
    store: &dyn Store,
    target: &str,
    dir: &Path,
    now_ms: i64,
) -> Result<Prepared, DemoError> {
    let files = |error| DemoError::Files {
        dir: dir.to_path_buf(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(files)?;
    let source = plan(target, dir);
    let plan_path = dir.join("plan.yaml");
    std::fs::write(&plan_path, &source).map_err(files)?;
    let mut tokens = Vec::new();
    for (user, role) in PEOPLE {
        let issued = auth::create(store, user, *role, "backout:demo", now_ms).await?;
        tokens.push((user.to_string(), *role, issued.bearer));
    }
    // The demo's deployment engineer vouches for the plan the demo wrote, as a real one would
    // with `backout accept` before the server may execute it.
    release::accept::accept(store, &source, "pat@demo.example", false, now_ms).await?;
    let open = store
        .open_releases()
        .await?
        .into_iter()
        .find(|r| r.service == "demo-checkout");
    let (release_id, release_is_new) = match open {
        Some(open) => (open.id, false),
        None => {
            let started = release::start(
                store,
                &StartRelease {
                    source: &source,
                    version: None,
                    rollback_to: None,
                    actor: "pat@demo.example",
                    at_ms: now_ms,
                },
            )
            .await?;
            (started.id, true)
        }
    };
    Ok(Prepared {
        plan_path,
        tokens,
        release_id,
        release_is_new,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_plan_lints_clean() {
        let source = plan("http://127.0.0.1:9/demo", Path::new("/tmp/backout-demo"));
        let linted = backout_model::lint(&source);
        let problems: Vec<_> = linted
            .diagnostics
            .iter()
            .map(|d| format!("{d:?}"))
            .collect();
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(linted.plan.is_some());
    }

    #[test]
    fn a_notice_is_summarized_from_its_decision_and_run() {
        let notice = json!({
            "event": "decision",
            "decision": { "decision": "approve", "actor": "dana@demo.example", "reason": "errors" },
            "run": { "state": "running" }
        });
        assert_eq!(
            summary(&notice),
            "decision: approve, by: dana@demo.example, reason: errors, run: running"
        );
    }
}
