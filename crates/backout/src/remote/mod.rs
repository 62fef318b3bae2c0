//! The CLI against a shared `backout serve` instead of a local store: with `BACKOUT_SERVER`
//! (and `BACKOUT_TOKEN`) set, the release and run commands call the server's JSON API, so the
//! plan's people rules apply there, to the token's user, exactly as they do on the command line.
//!
//! This module is the HTTP client (timeouts, the bearer token, the API's errors mapped to the
//! documented exit codes), the conversions of the API's answers (the types of [`backout_api`],
//! which the server answers with) into the records the local printers already take
//! ([`convert`]), and the refusal of commands that only work on a local store ([`gate`]).

pub mod convert;
pub mod gate;

use std::time::Duration;

use serde::Deserialize as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cli::Global;
use crate::exit_codes::{CommandError, ExitCode};

/// Where the server is, e.g. `http://127.0.0.1:7878`.
pub const SERVER_VAR: &str = "BACKOUT_SERVER";
/// The bearer token (`tok-….<secret>` from `backout token create`).
pub const TOKEN_VAR: &str = "BACKOUT_TOKEN";

/// How long a connection may take to open: a server that is up answers in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take; the server's own limit is 30 s, so its answer comes first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// The server's URL when `BACKOUT_SERVER` is set (and not empty).
pub fn server_url() -> Option<String> {
    std::env::var(SERVER_VAR)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
}

/// A connection to the server, made from the environment.
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// An error answer of the API: `{"error": {"code", "message", "details"?}}` and its status.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<Value>,
}

impl Remote {
    /// The server of `BACKOUT_SERVER`, or `None` when the local store is used. Setting it with
    /// `--database`, or without `BACKOUT_TOKEN`, is a usage error that says what to do.
    pub fn from_env(global: &Global) -> Result<Option<Remote>, CommandError> {
        let Some(base) = server_url() else {
            return Ok(None);
        };
        if global.database.is_some() {
            return Err(CommandError::usage(format!(
                "both {SERVER_VAR} ({base}) and --database (or BACKOUT_DATABASE_URL) are set; \
                 give one: unset {SERVER_VAR} to use the local store, or drop --database and \
                 unset BACKOUT_DATABASE_URL to use the server"
            )));
        }
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CommandError::usage(format!(
                "{SERVER_VAR}=`{base}` is not a URL; give the address of `backout serve`, e.g. \
                 http://127.0.0.1:7878"
            )));
        }
        let token = std::env::var(TOKEN_VAR)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CommandError::usage(format!(
                    "{SERVER_VAR} is set ({base}) but {TOKEN_VAR} is not; export {TOKEN_VAR}=tok-… \
                     (an admin makes one with `backout token create --user YOU --role ROLE` on \
                     the server's store), or unset {SERVER_VAR} to use a local store"
                ))
            })?;
        backout_core::runner::http::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("backout/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                CommandError::internal(format!("cannot build the HTTP client: {}", causes(&e)))
            })?;
        Ok(Some(Remote {
            base,
            token,
            client,
        }))
    }

    /// The server's URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// On a server the actor is always the token's user: `--as` (or `BACKOUT_USER`) naming
    /// someone else is refused rather than silently ignored.
    pub async fn check_actor(&self, global: &Global) -> Result<(), CommandError> {
        let Some(wanted) = global.actor.as_deref() else {
            return Ok(());
        };
        let me: backout_api::Me = self.get_as("me", "/api/v1/me").await?;
        let user = me.user.as_str();
        if user == wanted {
            return Ok(());
        }
        Err(CommandError::usage(format!(
            "--as (or BACKOUT_USER) says `{wanted}`, but {TOKEN_VAR} acts as `{user}` on {}; \
             on a server the actor is always the token's user: drop --as and unset BACKOUT_USER, \
             or use a token of `{wanted}`",
            self.base
        )))
    }

    /// `GET path`, decoded into its API type (`what` names it in the error).
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
    ) -> Result<T, CommandError> {
        convert::parse(what, &self.get(path).await?)
    }

    /// `POST path` with a typed request body (one of [`backout_api`]'s request structs),
    /// its answer decoded into its API type (`what` names it in the error).
    pub async fn post_as<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        body: &B,
    ) -> Result<T, CommandError> {
        convert::parse(what, &self.post(path, body_of(body)?).await?)
    }

    pub async fn get(&self, path: &str) -> Result<Value, CommandError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, CommandError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A request whose error answers become the documented exit codes.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CommandError> {
        self.try_call(method, path, body)
            .await?
            .map_err(|failure| self.command_error(failure))
    }

    /// A request; `Ok(Err(…))` is the API's error answer, for callers that handle some
    /// themselves (an invalid plan's diagnostics). `Err` is a server that cannot be reached
    /// or does not answer as `backout serve` does.
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Result<Value, ApiFailure>, CommandError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            let text = serde_json::to_vec(&body)
                .map_err(|e| CommandError::internal(format!("cannot encode the request: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(text);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return value
                .map(Ok)
                .ok_or_else(|| self.not_backout(status.as_u16()));
        }
        let Some(backout_api::ErrorBody { error }) = value
            .as_ref()
            .and_then(|v| backout_api::ErrorBody::deserialize(v).ok())
        else {
            return Err(self.not_backout(status.as_u16()));
        };
        Ok(Err(ApiFailure {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            details: error.details,
        }))
    }

    /// The exit code and message of an error answer: the same as the local command's where
    /// there is one (a rule's refusal 5, an unknown id 2, a bad request 2).
    pub fn command_error(&self, failure: ApiFailure) -> CommandError {
        let ApiFailure {
            status,
            code,
            message,
            ..
        } = failure;
        match status {
            401 => CommandError::refused(format!(
                "the server {} does not accept {TOKEN_VAR}: {message}; ask an admin for a \
                 token (`backout token create` on the server's store)",
                self.base
            )),
            // The token's role: the message says which role may.
            403 if code == "forbidden" => CommandError::refused(format!(
                "{message} (ask an admin of {} for such a token)",
                self.base
            )),
            // A rule of the plan, or the state of the release or run: the message names it,
            // as the local refusal does.
            403 | 409 => CommandError::refused(message),
            404 => CommandError::usage(format!(
                "{message} on the server {} (see `backout status`)",
                self.base
            )),
            503 => CommandError::internal(format!(
                "the server {} could not answer in time: {message}",
                self.base
            )),
            s if s >= 500 => CommandError::internal(format!(
                "the server {} failed (HTTP {s}); its log has the detail",
                self.base
            )),
            _ => CommandError::usage(message),
        }
    }

    /// One line for a request that got no answer: which server, what went wrong, what to do.
    fn transport_error(&self, error: &reqwest::Error) -> CommandError {
        let base = &self.base;
        let message = if error.is_timeout() {
            format!(
                "the backout server at {base} ({SERVER_VAR}) did not answer in time; is \
                 `backout serve` running there, and reachable from here?"
            )
        } else if error.is_connect() {
            format!(
                "cannot reach the backout server at {base} ({SERVER_VAR}): {}; is `backout \
                 serve` running there?",
                root_cause(error)
            )
        } else {
            format!(
                "the request to the backout server at {base} ({SERVER_VAR}) failed: {}",
                root_cause(error)
            )
        };
        CommandError {
            code: ExitCode::Internal,
            message,
        }
    }

    fn not_backout(&self, status: u16) -> CommandError {
        CommandError::internal(format!(
            "{} answered HTTP {status} with something other than backout's JSON; is \
             {SERVER_VAR} the address of `backout serve`?",
            self.base
        ))
    }
}

