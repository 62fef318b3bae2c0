//! `backout serve`: opens the store and runs the server (`backout-server`) on a multi-threaded
//! runtime until SIGTERM or Ctrl-C, with structured logs on standard error (`BACKOUT_LOG`, an
//! env-filter such as `info` or `backout_server=debug`).

use std::net::SocketAddr;
use std::sync::Arc;

use backout_server::ServeOptions;
use backout_store::Store;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};

mod demo;

pub fn serve(args: &ServeArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        CommandError::usage(format!(
            "--listen {}: expected an address and port like 127.0.0.1:7878",
            args.listen
        ))
    })?;
    let header_read_timeout = backout_model::Duration::parse(&args.header_timeout)
        .filter(|d| !d.0.is_zero())
        .ok_or_else(|| {
            CommandError::usage(format!(
                "--header-timeout {}: expected a duration like 10s or 500ms",
                args.header_timeout
            ))
        })?
        .0;
    let public_url = args
        .public_url
        .as_deref()
        .filter(|url| !url.trim().is_empty())
        .map(backout_core::notify::public_url)
        .transpose()
        .map_err(|e| CommandError::usage(format!("--public-url {e}")))?;
    if args.max_connections_per_ip == 0 {
        return Err(CommandError::usage(
            "--max-connections-per-ip must be at least 1",
        ));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    init_logs()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        // Signals are caught from here on: a SIGTERM during start-up is a clean stop too.
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CommandError::internal(format!("cannot catch SIGTERM: {e}")))?;
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| CommandError::internal(format!("cannot catch SIGINT: {e}")))?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        };
        let demo_dir = args.demo.then(demo::directory);
        let ctx = match &demo_dir {
            Some(dir) => Context::new(demo::global(&ctx.global, dir)?),
            None => ctx.clone(),
        };
        // The feed wakes live streams and drops cached answers as soon as the journal grows;
        // on PostgreSQL, LISTEN/NOTIFY carries the writes of other replicas and CLIs into it.
        let feed = backout_store::Feed::new(ctx.open_store().await?);
        if let Some(url) = ctx
            .global
            .database
            .as_deref()
            .filter(|url| backout_postgres::is_postgres_url(url))
        {
            backout_postgres::listen(url, feed.sender())
                .await
                .map_err(|e| {
                    CommandError::usage(format!("cannot listen for journal writes: {e}"))
                })?;
        }
        if let Some(user) = &args.run_as {
            let user = backout_core::process::run_as(user).map_err(CommandError::usage)?;
            tracing::info!(user = %user.user, uid = user.uid, "steps and command criteria run as");
        } else if rustix::process::getuid().is_root() {
            tracing::warn!(
                "serve runs as root and so would every step and command criterion: give --run-as USER"
            );
        }
        let options = ServeOptions {
            feed: Some(feed.subscribe()),
            require_accepted: args.require_accepted,
            public_url,
            tls: tls.clone(),
            limits: backout_server::Limits {
                header_read_timeout,
                connections_per_ip: args.max_connections_per_ip,
                ..backout_server::Limits::default()
            },
            ..ServeOptions::default()
        };
        let store: Arc<dyn Store> = Arc::new(feed);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CommandError::usage(format!("cannot listen on {listen}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| CommandError::internal(e.to_string()))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %local, scheme, "listening");
        // For people and scripts (port 0 picks a free port: this line says which).
        eprintln!("backout serve: listening on {scheme}://{local}");
        if let Some(dir) = &demo_dir {
            let database = ctx.global.database.as_deref().unwrap_or_default();
            demo::start(store.as_ref(), local, dir, database, ctx.now()).await?;
        }
        backout_server::serve(store, listener, options, shutdown)
            .await
            .map_err(|e| CommandError::internal(e.to_string()))?;
        Ok(ExitCode::Ok)
    })
}

/// The TLS configuration of `--tls-cert`/`--tls-key`: rustls on ring, TLS 1.2 and 1.3,
/// HTTP/1.1 only (the server speaks nothing else). Every problem names the file and what to do.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, CommandError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| {
            CommandError::usage(format!(
                "--tls-cert {}: cannot read a PEM certificate chain: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(CommandError::usage(format!(
            "--tls-cert {}: no `BEGIN CERTIFICATE` block in it (expected a PEM chain, leaf first)",
            cert.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        CommandError::usage(format!(
            "--tls-key {}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| CommandError::internal(format!("TLS versions: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .map_err(|e| {
        CommandError::usage(format!(
            "--tls-cert {} / --tls-key {}: {e} (is the key the certificate's?)",
            cert.display(),
            key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Logs on standard error: human lines, or one JSON object per line with
/// `BACKOUT_LOG_FORMAT=json` (for journald/Loki/Elasticsearch collectors).
fn init_logs() -> Result<(), CommandError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BACKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let format = std::env::var("BACKOUT_LOG_FORMAT").unwrap_or_default();
    match format.trim() {
        "" | "text" => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(crate::output::color_stderr())
                .try_init();
        }
        "json" => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_current_span(false)
                .try_init();
        }
        other => {
            return Err(CommandError::usage(format!(
                "BACKOUT_LOG_FORMAT={other}: expected `text` or `json`"
            )));
        }
    }
    Ok(())
}
