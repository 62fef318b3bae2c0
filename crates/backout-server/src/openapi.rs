//! `/openapi.json`: the OpenAPI 3.1 document of the API, written by hand and embedded (a test
//! checks that it lists exactly the routes of [`crate::router::ROUTES`]).

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`
pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
