//! Reading and loading plan files for the commands: a regular file or standard input, capped
//! in size, validated by backout-model; and the checks of `--checkpoint` names every command
//! that takes them shares. Nothing here prints: errors come back for the command to report.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use backout_model::Plan;

use crate::exit_codes::CommandError;

/// Plans larger than this are refused: no real plan comes close, and a runaway generated file
/// should fail fast with a clear message rather than exhaust memory. The read itself stops here
/// (a file's reported size cannot be trusted: `/proc` files say 0, devices say nothing).
pub const MAX_PLAN_BYTES: u64 = 8 * 1024 * 1024;

/// Reads a plan: a regular file, or standard input for `-`; at most [`MAX_PLAN_BYTES`], with an
/// error that says what to do. Anything else (a FIFO, a device, a socket) is refused at once,
/// before it is opened for reading, because reading it could block forever or never end.
pub fn read_plan(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let bytes = if path.as_os_str() == "-" {
        read_capped(std::io::stdin().lock(), "standard input")?
    } else {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("cannot read `{shown}`: no such file (check the path, or create one with `backout init`)"),
            std::io::ErrorKind::PermissionDenied => format!("cannot read `{shown}`: permission denied"),
            _ => format!("cannot read `{shown}`: {e}"),
        })?;
        if meta.is_dir() {
            return Err(format!(
                "`{shown}` is a directory; give the plan file inside it (e.g. `{shown}/backout.yaml`)"
            ));
        }
        not_regular(path, &meta)?;
        // Non-blocking open: were the file replaced by a FIFO after the check above, opening
        // it must not wait for a writer. The handle's own type is checked again.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nonblocking())
            .open(path)
            .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
        not_regular(path, &meta)?;
        read_capped(file, &format!("`{shown}`"))?
    };
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{shown}` is not UTF-8 text (invalid byte at offset {}); save the plan as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

fn nonblocking() -> i32 {
    // O_NONBLOCK; the conversion cannot fail (the flag is a small positive bit).
    i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0)
}

/// Refuses whatever is not a regular file, naming what it is.
fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "`{}` is {what}; a plan is read from a regular file, or from standard input with `-` \
         (e.g. `cat plan.yaml | backout lint -`)",
        path.display()
    ))
}

/// Reads at most [`MAX_PLAN_BYTES`] (the reader gives one byte more to tell "too large").
fn read_capped(reader: impl std::io::Read, shown: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        return Err(format!(
            "{shown} is larger than {} MB; plans larger than that are refused (is this really a backout plan?)",
            MAX_PLAN_BYTES / 1024 / 1024
        ));
    }
    Ok(bytes)
}

/// A plan file's text, validated plan and hash, or a usage error.
pub fn load_plan(path: &Path) -> Result<(String, Plan, String), CommandError> {
    let source = read_plan(path).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    let errors = linted.errors();
    match (linted.plan, linted.hash) {
        (Some(plan), Some(hash)) => Ok((source, plan, hash)),
        _ => Err(CommandError::usage(format!(
            "`{}` has {errors} error(s); run `backout lint {}` and fix them first",
            path.display(),
            path.display()
        ))),
    }
}

/// Refuses `--checkpoint` names the plan does not declare, naming the ones it does.
pub fn declared_checkpoints(plan: &Plan, given: &[String]) -> Result<(), CommandError> {
    match given.iter().find(|c| !plan.release.checkpoints.contains(c)) {
        Some(checkpoint) => Err(CommandError::usage(format!(
            "the plan declares no checkpoint `{checkpoint}` (it has: {})",
            if plan.release.checkpoints.is_empty() {
                "none".into()
            } else {
                plan.release.checkpoints.join(", ")
            }
        ))),
        None => Ok(()),
    }
}
