//! `backout audit verify` recomputes the journal's hash chain (`backout_store::verify_store`)
//! and names the first broken link; `backout audit export` writes every event, in order, as
//! JSON lines.

use std::io::Write;

use backout_store::verify_store;

use super::runs::{json, open_store, runtime};
use crate::cli::{AuditArgs, AuditCommand, Global, LintFormat};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// Events read per query.
const PAGE: u32 = 1000;

pub fn run(args: &AuditArgs, global: &Global) -> Result<ExitCode, CommandError> {
    match &args.command {
        AuditCommand::Verify { format } => verify(*format, global),
        AuditCommand::Export { output } => export(output.as_deref(), global),
    }
}

fn verify(format: LintFormat, global: &Global) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(global, |remote| async move {
        let value = remote.get("/api/v1/audit/verify").await?;
        let held = value["ok"].as_bool().unwrap_or(false);
        match format {
            LintFormat::Json => output::out(&format!("{}\n", json(&value)?)),
            LintFormat::Human if held => {
                let head = match (
                    value["head"]["seq"].as_u64(),
                    value["head"]["hash"].as_str(),
                ) {
                    (Some(seq), Some(hash)) => format!("; head seq {seq} hash {hash}"),
                    _ => String::new(),
                };
                output::out(&format!(
                    "{} events verified: the hash chain holds{head}\n",
                    value["events"].as_u64().unwrap_or(0)
                ));
            }
            LintFormat::Human => output::error(&format!(
                "the hash chain is broken at event seq {}: {}. Events from there on cannot be \
                 trusted; `backout audit export` on the server's store shows them",
                value["broken_at"].as_u64().unwrap_or(0),
                value["reason"].as_str().unwrap_or("unknown")
            )),
        }
        Ok(if held {
            ExitCode::Ok
        } else {
            ExitCode::Internal
        })
    }) {
        return done;
    }
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let verified = verify_store(store.as_ref(), PAGE).await?;
        match (verified, format) {
            (Ok(summary), LintFormat::Json) => {
                let value = serde_json::json!({
                    "ok": true,
                    "events": summary.checked,
                    "head": summary.head.map(|h| serde_json::json!({ "seq": h.seq, "hash": h.hash })),
                });
                output::out(&format!("{}\n", json(&value)?));
                Ok(ExitCode::Ok)
            }
            (Ok(summary), LintFormat::Human) => {
                let head = summary
                    .head
                    .map(|h| format!("; head seq {} hash {}", h.seq, h.hash))
                    .unwrap_or_default();
                output::out(&format!(
                    "{} events verified: the hash chain holds{head}\n",
                    summary.checked
                ));
                Ok(ExitCode::Ok)
            }
            (Err(broken), LintFormat::Json) => {
                let value = serde_json::json!({
                    "ok": false,
                    "broken_at": broken.seq,
                    "reason": broken.kind.to_string(),
                });
                output::out(&format!("{}\n", json(&value)?));
                Ok(ExitCode::Internal)
            }
            (Err(broken), LintFormat::Human) => {
                output::error(&format!(
                    "the hash chain is broken at event seq {}: {}. Events from there on cannot be \
                     trusted; `backout audit export` shows them",
                    broken.seq, broken.kind
                ));
                Ok(ExitCode::Internal)
            }
        }
    })
}

fn export(path: Option<&std::path::Path>, global: &Global) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let mut sink: Box<dyn Write> = match path {
            Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| {
                    CommandError::usage(format!("cannot write `{}`: {e}", path.display()))
                })?,
            )),
            _ => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let write_error =
            |e: std::io::Error| CommandError::internal(format!("cannot write the export: {e}"));
        let mut after = 0;
        let mut count: u64 = 0;
        loop {
            let page = store.events(after, PAGE).await?;
            for event in &page {
                let line = serde_json::to_string(event)
                    .map_err(|e| CommandError::internal(e.to_string()))?;
                match writeln!(sink, "{line}") {
                    Ok(()) => {}
                    // `backout audit export | head` ends quietly.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(ExitCode::Ok);
                    }
                    Err(e) => return Err(write_error(e)),
                }
                count += 1;
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.seq,
                _ => break,
            }
        }
        match sink.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::Ok),
            Err(e) => return Err(write_error(e)),
        }
        if let Some(path) = path.filter(|p| p.as_os_str() != "-") {
            eprintln!("{count} events written to {}", path.display());
        }
        Ok(ExitCode::Ok)
    })
}
