//! The web UI: server-rendered pages (askama) with htmx, signed in by a session cookie.

use axum::Router;

use crate::state::AppState;

/// The UI's routes, merged into the application router.
pub fn router() -> Router<AppState> {
    Router::new()
}
