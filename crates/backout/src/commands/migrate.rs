//! `backout migrate SOURCE TARGET`: copies a SQLite store into an empty PostgreSQL one, the
//! move from a single machine to shared `backout serve` replicas. The source is read through the
//! `Store` trait and written verbatim by `PostgresStore::import_from` in one transaction, so
//! events keep their seq and hashes and the audit chain continues.
//!
//! It refuses (exit 2) a source that does not exist or whose chain does not verify (copying would
//! give the broken history a fresh start somewhere else), and a target that already holds
//! records. Afterwards it verifies the target's chain and compares row counts with the source;
//! any difference is an internal error (exit 1). It never changes the source.

use std::sync::Arc;

use backout_postgres::{ImportError, ImportSummary, PostgresStore};
use backout_sqlite::SqliteStore;
use backout_store::{ChainSummary, EvidenceFilter, Store, verify_store};

use crate::cli::MigrateArgs;
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// Events read per query while verifying.
const PAGE: u32 = 1000;

pub fn run(args: &MigrateArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if !backout_postgres::is_postgres_url(&args.target) {
        return Err(CommandError::usage(format!(
            "the target must be a PostgreSQL URL (`postgres://USER@HOST:PORT/DATABASE`), not \
             `{}`",
            args.target
        )));
    }
    let source_url = sqlite_url(&args.source)?;
    ctx.runtime()?.block_on(async {
        let source = SqliteStore::open(&source_url).await.map_err(|e| {
            CommandError::usage(format!(
                "cannot open the source store `{source_url}`: {}",
                causes(&e)
            ))
        })?;
        let source: Arc<dyn Store> = Arc::new(source);
        let source_chain = match verify_store(source.as_ref(), PAGE).await? {
            Ok(summary) => summary,
            Err(broken) => {
                return Err(CommandError::usage(format!(
                    "the source's hash chain is broken at event seq {}: {}; nothing was copied \
                     (`backout --database {source_url} audit verify` shows the same)",
                    broken.seq, broken.kind
                )));
            }
        };
        let target = PostgresStore::open(&args.target)
            .await
            .map_err(|e| CommandError::usage(format!("cannot open the target: {}", causes(&e))))?;
        let copied = target
            .import_from(source.as_ref())
            .await
            .map_err(|error| match error {
                ImportError::NotEmpty { .. } => CommandError::usage(format!(
                    "refusing to migrate into {}: {error}",
                    target.location()
                )),
                ImportError::Store(e) => CommandError::internal(format!(
                    "copying into {} failed, nothing was written: {}",
                    target.location(),
                    causes(&e)
                )),
            })?;
        let target_chain = match verify_store(&target, PAGE).await? {
            Ok(summary) => summary,
            Err(broken) => {
                return Err(CommandError::internal(format!(
                    "the copied chain does not verify at event seq {}: {} (a bug: please report \
                     it; the source is unchanged)",
                    broken.seq, broken.kind
                )));
            }
        };
        compare(source.as_ref(), &target, &source_chain, &target_chain).await?;
        print_summary(&source_url, target.location(), &copied, &target_chain);
        target.close().await;
        Ok(ExitCode::Ok)
    })
}

/// The SQLite URL of `source` (a `sqlite://` URL or a plain path), refusing one that names no
/// existing file: opening would create an empty store and "copy" nothing.
fn sqlite_url(source: &str) -> Result<String, CommandError> {
    if backout_postgres::is_postgres_url(source) {
        return Err(CommandError::usage(format!(
            "the source must be a SQLite store (`sqlite://PATH`), not `{source}`: migrate copies \
             SQLite into PostgreSQL"
        )));
    }
    let url = if source.starts_with("sqlite:") {
        source.to_owned()
    } else {
        format!("sqlite://{source}")
    };
    let Some(path) = backout_sqlite::database_file(&url) else {
        return Err(CommandError::usage(format!(
            "`{source}` names no SQLite database file (expected `sqlite://PATH`)"
        )));
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(url),
        Ok(_) => Err(CommandError::usage(format!(
            "the source `{}` is not a file; give the SQLite database file",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CommandError::usage(format!(
            "the source store `{}` does not exist: give the path of an existing SQLite store \
             (by default ~/.local/share/backout/backout.db)",
            path.display()
        ))),
        Err(e) => Err(CommandError::usage(format!(
            "cannot read the source `{}`: {e}",
            path.display()
        ))),
    }
}

/// Checks that the target holds what the source holds: the same chain head and the same number
/// of rows in every table.
async fn compare(
    source: &dyn Store,
    target: &dyn Store,
    source_chain: &ChainSummary,
    target_chain: &ChainSummary,
) -> Result<(), CommandError> {
    let mut differences = Vec::new();
    if source_chain.checked != target_chain.checked {
        differences.push(format!(
            "events: {} in the source, {} in the target",
            source_chain.checked, target_chain.checked
        ));
    }
    if source_chain.head != target_chain.head {
        differences.push("the chain heads differ".to_owned());
    }
    let (a, b) = (counts(source).await?, counts(target).await?);
    for ((name, left), (_, right)) in a.iter().zip(b.iter()) {
        if left != right {
            differences.push(format!(
                "{name}: {left} in the source, {right} in the target"
            ));
        }
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(CommandError::internal(format!(
        "the copy differs from the source ({}); the source is unchanged",
        differences.join("; ")
    )))
}

/// Rows per table, as the `Store` trait lists them.
async fn counts(store: &dyn Store) -> Result<Vec<(&'static str, usize)>, CommandError> {
    let runs = store.list_runs(u32::MAX).await?;
    let mut steps = 0;
    for run in &runs {
        steps += store.list_steps(&run.id).await?.len();
    }
    let releases = store.list_releases(u32::MAX).await?;
    let checkpoints = releases.iter().map(|r| r.checkpoints.len()).sum();
    let deliveries = store.list_deliveries(None, u32::MAX).await?;
    let attempts = deliveries.iter().map(|d| d.attempts.len()).sum();
    let evidence = store
        .list_evidence(&EvidenceFilter::default(), u32::MAX)
        .await?;
    let tokens = store.list_tokens().await?;
    Ok(vec![
        ("runs", runs.len()),
        ("step states", steps),
        ("releases", releases.len()),
        ("checkpoints", checkpoints),
        ("deliveries", deliveries.len()),
        ("delivery attempts", attempts),
        ("evidence", evidence.len()),
        ("tokens", tokens.len()),
    ])
}

fn print_summary(source: &str, target: &str, copied: &ImportSummary, chain: &ChainSummary) {
    let rows = [
        ("runs", copied.runs),
        ("step states", copied.steps),
        ("events", copied.events),
        ("releases", copied.releases),
        ("checkpoints", copied.checkpoints),
        ("deliveries", copied.deliveries),
        ("delivery attempts", copied.delivery_attempts),
        ("evidence", copied.evidence),
        ("tokens (digests)", copied.tokens),
    ];
    let mut text = format!("copied {source} into {target} in {} ms\n", copied.took_ms);
    for (name, count) in rows {
        text.push_str(&format!("  {name:<18} {count:>8}\n"));
    }
    let head = chain
        .head
        .as_ref()
        .map(|h| format!("; head seq {} hash {}", h.seq, h.hash))
        .unwrap_or_default();
    text.push_str(&format!(
        "{} events verified on the target: the hash chain holds{head}\n",
        chain.checked
    ));
    output::out(&text);
}

/// An error and its causes, "a: b: c".
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
