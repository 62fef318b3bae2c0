//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timeout, at most
//! [`Limits::connections_per_ip`] connections open at once from one address, and a graceful
//! shutdown that lets requests in flight finish. With TLS (`serve --tls-cert/--tls-key`) each
//! connection's handshake runs in its own task, bounded by the header-read timeout, so a client
//! that stalls it holds only its own slot.
//!
//! `axum::serve` offers neither limit: a client that opens connections and sends nothing would
//! hold them (and a task each) for as long as it likes. This module decides only which
//! connections are served; what a request does is the router's business.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::router::Limits;

/// Open connections per client address.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One counted connection; dropping it gives the slot back.
struct Slot {
    connections: Connections,
    ip: IpAddr,
}

impl Connections {
    /// A slot for `ip`, or `None` when it already has `limit` connections open.
    fn take(&self, ip: IpAddr, limit: usize) -> Option<Slot> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            connections: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open connections to finish their requests (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Connections::default();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = connections.take(peer.ip(), limits.connections_per_ip) else {
            tracing::warn!(
                client = %peer.ip(),
                limit = limits.connections_per_ip,
                "refusing a connection: this address has too many open"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let app = app.clone();
        match &tls {
            None => {
                tokio::spawn(serve_one(builder, watcher, stream, app, slot, peer));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = limits.header_read_timeout;
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            serve_one(builder, watcher, stream, app, slot, peer).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves one connection (plain or TLS) until it ends; the slot is given back then.
async fn serve_one<S>(
    builder: http1::Builder,
    watcher: Watcher,
    stream: S,
    app: Router,
    slot: Slot,
    peer: std::net::SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    // A client that goes away or sends garbage ends only its own connection.
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(client = %peer, error = %e, "connection ended with an error");
    }
    drop(slot);
}
