//! `backout audit verify` recomputes the journal's hash chain (`backout_store::verify_store`)
//! and names the first broken link, checks the run and step records against the events
//! (`backout_core::audit::derived`) and, with `--anchor`, the journal against a signed head;
//! `backout audit anchor` prints that signed head; `backout audit export` writes every event, in
//! order, as JSON lines.

use std::io::Write;

use backout_core::audit::{self, Anchor, AuditKey};
use backout_store::{ChainHead, GENESIS_HASH, verify_store};

use crate::cli::{AuditArgs, AuditCommand, LintFormat};
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// Events read per query.
const PAGE: u32 = 1000;

pub fn run(args: &AuditArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    match &args.command {
        AuditCommand::Verify {
            format,
            anchor,
            key_file,
        } => verify(*format, anchor.as_deref(), key_file.as_deref(), ctx),
        AuditCommand::Anchor { key_file } => anchor(key_file.as_deref(), ctx),
        AuditCommand::Export { output } => export(output.as_deref(), ctx),
    }
}

/// The audit key: `--key-file`, else `BACKOUT_AUDIT_KEY`. Never from the store.
fn audit_key(key_file: Option<&std::path::Path>) -> Result<AuditKey, CommandError> {
    let bytes = match key_file {
        Some(path) => {
            use std::io::Read;
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
                .map_err(|e| {
                    CommandError::usage(format!(
                        "cannot read the key file `{}`: {e}",
                        path.display()
                    ))
                })?;
            bytes
        }
        None => std::env::var("BACKOUT_AUDIT_KEY")
            .map_err(|_| {
                CommandError::usage(
                    "no audit key: set BACKOUT_AUDIT_KEY or pass --key-file FILE (keep the key \
                     away from the store it protects, e.g. `openssl rand -hex 32 > audit.key`)",
                )
            })?
            .into_bytes(),
    };
    AuditKey::new(&bytes).map_err(CommandError::usage)
}

/// An anchor file written by `audit anchor`.
fn read_anchor(path: &std::path::Path) -> Result<Anchor, CommandError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(|e| {
            CommandError::usage(format!("cannot read the anchor `{}`: {e}", path.display()))
        })?;
    serde_json::from_str(text.trim()).map_err(|e| {
        CommandError::usage(format!(
            "`{}` is not an anchor written by `backout audit anchor`: {e}",
            path.display()
        ))
    })
}

/// `backout audit anchor`: the verified head, signed.
fn anchor(key_file: Option<&std::path::Path>, ctx: &Context) -> Result<ExitCode, CommandError> {
    let key = audit_key(key_file)?;
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let summary = match verify_store(store.as_ref(), PAGE).await? {
            Ok(summary) => summary,
            Err(broken) => {
                output::error(&format!(
                    "the hash chain is broken at event seq {}: {}; a broken journal is not \
                     anchored",
                    broken.seq, broken.kind
                ));
                return Ok(ExitCode::Internal);
            }
        };
        let head = summary.head.unwrap_or(ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        });
        let anchor = Anchor::sign(&head, &key, backout_core::time::utc(ctx.now()));
        output::out(&format!(
            "{}\n",
            output::json(
                &serde_json::to_value(&anchor)
                    .map_err(|e| CommandError::internal(e.to_string()))?
            )?
        ));
        Ok(ExitCode::Ok)
    })
}

