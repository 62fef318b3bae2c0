//! Bearer tokens and roles. A token is `tok-<id>.<secret>`: the id finds the record, the secret
//! (32 random bytes, hex) proves possession. The store keeps only the SHA-256 of the secret,
//! compared in constant time, so neither a stolen database nor response timing gives a token
//! away. A revoked token authenticates nobody.
//!
//! Roles say what kind of request a token may make ([`Role`]); the plan's `people` rules then
//! apply on top, to the token's user, inside the core operations (a decider token whose user is
//! not among the plan's deciders is still refused, naming the rule).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use backout_store::{NewEvent, NewToken, Role, Store, StoreError, Token};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::errors::ApiError;
use crate::state::AppState;

/// A token as created: shown to its owner once, stored only as [`NewToken`].
pub struct IssuedToken {
    /// The bearer string, `tok-….<64 hex>`. Never stored.
    pub bearer: String,
    pub record: NewToken,
}

/// Makes a new token for `user` with `role`, created by `created_by` at `now_ms`.
pub fn issue(
    user: &str,
    role: Role,
    created_by: &str,
    now_ms: i64,
) -> Result<IssuedToken, getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let secret = hex(&secret);
    let id = backout_store::new_token_id(now_ms);
    Ok(IssuedToken {
        bearer: format!("{id}.{secret}"),
        record: NewToken {
            id,
            user: user.trim().to_string(),
            role,
            secret_hash: digest(&secret),
            created_at_ms: now_ms,
            created_by: created_by.to_string(),
        },
    })
}

/// Stores a new token with its `token_created` event; returns the bearer string to show once.
pub async fn create(
    store: &dyn Store,
    user: &str,
    role: Role,
    created_by: &str,
    now_ms: i64,
) -> Result<IssuedToken, CreateError> {
    if user.trim().is_empty() {
        return Err(CreateError::NoUser);
    }
    let issued = issue(user, role, created_by, now_ms).map_err(CreateError::Random)?;
    let record = &issued.record;
    let event = NewEvent::new("token_created", created_by, now_ms)
        .payload(json!({ "token": record.id, "user": record.user, "role": record.role }));
    store.create_token(record, &event).await?;
    Ok(issued)
}

