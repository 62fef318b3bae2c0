//! One module per command; `run` dispatches. Commands return the exit code of a normal outcome
//! (a lint with errors is a normal outcome: exit 2) or a `CommandError` for a failure.

mod audit;
mod bars;
mod criteria;
mod decisions;
mod deliveries;
mod durations;
mod evidence;
mod import;
mod init;
mod lint;
mod migrate;
mod notifying;
mod progress;
mod recovery;
mod rehearsals;
mod releases;
mod render;
mod runs;
mod serve;
mod shell;
mod tokens;

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::exit_codes::{CommandError, ExitCode};

pub fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    match cli.command {
        Command::Init(args) => init::run(&args, &cli.global),
        Command::Lint(args) => lint::run(&args, &cli.global),
        Command::Render(args) => render::run(&args, &cli.global),
        Command::Start(args) => releases::start(&args, &cli.global),
        Command::Accept(args) => releases::accept(&args, &cli.global),
        Command::Checkpoint(args) => releases::checkpoint(&args, &cli.global),
        Command::Check(args) => releases::check(&args, &cli.global),
        Command::Watch(args) => releases::watch(&args, &cli.global),
        Command::Request(args) => releases::request(&args, &cli.global),
        Command::Decide(args) => decisions::decide(&args, &cli.global),
        Command::Execute(args) => decisions::execute(&args, &cli.global),
        Command::Run(args) => runs::run(&args, &cli.global),
        Command::Rehearse(args) => rehearsals::rehearse(&args, &cli.global),
        Command::Evidence(args) => evidence::run(&args, &cli.global),
        Command::Resume(args) => runs::resume(&args, &cli.global),
        Command::Status(args) => runs::status(&args, &cli.global),
        Command::Confirm(args) => runs::confirm(&args, &cli.global),
        Command::Resolve(args) => runs::resolve(&args, &cli.global),
        Command::Abort(args) => runs::abort(&args, &cli.global),
        Command::Retry(args) => recovery::retry(&args, &cli.global),
        Command::Skip(args) => recovery::skip(&args, &cli.global),
        Command::Report(args) => runs::report(&args, &cli.global),
        Command::Deliveries(args) => {
            deliveries::deliveries(args.release.as_deref(), args.send, args.format, &cli.global)
        }
        Command::Serve(args) => serve::serve(&args, &cli.global),
        Command::Token(args) => tokens::run(&args, &cli.global),
        Command::Audit(args) => audit::run(&args, &cli.global),
        Command::Migrate(args) => migrate::run(&args, &cli.global),
        Command::Criteria(args) => criteria::run(&args, &cli.global),
        Command::Import(args) => import::run(&args),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man => shell::man(),
        Command::Schema => {
            let schema = backout_model::schema::json_schema();
            let text = serde_json::to_string_pretty(&schema)
                .map_err(|e| CommandError::internal(e.to_string()))?;
            crate::output::out(&format!("{text}\n"));
            Ok(ExitCode::Ok)
        }
    }
}

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

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

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
