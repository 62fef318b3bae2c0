//! `backout serve --demo`: the demo's directory and store, its fake service on a port of its
//! own, and the lines that tell a newcomer what to open and which token to sign in with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backout_server::demo::{self, Target};
use backout_store::Store;

use crate::cli::Global;
use crate::exit_codes::CommandError;

/// Where the demo keeps its store, plan and the files its steps touch: `demo/` beside the
/// default store, or a temporary directory when there is no data directory.
pub(super) fn directory() -> PathBuf {
    match backout_sqlite::default_database_path() {
        Ok(path) => path
            .parent()
            .map_or_else(std::env::temp_dir, Path::to_path_buf)
            .join("demo"),
        Err(_) => std::env::temp_dir().join("backout-demo"),
    }
}

/// The demo's own SQLite store, unless `--database` chose one.
pub(super) fn global(global: &Global, dir: &Path) -> Result<Global, CommandError> {
    let mut global = global.clone();
    if global.database.is_none() {
        std::fs::create_dir_all(dir).map_err(|e| {
            CommandError::usage(format!(
                "cannot create the demo directory {}: {e}; pass --database sqlite://PATH",
                dir.display()
            ))
        })?;
        global.database = Some(format!("sqlite://{}", dir.join("store.db").display()));
    }
    Ok(global)
}

/// Serves the fake service on a free port of the same address and prepares the demo's plan,
/// tokens and release; prints how to use them.
pub(super) async fn start(
    store: &dyn Store,
    server: SocketAddr,
    dir: &Path,
    database: &str,
    now_ms: i64,
) -> Result<(), CommandError> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(server.ip(), 0))
        .await
        .map_err(|e| CommandError::internal(format!("cannot serve the demo service: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CommandError::internal(e.to_string()))?;
    let target = Arc::new(Target::default());
    // The service lives as long as the server's runtime.
    tokio::spawn(async move {
        if let Err(error) = demo::serve(listener, target).await {
            tracing::error!(%error, "the demo service stopped");
        }
    });
    let service = format!("http://{address}/demo");
    let prepared = demo::prepare(store, &service, dir, now_ms)
        .await
        .map_err(|e| CommandError::internal(format!("cannot prepare the demo: {e}")))?;
    let mut tokens = String::new();
    for (user, role, bearer) in &prepared.tokens {
        tokens.push_str(&format!("    {user:<20} {:<10} {bearer}\n", role.as_str()));
    }
    let release = if prepared.release_is_new {
        format!("started release {}", prepared.release_id)
    } else {
        format!(
            "release {} (left open by an earlier demo)",
            prepared.release_id
        )
    };
    println!(
        "\nbackout serve --demo is ready.\n\
         \n  Web UI        http://{server}/ui  (sign in with a token below)\
         \n  Demo service  {service}  (its error rate, buttons to break and heal it,\
         \n                and the notifications the plan sent)\
         \n  Plan          {plan}\
         \n  Release       {release} of demo-checkout {deployed}, watched every 2 s\
         \n\n  Tokens (new ones each start; shown only here):\n{tokens}\
         \n  Try it: break the service on the demo page (or\
         \n    curl -X POST '{service}/error-rate?value=0.2'),\
         \n  watch the release trip in the UI, approve as dana (decider), execute and confirm\
         \n  the manual step as pat (performer); vic (viewer) sees everything but cannot act.\
         \n  The CLI works too: backout --database {database} status {id}\n",
        plan = prepared.plan_path.display(),
        deployed = demo::DEPLOYED,
        id = prepared.release_id,
    );
    Ok(())
}
