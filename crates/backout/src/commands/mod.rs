//! One module per command; `run` builds the [`Context`] once from the global options and
//! dispatches. Commands return the exit code of a normal outcome (a lint with errors is a normal
//! outcome: exit 2) or a `CommandError` for a failure.
//!
//! Command modules depend on `context` and `shared/` only, never on one another; where one
//! command line reaches what another command shows (`status rel-…`, `report rel-…`,
//! `report --durations`), this dispatcher picks the command.

mod audit;
mod context;
mod criteria;
mod decisions;
mod deliveries;
mod durations;
mod evidence;
mod gameday;
mod import;
mod init;
mod lint;
mod migrate;
mod plans_registry;
mod recovery;
mod rehearsals;
mod releases;
mod render;
mod runs;
mod serve;
mod shared;
mod shell;
mod tokens;

use context::Context;

use crate::cli::{Cli, Command, LintFormat, ReportArgs, ReportFormat};
use crate::exit_codes::{CommandError, ExitCode};

pub fn run(cli: Cli) -> Result<ExitCode, CommandError> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Init(args) => init::run(&args, &ctx),
        Command::Lint(args) => lint::run(&args, &ctx),
        Command::Render(args) => render::run(&args, &ctx),
        Command::Start(args) => releases::start(&args, &ctx),
        Command::Accept(args) => releases::accept(&args, &ctx),
        Command::Checkpoint(args) => releases::checkpoint(&args, &ctx),
        Command::Check(args) => releases::check(&args, &ctx),
        Command::Watch(args) => releases::watch(&args, &ctx),
        Command::Request(args) => releases::request(&args, &ctx),
        Command::Decide(args) => decisions::decide(&args, &ctx),
        Command::Execute(args) => decisions::execute(&args, &ctx),
        Command::Run(args) => runs::run(&args, &ctx),
        Command::Rehearse(args) => rehearsals::rehearse(&args, &ctx),
        Command::Evidence(args) => evidence::run(&args, &ctx),
        Command::Resume(args) => runs::resume(&args, &ctx),
        Command::Status(args) => match args.run.as_deref().filter(|id| id.starts_with("rel-")) {
            Some(id) => releases::status(id, args.format, &ctx),
            None => runs::status(&args, &ctx),
        },
        Command::Confirm(args) => runs::confirm(&args, &ctx),
        Command::Resolve(args) => runs::resolve(&args, &ctx),
        Command::Abort(args) => runs::abort(&args, &ctx),
        Command::Retry(args) => recovery::retry(&args, &ctx),
        Command::Skip(args) => recovery::skip(&args, &ctx),
        Command::Report(args) if args.drills => gameday::trend(&args, &ctx),
        Command::Report(args) => report(&args, &ctx),
        Command::Deliveries(args) => {
            deliveries::deliveries(args.release.as_deref(), args.send, args.format, &ctx)
        }
        Command::Serve(args) => serve::serve(&args, &ctx),
        Command::Token(args) => tokens::run(&args, &ctx),
        Command::Audit(args) => audit::run(&args, &ctx),
        Command::Migrate(args) => migrate::run(&args, &ctx),
        Command::Criteria(args) => criteria::run(&args, &ctx),
        Command::Import(args) => import::run(&args),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man => shell::man(),
        Command::Gameday(args) => gameday::gameday(&args, &ctx),
        Command::Plans(args) => plans_registry::run(&args, &ctx),
        Command::Schema => {
            let schema = backout_model::schema::json_schema();
            let text = serde_json::to_string_pretty(&schema)
                .map_err(|e| CommandError::internal(e.to_string()))?;
            crate::output::out(&format!("{text}\n"));
            Ok(ExitCode::Ok)
        }
    }
}

/// `report`: a run's report, a release's story (`rel-…`) or a plan's durations
/// (`--durations`), each from the command that owns it.
fn report(args: &ReportArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let format = match args.format {
        ReportFormat::Human => LintFormat::Human,
        ReportFormat::Json => LintFormat::Json,
        ReportFormat::Html if args.durations || args.run.starts_with("rel-") => {
            return Err(CommandError::usage(
                "`--format html` draws one run: pass a run id (`backout status` lists them), \
                 or use `--format human|json` for a release or `--durations`",
            ));
        }
        ReportFormat::Html => LintFormat::Human,
    };
    if args.durations {
        return durations::report(std::path::Path::new(&args.run), format, ctx);
    }
    if args.run.starts_with("rel-") {
        return releases::report(&args.run, format, ctx);
    }
    runs::report(args, format, ctx)
}
