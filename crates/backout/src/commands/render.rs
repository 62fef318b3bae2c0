//! `backout render PLAN --format md|html`: the document for production support. An invalid plan
//! renders nothing: a document that looks complete but is wrong is worse than none. Q9 ("Tested")
//! and the measured reversion time come from the rehearsal evidence when a store exists
//! (`--offline` skips it).

use backout_model::{Severity, lint};

use crate::cli::{DocFormat, RenderArgs};
use crate::commands::context::Context;
use crate::commands::shared::evidence;
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn run(args: &RenderArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    let file = args.plan.display().to_string();
    let linted = lint(&source);
    let color = crate::output::color_stderr();
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
    let hash = linted.hash.clone().unwrap_or_default();
    let mut info = backout_model::render::DocumentInfo::new(file.clone(), hash.clone());
    if !args.offline {
        // Q9 and Q7 from the evidence, when a store exists (rendering never creates one).
        let (evidence, gamedays, failed) = ctx.runtime()?.block_on(async {
            match ctx.open_existing().await? {
                Some(store) => {
                    let service = &plan.release.service;
                    let evidence = evidence::of_service(store.as_ref(), service).await?;
                    let gamedays = backout_core::drill::reports_of(store.as_ref(), service).await?;
                    let newest = evidence
                        .iter()
                        .filter(|e| e.plan_hash == hash)
                        .map(|e| e.finished_at_ms)
                        .max();
                    let failed =
                        backout_core::drill::rehearse::last_failure(store.as_ref(), &hash, newest)
                            .await?;
                    Ok::<_, CommandError>((evidence, gamedays, failed))
                }
                None => Ok((Vec::new(), Vec::new(), None)),
            }
        })?;
        info.gameday = gamedays.last().map(backout_core::drill::q9_line);
        info.rehearsal_failed = failed;
        (info.rehearsal, info.measured) =
            backout_core::rehearsal::for_document(plan, &hash, &evidence, ctx.now());
    }
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
