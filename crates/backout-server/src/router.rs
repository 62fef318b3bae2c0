//! The routes, their layers (auth, body limit, timeouts, request logs, JSON errors) and the
//! table of every route ([`ROUTES`]) that the OpenAPI document is checked against.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::errors::{ApiError, code_of};
use crate::state::AppState;
use crate::{api, auth, cache, metrics, openapi, plans, runs};

/// Every route: method and path as axum and the OpenAPI document spell them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/api/v1/releases"),
    ("POST", "/api/v1/releases"),
    ("GET", "/api/v1/releases/{id}"),
    ("POST", "/api/v1/releases/{id}/checkpoints"),
    ("POST", "/api/v1/releases/{id}/request"),
    ("POST", "/api/v1/releases/{id}/check"),
    ("POST", "/api/v1/releases/{id}/decisions"),
    ("POST", "/api/v1/releases/{id}/execute"),
    ("GET", "/api/v1/releases/{id}/deliveries"),
    ("GET", "/api/v1/runs/{id}"),
    ("POST", "/api/v1/runs/{id}/steps/{step}/confirm"),
    ("POST", "/api/v1/runs/{id}/steps/{step}/resolve"),
    ("POST", "/api/v1/runs/{id}/abort"),
    ("POST", "/api/v1/runs/{id}/retry"),
    ("POST", "/api/v1/runs/{id}/steps/{step}/skip"),
    ("GET", "/api/v1/runs/{id}/events"),
    ("GET", "/api/v1/audit/verify"),
    ("POST", "/api/v1/plans/lint"),
    ("POST", "/api/v1/plans/render"),
    ("POST", "/api/v1/plans/accept"),
    ("POST", "/api/v1/plans/register"),
    ("GET", "/api/v1/releases/{id}/plan"),
    ("GET", "/api/v1/evidence"),
    ("GET", "/api/v1/evidence/{id}"),
    ("GET", "/api/v1/me"),
];

/// Limits of the HTTP layer.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body (a plan in `POST /api/v1/releases` is the largest expected).
    pub body_bytes: usize,
    /// Longest a request may take (live event streams excepted).
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, from the moment it connects or
    /// finishes the previous request: an idle or trickling connection is closed after it.
    pub header_read_timeout: Duration,
    /// Most connections open at once from one client address; more are closed on accept.
    pub connections_per_ip: usize,
}

/// Default of [`Limits::header_read_timeout`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Limits::connections_per_ip`]: many browsers and CLI processes behind one proxy
/// fit; one client holding thousands of sockets does not.
pub const CONNECTIONS_PER_IP: usize = 512;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: HEADER_READ_TIMEOUT,
            connections_per_ip: CONNECTIONS_PER_IP,
        }
    }
}

/// The whole application.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let timed = Router::new()
        .route(
            "/api/v1/releases",
            get(api::list_releases).post(api::start_release),
        )
        .route(
            "/api/v1/releases/{id}",
            get(api::get_release).layer(middleware::from_fn(cache::reuse)),
        )
        .route("/api/v1/releases/{id}/checkpoints", post(api::checkpoint))
        .route("/api/v1/releases/{id}/request", post(api::request))
        .route("/api/v1/releases/{id}/check", post(api::check))
        .route("/api/v1/releases/{id}/decisions", post(api::decide))
        .route("/api/v1/releases/{id}/execute", post(api::execute))
        .route("/api/v1/releases/{id}/deliveries", get(api::deliveries))
        .route("/api/v1/runs/{id}", get(runs::get_run))
        .route(
            "/api/v1/runs/{id}/steps/{step}/confirm",
            post(runs::confirm),
        )
        .route(
            "/api/v1/runs/{id}/steps/{step}/resolve",
            post(runs::resolve),
        )
        .route("/api/v1/runs/{id}/abort", post(runs::abort))
        .route("/api/v1/runs/{id}/retry", post(runs::retry))
        .route("/api/v1/runs/{id}/steps/{step}/skip", post(runs::skip))
        .route("/api/v1/audit/verify", get(api::audit_verify))
        .route("/api/v1/plans/lint", post(plans::lint))
        .route("/api/v1/plans/render", post(plans::render))
        .route("/api/v1/plans/accept", post(plans::accept))
        .route("/api/v1/plans/register", post(crate::registry::register))
        .route("/api/v1/releases/{id}/plan", get(plans::of_release))
        .route("/api/v1/evidence", get(plans::list_evidence))
        .route("/api/v1/evidence/{id}", get(plans::get_evidence))
        .route("/api/v1/me", get(api::me))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ));
    // A live stream lasts as long as the run: no request timeout.
    let streams = Router::new().route("/api/v1/runs/{id}/events", get(runs::run_events));
    let api = timed
        .merge(streams)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let open = Router::new()
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::Extension(metrics::Recorder::default()))
        .route("/openapi.json", get(openapi::document))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ));
    Router::new()
        .merge(api)
        .merge(open)
        .merge(crate::ui::router())
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(cache::forget_on_write))
        .layer(axum::Extension(cache::Answers::new(state.journal.clone())))
        .layer(axum::Extension(auth::Recent::new(state.journal.clone())))
        .layer(middleware::from_fn(json_errors))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        user = tracing::field::Empty,
                    )
                })
                // One line per request at `info`: status and latency, in the request's span.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// A handler that panicked: the client gets the 500 of every internal error, the log gets the
/// panic's message (never the response: it may carry internals).
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::internal(format_args!("a handler panicked: {message}")).into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}; `/openapi.json` lists them",
        request.method(),
        request.uri().path()
    ))
}

/// Gives every error response the JSON shape of [`ApiError`], including those made outside the
/// handlers: axum's 405, a timeout's 503, a query string that does not parse.
async fn json_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    // A body refused for its size was not read to its end: the connection cannot carry another
    // request, so say so, or a client's pool would reuse it and its next request would fail.
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    // JSON errors are already shaped; the web UI's HTML error pages are for people.
    let explained = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || explained {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        "internal error; the server log has the detail".to_string()
    } else if text.is_empty() {
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                "this route does not take that method; `/openapi.json` lists the routes".to_string()
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                "the request took too long or the server is busy; try again".to_string()
            }
            other => other.canonical_reason().unwrap_or("error").to_lowercase(),
        }
    } else {
        text
    };
    let mut rebuilt = ApiError::new(status, code_of(status), message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name, value.clone());
        }
    }
    rebuilt
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower_http::catch_panic::CatchPanicLayer;

    /// A handler that panics answers 500 with the generic message; the panic's text (which may
    /// carry internals) is not in the response, and the server goes on serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_handler_is_a_500_without_internals() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    let secret = "postgres://admin:hunter2@db/prod";
                    if !secret.is_empty() {
                        panic!("connection to {secret} lost");
                    }
                    "unreachable"
                }),
            )
            .route("/ok", get(|| async { "ok" }))
            .layer(CatchPanicLayer::custom(super::panicked));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let response = http
            .get(format!("{base}/boom"))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(response.status(), 500);
        let body = response.text().await.expect("a body");
        assert!(body.contains("internal error"), "{body}");
        assert!(
            !body.contains("hunter2") && !body.contains("connection to"),
            "{body}"
        );
        let ok = http
            .get(format!("{base}/ok"))
            .send()
            .await
            .expect("still serving");
        assert_eq!(ok.status(), 200);
    }
}
