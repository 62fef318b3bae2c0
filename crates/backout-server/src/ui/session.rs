//! Signing in to the web UI with an API token, and the session that follows.
//!
//! Signing in checks the token once and starts a session: a random 256-bit id in the cookie
//! (`HttpOnly`, so scripts cannot read it; `SameSite=Strict`, and `Secure` when the browser
//! reached the server over https: see [`secure`]), never the token
//! itself. The server keeps, per session, the SHA-256 of the id, the token it stands for and
//! when it expires (12 hours after sign-in, [`SESSION_TTL`]); every request authenticates that
//! token again with [`auth::authenticate`], so a revoked token ends its sessions on their next
//! request, and signing out forgets the session at once.
//!
//! Sessions live in this process's memory: with several replicas behind one address the UI
//! needs sticky sessions (or people sign in again when they reach another replica), and a
//! restart signs everybody out. The JSON API is not affected (bearer tokens).
//!
//! The CSRF token of the forms is derived from the session id (SHA-256 of a fixed label and the
//! id) and compared in constant time: a page from another site can neither read it nor guess
//! it. Sign-in and every form also refuse a request whose `Origin` (or, without one, `Referer`)
//! is not this server's own host, and one that browsers mark `Sec-Fetch-Site: cross-site`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, REFERER, SET_COOKIE};
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
    /// The session id (the cookie's value).
    id: String,
}

impl Session {
    /// Whether the session's role is at least `role` (which buttons a page shows; the
    /// handlers check again with [`Caller::require`]).
    pub fn is(&self, role: Role) -> bool {
        self.caller.role >= role
    }
}

/// How long a session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The sessions of this process: SHA-256 of the session id → the token it stands for and when
/// it expires. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Signed>>>);

#[derive(Clone)]
struct Signed {
    bearer: String,
    expires: Instant,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Signed>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session for `bearer`: its id, to be set in the cookie. `None` only when the
    /// operating system has no randomness to give.
    fn start(&self, bearer: &str) -> Option<String> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).ok()?;
        let id = hex(&random);
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            digest(&id),
            Signed {
                bearer: bearer.to_string(),
                expires: now + SESSION_TTL,
            },
        );
        Some(id)
    }

    /// The token of a live session.
    fn bearer(&self, id: &str) -> Option<String> {
        let key = digest(id);
        let mut sessions = self.lock();
        match sessions.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(s.bearer.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    fn end(&self, id: &str) {
        self.lock().remove(&digest(id));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(id: &str) -> String {
    hex(&Sha256::digest(id.as_bytes()))
}

/// The CSRF token of the session whose id is `session`.
fn csrf_of(session: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CSRF_LABEL);
    hasher.update(session.as_bytes());
    hex(&hasher.finalize())
}

/// Whether a browser's request comes from a page of this server: its `Origin` (or, without one,
/// its `Referer`) names the host the request was sent to. A request with neither (not from a
/// browser page: curl, a script) passes; `Origin: null` (a sandboxed or privacy-stripped page)
/// does not.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let claimed = match (headers.get(ORIGIN), headers.get(REFERER)) {
        (Some(origin), _) => origin.to_str().ok(),
        (None, Some(referer)) => referer.to_str().ok(),
        (None, None) => return true,
    };
    let Some(claimed) = claimed else { return false };
    let authority = claimed
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
    authority.is_some_and(|a| !a.is_empty() && a.eq_ignore_ascii_case(host.trim()))
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
    /// The cleared cookie's `Secure` follows the scheme, as the session cookie's does.
    secure: bool,
}

