//! `backout serve`: opens the store and runs the server (`backout-server`) on a multi-threaded
//! runtime until SIGTERM or Ctrl-C, with structured logs on standard error (`BACKOUT_LOG`, an
//! env-filter such as `info` or `backout_server=debug`).

use std::net::SocketAddr;
use std::sync::Arc;

use backout_server::ServeOptions;
use backout_store::Store;
use tokio::signal::unix::{SignalKind, signal};

use super::runs::open_store;
use crate::cli::{Global, ServeArgs};
use crate::exit_codes::{CommandError, ExitCode};

mod demo;

pub fn serve(args: &ServeArgs, global: &Global) -> Result<ExitCode, CommandError> {
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
    init_logs();
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
        let global = match &demo_dir {
            Some(dir) => demo::global(global, dir)?,
            None => global.clone(),
        };
        // The feed wakes live streams and drops cached answers as soon as the journal grows;
        // on PostgreSQL, LISTEN/NOTIFY carries the writes of other replicas and CLIs into it.
        let feed = backout_store::Feed::new(open_store(&global).await?);
        if let Some(url) = global
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
        tracing::info!(address = %local, "listening");
        // For people and scripts (port 0 picks a free port: this line says which).
        eprintln!("backout serve: listening on http://{local}");
        if let Some(dir) = &demo_dir {
            let database = global.database.as_deref().unwrap_or_default();
            demo::start(store.as_ref(), local, dir, database).await?;
        }
        backout_server::serve(store, listener, options, shutdown)
            .await
            .map_err(|e| CommandError::internal(e.to_string()))?;
        Ok(ExitCode::Ok)
    })
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BACKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::color_stderr())
        .try_init();
}