fn verify(
    format: LintFormat,
    anchor_file: Option<&std::path::Path>,
    key_file: Option<&std::path::Path>,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    let anchored = match anchor_file {
        Some(path) => Some((read_anchor(path)?, audit_key(key_file)?)),
        None => None,
    };
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let value = remote.get("/api/v1/audit/verify").await?;
        // An `audit/verify` answer has other fields when the chain holds than when it is broken
        // (`ok` says which); the ones the case needs must be there, named when not.
        let verify: backout_api::AuditVerify = crate::remote::convert::parse("audit", &value)?;
        let needed = |field: &str| crate::remote::convert::missing("audit", field);
        let held = verify.ok;
        match format {
            LintFormat::Json => output::out(&format!("{}\n", output::json(&value)?)),
            LintFormat::Human if held => {
                let events = verify.events.ok_or_else(|| needed("events"))?;
                // `head: null` (an empty journal) decodes as no head at all: serde cannot tell
                // the two apart, and both print nothing.
                let head = match verify.head.flatten() {
                    Some(head) => format!("; head seq {} hash {}", head.seq, head.hash),
                    None => String::new(),
                };
                output::out(&format!(
                    "{events} events verified: the hash chain holds{head}\n"
                ));
            }
            LintFormat::Human => output::error(&format!(
                "the hash chain is broken at event seq {}: {}. Events from there on cannot be \
                 trusted; `backout audit export` on the server's store shows them",
                verify.broken_at.ok_or_else(|| needed("broken_at"))?,
                verify.reason.as_deref().ok_or_else(|| needed("reason"))?
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
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let verified = verify_store(store.as_ref(), PAGE).await?;
        if let Ok(summary) = &verified {
            return beyond_the_chain(store.as_ref(), summary, anchored.as_ref(), format).await;
        }
        match (verified, format) {
            (Ok(_), _) => unreachable!("handled above"),
            (Err(broken), LintFormat::Json) => {
                let value = serde_json::json!({
                    "ok": false,
                    "broken_at": broken.seq,
                    "reason": broken.kind.to_string(),
                });
                output::out(&format!("{}\n", output::json(&value)?));
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

/// The chain holds: check the records against the events and the journal against the anchor.
async fn beyond_the_chain(
    store: &dyn backout_store::Store,
    summary: &backout_store::ChainSummary,
    anchored: Option<&(Anchor, AuditKey)>,
    format: LintFormat,
) -> Result<ExitCode, CommandError> {
    let mismatches = audit::derived(store).await?;
    let anchor_result = match anchored {
        Some((anchor, key)) => Some((
            anchor,
            anchor.check(key, store, summary.head.as_ref()).await?,
        )),
        None => None,
    };
    let ok = mismatches.is_empty() && anchor_result.as_ref().is_none_or(|(_, r)| r.is_ok());
    match format {
        LintFormat::Json => {
            let value = serde_json::json!({
                "ok": ok,
                "events": summary.checked,
                "head": summary.head.as_ref().map(|h| serde_json::json!({ "seq": h.seq, "hash": h.hash })),
                "records": mismatches,
                "anchor": anchor_result.as_ref().map(|(anchor, result)| serde_json::json!({
                    "seq": anchor.seq,
                    "hash": anchor.hash,
                    "at": anchor.at,
                    "ok": result.is_ok(),
                    "reason": result.as_ref().err().map(ToString::to_string),
                })),
            });
            output::out(&format!("{}\n", output::json(&value)?));
        }
        LintFormat::Human => {
            let head = summary
                .head
                .as_ref()
                .map(|h| format!("; head seq {} hash {}", h.seq, h.hash))
                .unwrap_or_default();
            output::out(&format!(
                "{} events verified: the hash chain holds{head}\n",
                summary.checked
            ));
            if mismatches.is_empty() {
                output::out("run and step records agree with the journal\n");
            }
            for mismatch in &mismatches {
                output::error(&format!(
                    "{mismatch}: the record was changed outside backout, or its event removed"
                ));
            }
            match &anchor_result {
                Some((anchor, Ok(()))) => output::out(&format!(
                    "the anchor of seq {} (made {}) holds: nothing up to it was removed or rewritten\n",
                    anchor.seq, anchor.at
                )),
                Some((_, Err(error))) => output::error(&format!("anchor: {error}")),
                None => output::out(
                    "no anchor given: a tail removed or rewritten with recomputed hashes would \
                     not show (see `backout audit anchor`)\n",
                ),
            }
        }
    }
    Ok(if ok { ExitCode::Ok } else { ExitCode::Internal })
}

fn export(path: Option<&std::path::Path>, ctx: &Context) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
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
