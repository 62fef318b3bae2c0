//! Rendering pages: the security headers every page gets, and the HTML error page.
//!
//! The Content-Security-Policy allows scripts, styles and connections from this server only
//! (no inline script or style, nothing remote), forms only to this server, and framing by
//! nobody. The rendered plan document, which inlines its own CSS, gets a policy of its own
//! that allows no script at all ([`document`]).

use askama::Template;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;

/// The policy of the UI's own pages.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of the rendered plan document: its inline style and SVG, no script.
const DOCUMENT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                            frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

fn secure(headers: &mut HeaderMap, csp: &'static str, frame: &'static str) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static(frame));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // Pages show live state and carry the session's CSRF token: never from a cache.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An HTML response with the UI's headers.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers, CSP, "DENY");
    response
}

/// A template rendered as a 200 page (a template that fails to render is a 500 page).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(error) => UiError::internal(error).into_response(),
    }
}

/// The plan's own rendered document, under its stricter policy.
pub fn document(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(headers, DOCUMENT_CSP, "SAMEORIGIN");
    response
}

/// A failed UI request, shown as a page that says what happened and what to do.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::FORBIDDEN, message)
    }

    /// A failure whose detail stays in the log.
    pub fn internal(detail: impl std::fmt::Display) -> UiError {
        tracing::error!(error = %detail, "web UI request failed");
        UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the detail",
        )
    }
}

/// The API's errors keep their status and message (the core's refusals name the rule).
impl From<ApiError> for UiError {
    fn from(error: ApiError) -> UiError {
        UiError::new(error.status, error.message)
    }
}

impl From<backout_core::ExecError> for UiError {
    fn from(error: backout_core::ExecError) -> UiError {
        ApiError::from(error).into()
    }
}

impl From<backout_store::StoreError> for UiError {
    fn from(error: backout_store::StoreError) -> UiError {
        ApiError::from(error).into()
    }
}

impl From<askama::Error> for UiError {
    fn from(error: askama::Error) -> UiError {
        UiError::internal(error)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("error"),
            message: &self.message,
        };
        let body = page.render().unwrap_or_else(|_| {
            "<!doctype html><title>error</title><p>the error page failed to render".into()
        });
        html(self.status, body)
    }
}

/// What a UI handler returns.
pub type UiResult = Result<Response, UiError>;
