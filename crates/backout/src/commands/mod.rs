//! One module per command; `run` dispatches. Commands return the exit code of a normal outcome
//! (a lint with errors is a normal outcome: exit 2) or a `CommandError` for a failure.

mod audit;
mod decisions;
mod deliveries;
mod durations;
mod evidence;
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
        Command::Schema => {
            let schema = backout_model::schema::json_schema();
            let text = serde_json::to_string_pretty(&schema)
                .map_err(|e| CommandError::internal(e.to_string()))?;
            crate::output::out(&format!("{text}\n"));
            Ok(ExitCode::Ok)
        }
    }
}

/// Plans larger than this are refused before parsing: no real plan comes close, and a runaway
/// generated file should fail fast with a clear message rather than exhaust memory.
pub const MAX_PLAN_BYTES: u64 = 8 * 1024 * 1024;

/// Reads a plan file, with an error that says what to do.
pub fn read_plan(path: &Path) -> Result<String, String> {
    let shown = path.display();
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
    if meta.len() > MAX_PLAN_BYTES {
        return Err(format!(
            "`{shown}` is {:.1} MB; plans larger than {} MB are refused (is this really a backout plan?)",
            meta.len() as f64 / 1e6,
            MAX_PLAN_BYTES / 1024 / 1024
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "`{shown}` is not UTF-8 text (invalid byte at offset {}); save the plan as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}
