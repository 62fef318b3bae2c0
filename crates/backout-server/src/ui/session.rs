//! Signing in to the web UI with an API token, and the session that follows.
//!
//! Stateless by design, so that any replica serves any request: the cookie carries the token
//! itself (`HttpOnly`, so scripts cannot read it; `SameSite=Strict` and `Secure`), and every
//! request authenticates it again with [`auth::authenticate`], so a revoked token stops working
//! on its next request. The CSRF token of the forms is derived from the session's token
//! (SHA-256 of a fixed label and the token) and compared in constant time: a page from another
//! site can neither read it nor guess it.

use std::collections::HashMap;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use backout_store::Role;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::page::{self, UiError};
use crate::auth::{self, Caller};
use crate::state::AppState;

/// The name of the session cookie.
const COOKIE_NAME: &str = "backout_session";
/// Where a request without a valid session is sent.
pub const LOGIN: &str = "/ui/login";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// What the CSRF token is derived under, so it is never the digest of anything else.
const CSRF_LABEL: &[u8] = b"backout-ui-csrf-v1\0";

/// The signed-in user of a request: who (as the API's [`Caller`]) and the CSRF token of their
/// forms.
#[derive(Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
}

impl Session {
    /// Whether the session's role is at least `role` (which buttons a page shows; the
    /// handlers check again with [`Caller::require`]).
    pub fn is(&self, role: Role) -> bool {
        self.caller.role >= role
    }
}

/// The CSRF token of the session whose bearer token is `bearer`.
fn csrf_of(bearer: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CSRF_LABEL);
    hasher.update(bearer.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// A request sent by a page of another site (browsers say so in `Sec-Fetch-Site`); refused
/// before anything else, sign-in included.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

/// Why a request has no session: it is sent to the sign-in page.
pub struct SignIn {
    /// Asked by htmx, which would follow a redirect and swap the sign-in page into a part of
    /// the page: it is told to load the sign-in page instead (`HX-Redirect`).
    htmx: bool,
}

impl SignIn {
    fn of(headers: &HeaderMap) -> SignIn {
        SignIn {
            htmx: headers.contains_key("hx-request"),
        }
    }
}

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        let mut response = Redirect::to(LOGIN).into_response();
        if self.htmx {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
                .headers_mut()
                .insert("hx-redirect", HeaderValue::from_static(LOGIN));
        }
        // A cookie that no longer authenticates (revoked, malformed) is dropped too.
        response
            .headers_mut()
            .insert(SET_COOKIE, HeaderValue::from_static(CLEARED));
        response
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(bearer) = cookie(&parts.headers) else {
            return Err(SignIn::of(&parts.headers).into_response());
        };
        match auth::authenticate(state.store.as_ref(), &bearer).await {
            Ok(caller) => {
                tracing::Span::current().record("user", caller.user.as_str());
                Ok(Session {
                    caller,
                    csrf: csrf_of(&bearer),
                })
            }
            Err(error) if error.status == StatusCode::UNAUTHORIZED => {
                Err(SignIn::of(&parts.headers).into_response())
            }
            Err(error) => Err(UiError::from(error).into_response()),
        }
    }
}

/// A form posted by the signed-in user, after its CSRF token was checked: the fields by name.
pub struct Posted {
    pub session: Session,
    fields: HashMap<String, String>,
}

impl Posted {
    /// A field's text, trimmed; empty when the form did not send it.
    pub fn text(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", |v| v.trim())
    }

    /// A field's text, or `None` when it is missing or blank.
    pub fn optional(&self, name: &str) -> Option<&str> {
        Some(self.text(name)).filter(|v| !v.is_empty())
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.text(name), "on" | "true" | "1" | "yes")
    }

    pub fn caller(&self) -> &Caller {
        &self.session.caller
    }
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        if cross_site(&parts.headers) {
            return Err(UiError::forbidden("a form from another site is refused").into_response());
        }
        let session = Session::from_request_parts(&mut parts, state).await?;
        let Form(fields) =
            Form::<HashMap<String, String>>::from_request(Request::from_parts(parts, body), state)
                .await
                .map_err(|rejection| {
                    UiError::new(rejection.status(), rejection.body_text()).into_response()
                })?;
        let presented = fields.get(CSRF_FIELD).map_or("", String::as_str);
        if !bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(UiError::forbidden(
                "the form's CSRF token is missing or wrong; reload the page and send the form again",
            )
            .into_response());
        }
        Ok(Posted { session, fields })
    }
}

/// The value that removes the session cookie.
const CLEARED: &str = "backout_session=; HttpOnly; SameSite=Strict; Path=/; Secure; Max-Age=0";

fn session_cookie(bearer: &str) -> Result<HeaderValue, UiError> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={bearer}; HttpOnly; SameSite=Strict; Path=/; Secure"
    ))
    .map_err(|_| UiError::new(StatusCode::UNAUTHORIZED, "that is not a token"))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
}

/// `GET /ui/login`
pub async fn login_page() -> Response {
    page::render(&LoginPage { error: None })
}

/// `POST /ui/login`: a token as made by `backout token create`; on success the session cookie
/// and the releases list.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if cross_site(&headers) {
        return UiError::forbidden("a sign-in from another site is refused").into_response();
    }
    let fields = match Form::<HashMap<String, String>>::from_request(request, &state).await {
        Ok(Form(fields)) => fields,
        Err(rejection) => {
            return UiError::new(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let bearer = fields.get("token").map_or("", |t| t.trim());
    let refused = |message: String| {
        let mut response = page::render(&LoginPage {
            error: Some(message),
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    };
    if bearer.is_empty() {
        return refused(
            "paste a token (`backout token create --user U --role R` makes one)".into(),
        );
    }
    let caller = match auth::authenticate(state.store.as_ref(), bearer).await {
        Ok(caller) => caller,
        Err(error) if error.status == StatusCode::UNAUTHORIZED => return refused(error.message),
        Err(error) => return UiError::from(error).into_response(),
    };
    let cookie = match session_cookie(bearer) {
        Ok(cookie) => cookie,
        Err(error) => return refused(error.message),
    };
    tracing::info!(user = %caller.user, role = %caller.role, "signed in to the web UI");
    let mut response = Redirect::to("/ui/releases").into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /ui/logout`: forgets the session cookie (the token itself stays valid until revoked).
pub async fn logout(posted: Posted) -> Response {
    tracing::info!(user = %posted.caller().user, "signed out of the web UI");
    let mut response = Redirect::to(LOGIN).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static(CLEARED));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_depends_on_the_session_token_only() {
        let a = csrf_of("tok-a.0000");
        assert_eq!(a, csrf_of("tok-a.0000"));
        assert_ne!(a, csrf_of("tok-a.0001"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("tok-a"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; backout_session=tok-x.abc ; other=1"),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("tok-x.abc"));
        headers.insert(COOKIE, HeaderValue::from_static("backout_session="));
        assert_eq!(cookie(&headers), None);
    }
}
