//! The one error type of the HTTP API. Every failure becomes a [`backout_api::ErrorBody`],
//! `{"error": {"code": "...", "message": "..."}}`: a 4xx body explains what to do, a 5xx body
//! says only "internal error" while the detail goes to the log (axum's error-handling example).
//! Store and core errors are converted here, once.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backout_core::ExecError;
use backout_store::StoreError;
use serde_json::Value;

/// A failed API request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `refused`, `not_found`, …
    pub code: &'static str,
    /// For people; for a 5xx, never the internal detail.
    pub message: String,
    /// More structure for the client (a plan's diagnostics), when there is some.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure whose detail must not reach the client: logged here, "internal error" there.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the detail",
        )
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = backout_api::ErrorBody {
            error: backout_api::ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"backout\""),
            );
        }
        response
    }
}

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> ApiError {
        match error {
            // The plan's rules (deciders, performers, quorum, window) and the state of the
            // release or run: the message names the rule, as the CLI's exit 5 does.
            ExecError::Refused(message) => ApiError::new(StatusCode::FORBIDDEN, "refused", message),
            ExecError::Usage(message) => ApiError::bad_request(message),
            ExecError::Store(error) => error.into(),
            // The server is shutting down: try again on another replica.
            ExecError::Drained(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is shutting down; another replica (or its restart) goes on with this run",
            ),
            other @ ExecError::InvalidPlan { .. } => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { entity, id } => {
                ApiError::not_found(format!("no {entity} `{id}`"))
            }
            StoreError::Conflict { entity, id } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{entity} `{id}` already exists"),
            ),
            other => ApiError::internal(format!("{other}: {}", causes(&other))),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid_request"
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

/// The causes of an error, for the log.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The code an error status gets when the response was made without [`ApiError`] (axum's own
/// 404 and 405, a timeout).
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    }
}
