//! `backout render PLAN --format md|html`: the document for production support. An invalid plan
//! renders nothing: a document that looks complete but is wrong is worse than none.

use backout_model::{Severity, lint};

use crate::cli::{DocFormat, RenderArgs};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn run(args: &RenderArgs) -> Result<ExitCode, CommandError> {
    let source = super::read_plan(&args.plan).map_err(CommandError::usage)?;
    let file = args.plan.display().to_string();
    let linted = lint(&source);
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let Some(plan) = &linted.plan else {
        for d in linted
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
        {
            eprint!("{}", output::render_diagnostic(d, &file, &source, color));
        }
        return Err(CommandError::usage(format!(
            "`{file}` has {} error(s); fix them (see `backout lint {file}`) before rendering",
            linted.errors()
        )));
    };
    if linted.warnings() > 0 {
        output::warn(&format!(
            "`{file}` has {} warning(s); `backout lint {file}` shows them",
            linted.warnings()
        ));
    }
    let info = backout_model::render::DocumentInfo {
        source_name: file.clone(),
        content_hash: linted.hash.clone().unwrap_or_default(),
        rehearsal: None,
    };
    let document = match args.format {
        DocFormat::Md => backout_model::render::markdown(plan, &info),
        DocFormat::Html => backout_model::render::html(plan, &info),
    };
    match &args.output {
        Some(path) => std::fs::write(path, document)
            .map_err(|e| CommandError::usage(format!("cannot write `{}`: {e}", path.display())))?,
        None => output::out(&document),
    }
    Ok(ExitCode::Ok)
}
