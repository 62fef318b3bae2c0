//! `backout serve`: the shared place. An axum server with the JSON API under `/api/v1`
//! (bearer tokens with roles, [`auth`]), `/healthz`, `/metrics` and `/openapi.json`, and in the
//! background the criteria watcher of every open release, the rollbacks it approves
//! automatically, the executions started through the API ([`rollbacks`]) and the notification
//! dispatcher.
//!
//! Every handler calls the same core operations as the CLI with the token's user as the actor;
//! this crate adds transport, authentication and lifecycle, never a business rule. It knows no
//! SQL: the binary opens the store and passes it in.

pub mod api;
pub mod auth;
mod background;
pub mod errors;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod rollbacks;
pub mod router;
pub mod state;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            limits: Limits::default(),
            grace: Duration::from_secs(10),
            background: true,
        }
    }
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
    let state = AppState::new(store.clone(), stopping.clone());
    let resumed = state.rollbacks.resume_left_over().await?;
    if !resumed.is_empty() {
        tracing::info!(runs = ?resumed, "resuming runs a previous executor left");
    }
    let background = options
        .background
        .then(|| background::spawn(state.clone(), stopping.clone()));
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
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful);
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
    if let Some(background) = background {
        background.join().await;
    }
    state.rollbacks.shutdown().await;
    tracing::info!("stopped");
    served?;
    Ok(())
}
