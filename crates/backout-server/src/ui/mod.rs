//! The web UI: server-rendered pages (askama) with htmx, signed in by a session cookie.
//!
//! - `session`: sign-in with an API token (same-origin only), the session cookie (a random
//!   session id with a 12-hour expiry, kept in this process's memory: several replicas need
//!   sticky sessions; the token behind it is checked again on every request, so a revoked token
//!   stops working at once), and the CSRF token every form carries (derived from the session).
//! - `releases`, `runs`, `audit`: the pages and their forms. Each form calls the same core
//!   operation as the JSON API, with the signed-in user as the actor and the same role checks.
//! - `page`: rendering, the security headers (a strict CSP), and the HTML error page.
//! - `assets`: the embedded CSS, htmx and the small script that follows runs live.

mod assets;
mod audit;
mod chart;
mod page;
mod releases;
mod runs;
mod session;
#[cfg(test)]
mod tests;
mod view;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;

/// How long a page or form may take (the live stream of a run has no limit).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The UI's routes, merged into the application router.
pub fn router() -> Router<AppState> {
    let timed = Router::new()
        // A newcomer opening the server address lands on the web UI, not a 404.
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(|| async { Redirect::to("/ui/releases") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/releases") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/releases", get(releases::list).post(releases::start))
        .route("/ui/releases/{id}", get(releases::page))
        .route("/ui/releases/{id}/status", get(releases::status_fragment))
        .route("/ui/releases/{id}/plan", get(releases::plan_document))
        .route("/ui/releases/{id}/checkpoint", post(releases::checkpoint))
        .route("/ui/releases/{id}/request", post(releases::request))
        .route("/ui/releases/{id}/decide", post(releases::decide))
        .route("/ui/releases/{id}/execute", post(releases::execute))
        .route("/ui/runs/{id}", get(runs::page))
        .route("/ui/runs/{id}/steps", get(runs::steps_fragment))
        .route("/ui/runs/{id}/steps/{step}/confirm", post(runs::confirm))
        .route("/ui/runs/{id}/steps/{step}/resolve", post(runs::resolve))
        .route("/ui/runs/{id}/abort", post(runs::abort))
        .route("/ui/runs/{id}/steps/{step}/retry", post(runs::retry))
        .route("/ui/runs/{id}/steps/{step}/skip", post(runs::skip))
        .route("/ui/audit", get(audit::page))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ));
    // A live stream lasts as long as the run: no request timeout.
    let streams = Router::new().route("/ui/runs/{id}/events", get(runs::events));
    timed
        .merge(streams)
        .layer(axum::Extension(session::Sessions::default()))
}
