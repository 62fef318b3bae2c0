//! Short-lived answers for the hottest reads, so that a release's status page refreshed by a
//! hundred people, or polled by scripts, costs one replay of its journal per moment instead of
//! one per request.
//!
//! An answer is reused while all of these hold:
//! - it is younger than [`FRESH`] (what other processes write, and the time-dependent fields
//!   such as the window's remaining time, show within that);
//! - no write request went through this server since (a client reads its own writes);
//! - when the store has a change feed, the journal has not grown since (then even the
//!   background watcher's measurements show at once).
//!
//! When an answer is out of date only because time passed or the journal grew, the first request
//! to notice computes the new one while the others still get the previous answer (a few
//! milliseconds old): a busy page does not make every waiting request replay the journal at
//! once. A write through this server is never answered from before it.
//!
//! Only successful answers are kept, keyed by path and query; authentication runs before this
//! layer, and the answers cached here do not depend on who asks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// How long an answer may be reused at most.
pub const FRESH: Duration = Duration::from_millis(500);
/// Largest answer kept.
const LARGEST: usize = 1024 * 1024;
/// Entries kept before old ones are dropped.
const ENTRIES: usize = 10_000;
/// A refresh that has not finished after this long (its client went away) is taken over.
const REFRESH_TAKEOVER: Duration = Duration::from_secs(5);

/// The cache of one server. Cheap to clone.
#[derive(Clone)]
pub struct Answers {
    inner: Arc<Inner>,
}

struct Inner {
    /// Bumped by every write request.
    generation: AtomicU64,
    /// The journal's last `seq`, when the store has a change feed.
    journal: Option<watch::Receiver<u64>>,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    generation: u64,
    journal: u64,
    at: Instant,
    content_type: Option<HeaderValue>,
    body: Bytes,
    /// When a request started computing its successor, if one is.
    refreshing: Option<Instant>,
}

/// What a request finds in the cache.
enum Found {
    /// An answer to send.
    Answer(Response),
    /// Nothing usable: compute it (and keep it).
    Compute,
}

impl Answers {
    pub fn new(journal: Option<watch::Receiver<u64>>) -> Answers {
        Answers {
            inner: Arc::new(Inner {
                generation: AtomicU64::new(0),
                journal,
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn journal(&self) -> u64 {
        self.inner.journal.as_ref().map_or(0, |j| *j.borrow())
    }

    fn lookup(&self, key: &str) -> Found {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let journal = self.journal();
        let Ok(mut entries) = self.inner.entries.lock() else {
            return Found::Compute;
        };
        let Some(entry) = entries.get_mut(key) else {
            return Found::Compute;
        };
        if entry.generation != generation {
            return Found::Compute;
        }
        if entry.journal != journal || entry.at.elapsed() > FRESH {
            let taken = entry
                .refreshing
                .is_some_and(|since| since.elapsed() < REFRESH_TAKEOVER);
            if !taken {
                entry.refreshing = Some(Instant::now());
                return Found::Compute;
            }
        }
        let mut response = Response::new(Body::from(entry.body.clone()));
        if let Some(content_type) = &entry.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
        }
        Found::Answer(response)
    }

    fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            entries.remove(key);
        }
    }

    fn keep(&self, key: String, entry: Entry) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            if entries.len() >= ENTRIES {
                entries.retain(|_, e| e.at.elapsed() <= FRESH);
            }
            if entries.len() < ENTRIES {
                entries.insert(key, entry);
            }
        }
    }
}

/// Middleware of the cached routes (GET only).
pub async fn reuse(
    axum::Extension(answers): axum::Extension<Answers>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let key = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    if let Found::Answer(response) = answers.lookup(&key) {
        return response;
    }
    // Read the marks before computing: a write during the computation makes the entry stale.
    let generation = answers.inner.generation.load(Ordering::Acquire);
    let journal = answers.journal();
    let at = Instant::now();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        answers.forget(&key);
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, LARGEST).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "an answer could not be read to cache it");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    answers.keep(
        key,
        Entry {
            generation,
            journal,
            at,
            content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
            body: body.clone(),
            refreshing: None,
        },
    );
    Response::from_parts(parts, Body::from(body))
}

/// Middleware of every route: a request that may write makes every cached answer stale.
pub async fn forget_on_write(
    axum::Extension(answers): axum::Extension<Answers>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if writes {
        // Before, so that a read racing this write cannot cache what it read before the write;
        // and after, so that a read that started during it cannot either.
        answers.inner.generation.fetch_add(1, Ordering::AcqRel);
    }
    let response = next.run(request).await;
    if writes {
        answers.inner.generation.fetch_add(1, Ordering::AcqRel);
    }
    response
}