impl SignIn {
    fn of(state: &AppState, headers: &HeaderMap) -> SignIn {
        SignIn {
            htmx: headers.contains_key("hx-request"),
            secure: secure(state, headers),
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
            .insert(SET_COOKIE, cleared(self.secure));
        response
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let sessions = parts
            .extensions
            .get::<Sessions>()
            .cloned()
            .unwrap_or_default();
        let Some((id, bearer)) =
            cookie(&parts.headers).and_then(|id| sessions.bearer(&id).map(|b| (id, b)))
        else {
            return Err(SignIn::of(state, &parts.headers).into_response());
        };
        match auth::authenticate(state.store.as_ref(), &bearer).await {
            Ok(caller) => {
                tracing::Span::current().record("user", caller.user.as_str());
                Ok(Session {
                    caller,
                    csrf: csrf_of(&id),
                    id,
                })
            }
            Err(error) if error.status == StatusCode::UNAUTHORIZED => {
                Err(SignIn::of(state, &parts.headers).into_response())
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
        if cross_site(&parts.headers) || !same_origin(&parts.headers) {
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

/// Whether the session cookie is `Secure`: the browser reached this server over https — TLS
/// served here, an `https` public URL (`--public-url`: a reverse proxy terminates TLS), or a
/// proxy's `X-Forwarded-Proto: https` / `Forwarded: proto=https` — or it reached a loopback
/// host, where browsers keep `Secure` cookies over plain http too. Browsers refuse a `Secure`
/// cookie sent over plain http to any other host, which would make signing in impossible.
///
/// The forwarded headers are honoured from any client: they can only add `Secure`, which makes
/// the cookie stricter for whoever sent them, never weaker for anyone else.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    secure_for(state.tls, state.public_url.as_deref(), headers)
}

fn secure_for(tls: bool, public_url: Option<&str>, headers: &HeaderMap) -> bool {
    if tls || public_url.is_some_and(|u| u.to_ascii_lowercase().starts_with("https://")) {
        return true;
    }
    let forwarded_https = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
        || headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split([';', ','])
                    .any(|pair| pair.trim().eq_ignore_ascii_case("proto=https"))
            });
    forwarded_https || loopback_host(headers)
}

/// The `Host` the browser sent names this machine's loopback (`localhost`, 127.x, `[::1]`).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The attributes every session cookie has, `Secure` when [`secure`] says so.
fn attributes(secure: bool) -> &'static str {
    if secure {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

/// The value that removes the session cookie.
fn cleared(secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; {}; Max-Age=0",
        attributes(secure)
    ))
    .expect("a fixed cookie is a valid header value")
}

fn session_cookie(id: &str, secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={id}; {}; Max-Age={}",
        attributes(secure),
        SESSION_TTL.as_secs()
    ))
    .expect("a hex session id is a valid header value")
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
    sessions: Option<axum::Extension<Sessions>>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if cross_site(&headers) || !same_origin(&headers) {
        return UiError::forbidden("a sign-in from another site is refused").into_response();
    }
    let sessions = sessions.map(|s| s.0).unwrap_or_default();
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
    let Some(id) = sessions.start(bearer) else {
        return UiError::from(crate::ApiError::internal("no randomness for a session id"))
            .into_response();
    };
    let cookie = session_cookie(&id, secure(&state, &headers));
    tracing::info!(user = %caller.user, role = %caller.role, "signed in to the web UI");
    let mut response = Redirect::to("/ui/releases").into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /ui/logout`: ends the session and forgets its cookie (the token itself stays valid
/// until revoked).
pub async fn logout(
    State(state): State<AppState>,
    sessions: Option<axum::Extension<Sessions>>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    if let Some(sessions) = sessions {
        sessions.end(&posted.session.id);
    }
    tracing::info!(user = %posted.caller().user, "signed out of the web UI");
    let mut response = Redirect::to(LOGIN).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cleared(secure(&state, &headers)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_when_the_browser_used_https_or_loopback() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let secure = |_: &(), h: &HeaderMap| secure_for(false, None, h);
        let state = ();
        let plain = headers(&[("host", "backout.example.com")]);
        assert!(!secure(&state, &plain), "plain http to a named host");
        for host in [
            "localhost:7878",
            "127.0.0.1:7878",
            "[::1]:7878",
            "LOCALHOST",
        ] {
            let mut h = HeaderMap::new();
            h.insert(HOST, HeaderValue::from_static(host));
            assert!(secure(&state, &h), "{host}");
        }
        for forwarded in [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-proto", "HTTPS, http"),
            ("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"),
        ] {
            let h = headers(&[("host", "backout.example.com"), forwarded]);
            assert!(secure(&state, &h), "{forwarded:?}");
        }
        let h = headers(&[
            ("host", "backout.example.com"),
            ("x-forwarded-proto", "http"),
        ]);
        assert!(!secure(&state, &h));
        assert!(
            !session_cookie("ab", false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            cleared(true)
                .to_str()
                .unwrap()
                .ends_with("Path=/; Secure; Max-Age=0")
        );

        let https = Some("https://backout.example.com");
        assert!(secure_for(false, https, &plain), "an https public URL");
        assert!(!secure_for(
            false,
            Some("http://backout.example.com"),
            &plain
        ));
        assert!(secure_for(true, None, &plain), "TLS served here");
    }

    #[test]
    fn origin_must_be_this_host() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        let host = ("host", "backout.example.com:7878");
        assert!(
            same_origin(&headers(&[host])),
            "no Origin: not a browser page"
        );
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://backout.example.com:7878")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://backout.example.com:7878/ui/login?x")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            host,
            ("referer", "https://backout.example.com.evil.example/")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "https://backout.example.com:7878"
        )])));
    }

    #[test]
    fn sessions_are_random_and_end() {
        let sessions = Sessions::default();
        let a = sessions.start("tok-a.secret").expect("randomness");
        let b = sessions.start("tok-a.secret").expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("tok-a"));
        assert_eq!(sessions.bearer(&a).as_deref(), Some("tok-a.secret"));
        assert_eq!(
            sessions.bearer("tok-a.secret"),
            None,
            "the token is not a session"
        );
        sessions.end(&a);
        assert_eq!(sessions.bearer(&a), None);
        assert!(sessions.bearer(&b).is_some());
    }

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
