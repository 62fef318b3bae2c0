//! `backout serve`: the shared place. An axum server with the JSON API under `/api/v1`
//! (bearer tokens with roles, [`auth`]), `/healthz`, `/metrics` and `/openapi.json`, and in the
//! background the criteria watcher of every open release, the rollbacks it approves
//! automatically, the executions started through the API ([`rollbacks`]) and the notification
//! dispatcher.
//!
//! Every handler calls the same core operations as the CLI with the token's user as the actor;
//! this crate adds transport, authentication and lifecycle, never a business rule. It knows no
//! SQL: the binary opens the store and passes it in.

pub mod answers;
pub mod api;
pub mod auth;
mod background;
pub mod cache;
pub mod demo;
mod drills;
pub mod errors;
pub mod events;
mod listen;
pub mod metrics;
pub mod openapi;
pub mod plans;
mod registry;
pub mod rollbacks;
pub mod router;
pub mod runs;
pub mod state;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backout_core::executor::LeaseSettings;
use backout_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use errors::ApiError;
pub use router::{Limits, ROUTES, router};
pub use state::AppState;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub limits: Limits,
    /// After the shutdown signal, how long in-flight requests may take to finish.
    pub grace: Duration,
    /// Run the criteria watcher and the notification dispatcher (tests of the API alone turn
    /// them off).
    pub background: bool,
    /// Wakes the live tails (SSE) as soon as the journal grows: [`backout_store::Feed::subscribe`]
    /// of the store passed to [`serve`]. Without it they poll the store every 200 ms.
    pub feed: Option<watch::Receiver<u64>>,
    /// How long a lease on a release or a run lives without its heartbeat (renewed every third
    /// of it): after a replica dies, another takes its work over within about this long.
    /// `BACKOUT_LEASE_TTL` (e.g. `15s`, `2500ms`) sets the default.
    pub lease_ttl: Duration,
    /// This replica's id as the owner of its leases; `None` makes one (`host:pid:random`).
    pub replica: Option<String>,
    /// At shutdown, how long the steps running may take to finish (no new step starts) before
    /// they are stopped as a crash would stop them.
    pub drain: Duration,
    /// Refuse to open releases whose plan is not accepted (`serve --require-accepted`). Without
    /// it such releases open, but their command criteria do not run, no automatic approval is
    /// honoured and nothing is executed until the plan is accepted.
    pub require_accepted: bool,
    /// Where people open the web UI (`serve --public-url`, `BACKOUT_PUBLIC_URL`): the
    /// dispatcher's notices link the release, run and decision pages under it.
    pub public_url: Option<String>,
    /// Serve https with this configuration (`serve --tls-cert/--tls-key`): every accepted
    /// connection does a TLS handshake first, within the header-read timeout.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            limits: Limits::default(),
            grace: Duration::from_secs(10),
            background: true,
            feed: None,
            lease_ttl: lease_ttl_from_env(),
            replica: None,
            drain: Duration::from_secs(30),
            require_accepted: false,
            public_url: None,
            tls: None,
        }
    }
}

/// The default lease time to live when `BACKOUT_LEASE_TTL` is not set.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// `BACKOUT_LEASE_TTL` when it is a duration of at least 100 ms, else [`DEFAULT_LEASE_TTL`]
/// (a malformed value is reported in the log, not fatal: the default is safe, only slower).
fn lease_ttl_from_env() -> Duration {
    let Ok(text) = std::env::var("BACKOUT_LEASE_TTL") else {
        return DEFAULT_LEASE_TTL;
    };
    match backout_model::Duration::parse(&text) {
        Some(ttl) if ttl.0 >= Duration::from_millis(100) => ttl.0,
        _ => {
            tracing::warn!(
                value = %text,
                "BACKOUT_LEASE_TTL is not a duration of at least 100ms (e.g. `15s`); using {}s",
                DEFAULT_LEASE_TTL.as_secs()
            );
            DEFAULT_LEASE_TTL
        }
    }
}

/// A replica id unique to this process: `host:pid:random`.
fn new_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let mut random = [0u8; 4];
    // Without randomness the pid still tells replicas of one host apart.
    let _ = getrandom::fill(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}:{}:{random}", std::process::id())
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Exec(#[from] backout_core::ExecError),
}

/// Serves on `listener` until `shutdown` completes, then shuts down gracefully: stops
/// accepting, lets in-flight requests finish (at most `options.grace`), ends live streams,
/// stops the watcher and the executions (their journal says where they were: the next server
/// resumes them), and lets the dispatcher send what is due for a few seconds.
pub async fn serve(
    store: Arc<dyn Store>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopping) = watch::channel(false);
    let mut state = AppState::new(store.clone(), stopping.clone(), options.feed.clone());
    state.require_accepted = options.require_accepted;
    state.public_url = options.public_url.clone();
    state.tls = options.tls.is_some();
    let leases = LeaseSettings {
        owner: options.replica.clone().unwrap_or_else(new_replica_id),
        ttl: options.lease_ttl,
    };
    tracing::info!(
        replica = %leases.owner,
        lease_ttl_ms = u64::try_from(leases.ttl.as_millis()).unwrap_or(u64::MAX),
        "sharing work through leases"
    );
    state.rollbacks.share(leases.clone());
    let resumed = state.rollbacks.take_over().await?;
    if !resumed.is_empty() {
        tracing::info!(
            runs = ?resumed,
            "resuming runs a previous executor left (nobody executes them any more)"
        );
    }
    let takeovers = tokio::spawn(background::take_over_runs(
        state.clone(),
        leases.ttl / 3,
        stopping.clone(),
    ));
    let background = options
        .background
        .then(|| background::spawn(state.clone(), leases.clone(), stopping.clone()));
    let app = router(state.clone(), &options.limits);
    let stop_on_signal = stop.clone();
    let (signalled, mut signal) = watch::channel(false);
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = signalled.send(true);
        // Live streams never finish on their own: end them now.
        let _ = stop_on_signal.send(true);
    };
    let limits = options.limits.clone();
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let server = async move { listen::serve(listener, app, &limits, tls, graceful).await };
    let grace = options.grace;
    let deadline = async move {
        while !*signal.borrow_and_update() {
            if signal.changed().await.is_err() {
                return std::future::pending::<()>().await;
            }
        }
        tokio::time::sleep(grace).await;
    };
    let served = tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("requests still in flight after {grace:?}; stopping anyway");
            Ok(())
        }
    };
    let _ = stop.send(true);
    let _ = takeovers.await;
    if let Some(background) = background {
        background.join().await;
    }
    state.rollbacks.shutdown(options.drain).await;
    // Another replica takes the work over at once instead of after the leases' expiry.
    background::release_leases(store.as_ref(), &leases.owner).await;
    tracing::info!("stopped");
    served?;
    Ok(())
}