/// Revokes a token with its `token_revoked` event.
pub async fn revoke(
    store: &dyn Store,
    id: &str,
    actor: &str,
    now_ms: i64,
) -> Result<Token, StoreError> {
    let token = store.get_token(id).await?;
    let event = NewEvent::new("token_revoked", actor, now_ms)
        .payload(json!({ "token": id, "user": token.user, "role": token.role }));
    store.revoke_token(id, actor, now_ms, &event).await?;
    store.get_token(id).await
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a token needs a user (--user)")]
    NoUser,
    #[error("the operating system gave no random bytes")]
    Random(#[source] getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `sha256:<hex>` of a secret.
fn digest(secret: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(secret.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Who is calling: the token's user and role.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token_id: String,
    pub user: String,
    pub role: Role,
}

impl Caller {
    /// Refuses (403) unless the token's role is at least `needed`, saying what was needed.
    pub fn require(&self, needed: Role, to: &str) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        let may: Vec<&str> = Role::ALL
            .iter()
            .filter(|r| **r >= needed)
            .map(|r| r.as_str())
            .collect();
        Err(ApiError::forbidden(format!(
            "the token of `{}` has the role `{}`, which may not {to}; a token with the role {} may",
            self.user,
            self.role,
            may.iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }
}

/// Checks the bearer string against the stored token: the id finds it, the secret's digest
/// must match (in constant time), and it must not be revoked.
pub async fn authenticate(store: &dyn Store, bearer: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthorized("the bearer token is not valid");
    let (id, secret) = bearer.trim().split_once('.').ok_or_else(invalid)?;
    if !id.starts_with("tok-") || id.len() > 64 || secret.len() != 64 {
        return Err(invalid());
    }
    let token = match store.get_token(id).await {
        Ok(token) => token,
        Err(StoreError::NotFound { .. }) => return Err(invalid()),
        Err(error) => return Err(error.into()),
    };
    let presented = digest(secret);
    if !bool::from(presented.as_bytes().ct_eq(token.secret_hash.as_bytes())) {
        return Err(invalid());
    }
    if token.is_revoked() {
        return Err(ApiError::unauthorized(format!(
            "token `{id}` was revoked; ask an admin for a new one (`backout token create`)"
        )));
    }
    Ok(Caller {
        token_id: token.id,
        user: token.user,
        role: token.role,
    })
}

/// How long a token that authenticated is remembered at most. Revocations do not wait for
/// this: see [`Recent`].
const REMEMBERED_FOR: Duration = Duration::from_secs(60);
/// Tokens remembered at most (only ones that authenticated).
const REMEMBERED: usize = 10_000;

/// How often the journal is searched for revocations by other processes (which a SQLite
/// server's change feed does not hear of).
const RECHECK: Duration = Duration::from_millis(250);

/// Tokens that authenticated recently, by the digest of the bearer string, so that a busy
/// client does not cost a store query per request. Only with a change feed. The journal is
/// searched for `token_revoked` events whenever the feed says it grew, and at least every
/// [`RECHECK`] (for writes the feed does not hear: another process on SQLite); when one is
/// found every remembered token is forgotten. So a revocation by this server or through
/// PostgreSQL holds from the next request on, one by another process on SQLite within 250 ms.
/// Without a feed (tests of the API alone), every request asks the store.
#[derive(Clone)]
pub struct Recent {
    inner: Arc<RecentInner>,
}

struct RecentInner {
    journal: Option<watch::Receiver<u64>>,
    /// The journal was searched for revocations up to this `seq`, at this time.
    checked: Mutex<(u64, Instant)>,
    callers: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl Recent {
    pub fn new(journal: Option<watch::Receiver<u64>>) -> Recent {
        let seq = journal.as_ref().map_or(0, |j| *j.borrow());
        Recent {
            inner: Arc::new(RecentInner {
                journal,
                checked: Mutex::new((seq, Instant::now())),
                callers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The remembered caller of `key`, after forgetting everyone if a token was revoked since
    /// the last look.
    async fn get(&self, store: &dyn Store, key: &str) -> Result<Option<Caller>, ApiError> {
        let Some(journal) = &self.inner.journal else {
            return Ok(None);
        };
        let fed = *journal.borrow();
        let (checked, at) = match self.inner.checked.lock() {
            Ok(checked) => *checked,
            Err(_) => return Ok(None),
        };
        if fed > checked || at.elapsed() >= RECHECK {
            // The head first: whatever commits later is searched next time.
            let head = store.last_event().await?.map_or(0, |e| e.seq);
            let revoked = store
                .events_of_kinds(checked, &["token_revoked"], 1)
                .await?;
            if !revoked.is_empty()
                && let Ok(mut callers) = self.inner.callers.lock()
            {
                callers.clear();
            }
            if let Ok(mut checked) = self.inner.checked.lock() {
                *checked = (checked.0.max(head).max(fed), Instant::now());
            }
        }
        let Ok(callers) = self.inner.callers.lock() else {
            return Ok(None);
        };
        Ok(callers
            .get(key)
            .filter(|(_, at)| at.elapsed() < REMEMBERED_FOR)
            .map(|(caller, _)| caller.clone()))
    }

    fn keep(&self, key: String, caller: &Caller) {
        if self.inner.journal.is_none() {
            return;
        }
        if let Ok(mut callers) = self.inner.callers.lock() {
            if callers.len() >= REMEMBERED {
                callers.retain(|_, (_, at)| at.elapsed() < REMEMBERED_FOR);
            }
            if callers.len() < REMEMBERED {
                callers.insert(key, (caller.clone(), Instant::now()));
            }
        }
    }
}

/// Middleware of every `/api/v1` route: `Authorization: Bearer <token>` or 401; the caller is
/// put in the request's extensions for the handlers.
pub async fn require_token(
    State(state): State<AppState>,
    Extension(recent): Extension<Recent>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "this API needs a bearer token: `Authorization: Bearer tok-…` (create one with `backout token create --user U --role R`)",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let bearer = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    // Keyed by a digest, so the map never holds a usable secret.
    let key = digest(bearer);
    let caller = match recent.get(state.store.as_ref(), &key).await? {
        Some(caller) => caller,
        None => {
            let caller = authenticate(state.store.as_ref(), bearer).await?;
            recent.keep(key, &caller);
            caller
        }
    };
    tracing::Span::current().record("user", caller.user.as_str());
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_random_and_stored_as_digests() {
        let a = issue("carol", Role::Decider, "root", 1_732_000_000_000).unwrap();
        let b = issue("carol", Role::Decider, "root", 1_732_000_000_000).unwrap();
        assert_ne!(a.bearer, b.bearer);
        let (id, secret) = a.bearer.split_once('.').unwrap();
        assert_eq!(id, a.record.id);
        assert_eq!(secret.len(), 64);
        assert!(!a.record.secret_hash.contains(secret));
        assert_eq!(a.record.secret_hash, digest(secret));
    }

    #[test]
    fn roles_are_ordered() {
        let caller = Caller {
            token_id: "tok-x".into(),
            user: "vic".into(),
            role: Role::Viewer,
        };
        assert!(caller.require(Role::Viewer, "read").is_ok());
        let refused = caller.require(Role::Decider, "decide").unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::FORBIDDEN);
        assert!(
            refused.message.contains("`decider` or `admin`"),
            "{}",
            refused.message
        );
    }
}