/// Runs `work` against the server when `BACKOUT_SERVER` is set (`None` otherwise, for the
/// local store), after checking that `--as` does not contradict the token.
pub fn run<F, Fut, T>(global: &Global, work: F) -> Option<Result<T, CommandError>>
where
    F: FnOnce(Remote) -> Fut,
    Fut: std::future::Future<Output = Result<T, CommandError>>,
{
    let remote = match Remote::from_env(global) {
        Ok(Some(remote)) => remote,
        Ok(None) => return None,
        Err(error) => return Some(Err(error)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return Some(Err(CommandError::internal(format!(
                "cannot start the async runtime: {e}"
            ))));
        }
    };
    Some(runtime.block_on(async {
        remote.check_actor(global).await?;
        work(remote).await
    }))
}

/// The rehearsal evidence the server holds for `service` (`GET /api/v1/evidence`), newest
/// first, as the local store lists it: what `lint --evidence/--require-tested` and
/// `start --require-tested` judge a plan against when `BACKOUT_SERVER` is set.
pub async fn evidence_of(
    remote: &Remote,
    service: &str,
) -> Result<Vec<backout_store::Evidence>, CommandError> {
    let listed: backout_api::EvidenceList = remote
        .get_as(
            "evidence",
            &format!("/api/v1/evidence?service={}&limit=500", segment(service)),
        )
        .await?;
    Ok(listed
        .evidence
        .into_iter()
        .map(backout_store::Evidence::from)
        .collect())
}

/// A typed request body as the JSON sent.
pub fn body_of<B: Serialize + ?Sized>(body: &B) -> Result<Value, CommandError> {
    serde_json::to_value(body)
        .map_err(|e| CommandError::internal(format!("cannot encode the request: {e}")))
}

/// A release's resource in the API: `/api/v1/releases/{id}{rest}`.
pub fn release_path(id: &str, rest: &str) -> String {
    format!("/api/v1/releases/{}{rest}", segment(id))
}

/// A run's resource in the API: `/api/v1/runs/{id}{rest}`.
pub fn run_path(id: &str, rest: &str) -> String {
    format!("/api/v1/runs/{}{rest}", segment(id))
}

/// Percent-encodes a path segment (ids and step names are plain, but a typo should reach the
/// server as the typo, not as another path).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The innermost cause (e.g. "Connection refused (os error 111)"), never a debug dump.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        last = cause.to_string();
        source = cause.source();
    }
    last
}

fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("run-01jd8k"), "run-01jd8k");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(
            release_path("rel 1", "/check"),
            "/api/v1/releases/rel%201/check"
        );
        assert_eq!(run_path("run-1", ""), "/api/v1/runs/run-1");
    }
}
