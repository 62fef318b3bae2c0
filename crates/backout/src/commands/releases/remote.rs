//! The release commands against a server (`BACKOUT_SERVER`): each calls the API as the token's
//! user, turns the JSON back into the records the local printers take, and prints and exits
//! exactly as the local command does. `execute` follows the run the server carries out, step by
//! step, through the same progress printer as a local run.

use backout_api as api;
use serde_json::Value;

use super::{announce_checkpoint, announce_request, announce_start, describe, exit_for, view};
use crate::cli::StartArgs;
use crate::cli::{CheckArgs, CheckpointArgs, LintFormat, RequestArgs};
use crate::commands::shared::evidence;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use crate::remote::{Remote, body_of, convert, release_path};

/// The token's user, for the messages that name who acted.
async fn who(remote: &Remote) -> Result<String, CommandError> {
    let me: api::Me = remote.get_as("me", "/api/v1/me").await?;
    Ok(me.user)
}

/// `start PLAN`: the plan's text goes to the server, which lints it and opens the release.
pub(in crate::commands) async fn start(
    remote: Remote,
    args: &StartArgs,
    source: &str,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    if args.require_tested {
        // Q9 from the server's evidence, judged by the same rule as locally.
        let plan = backout_model::lint(source).plan.ok_or_else(|| {
            CommandError::usage(format!("`{}` does not lint", args.plan.display()))
        })?;
        let evidence = crate::remote::evidence_of(&remote, &plan.release.service).await?;
        if let Some(problem) = evidence::untested(source, &plan, &evidence, now_ms) {
            return Err(CommandError::refused(format!(
                "refusing to start with --require-tested: {}; {}",
                problem.message,
                problem.help.unwrap_or_default()
            )));
        }
    }
    let body = body_of(&api::StartRelease {
        plan: source.to_string(),
        version: args.version.clone(),
        rollback_to: args.rollback_to.clone(),
        at: args.at.clone(),
        require_accepted: args.require_accepted,
    })?;
    let answer = remote
        .try_call(reqwest::Method::POST, "/api/v1/releases", Some(body))
        .await?;
    let value = match answer {
        Ok(value) => value,
        Err(failure) if failure.status == 422 => {
            let file = args.plan.display().to_string();
            print_diagnostics(&file, source, failure.details.as_ref())?;
            return Err(CommandError::usage(format!(
                "the server refused `{file}`: {}",
                failure.message
            )));
        }
        Err(failure) => return Err(remote.command_error(failure)),
    };
    announce_start(&convert::release(&value)?, args.format, now_ms);
    Ok(ExitCode::Ok)
}

/// The errors of a plan the server refused, as `backout lint` prints them (`file:line:col`,
/// the line, a caret), on standard error: standard output is for the release id. When this
/// binary's lint finds none, the server's diagnostics (`details` of its `invalid_plan` answer,
/// [`api::LocatedDiagnostic`]s) are printed instead; details that are not those are an error.
fn print_diagnostics(
    file: &str,
    source: &str,
    details: Option<&Value>,
) -> Result<(), CommandError> {
    let color = output::color_stderr();
    let linted = backout_model::lint(source);
    let errors: Vec<_> = linted.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        for d in errors {
            eprintln!("{}", output::render_diagnostic(d, file, source, color));
        }
        return Ok(());
    }
    // This binary's lint found nothing: the server's version judged otherwise; its words.
    let diagnostics: Vec<api::LocatedDiagnostic> = match details {
        Some(details) => convert::parse("plan's diagnostics", details)?,
        None => Vec::new(),
    };
    for d in diagnostics {
        eprintln!(
            "{file}:{}:{}: {}[{}]: {}",
            d.line,
            d.column,
            d.severity.as_str(),
            d.code,
            d.message
        );
    }
    Ok(())
}

pub(in crate::commands) async fn request(
    remote: Remote,
    args: &RequestArgs,
) -> Result<ExitCode, CommandError> {
    let status: api::ReleaseStatus = remote
        .post_as(
            "release status",
            &release_path(&args.release, "/request"),
            &api::RollbackRequest {
                reason: args.reason.clone(),
            },
        )
        .await?;
    let release = status.release.into_record(String::new());
    announce_request(&release, &who(&remote).await?, &args.reason, args.format);
    Ok(ExitCode::Ok)
}

pub(in crate::commands) async fn checkpoint(
    remote: Remote,
    args: &CheckpointArgs,
) -> Result<ExitCode, CommandError> {
    let status: api::ReleaseStatus = remote
        .post_as(
            "release status",
            &release_path(&args.release, "/checkpoints"),
            &api::CheckpointRequest {
                name: args.name.clone(),
            },
        )
        .await?;
    let release = status.release.into_record(String::new());
    announce_checkpoint(&release, &args.name, args.format);
    Ok(ExitCode::Ok)
}

/// `check REL`: the server measures every criterion once; exit 3, 4 or 5 as locally.
pub(in crate::commands) async fn check(
    remote: Remote,
    args: &CheckArgs,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    let value = remote
        .call(
            reqwest::Method::POST,
            &release_path(&args.release, "/check"),
            None,
        )
        .await?;
    let report = convert::report(&value)?
        .ok_or_else(|| CommandError::internal("the server's check report has no verdict"))?;
    if args.format == LintFormat::Json {
        output::out(&format!("{}\n", output::json(&value)?));
    } else {
        output::out(&view::table(&report, now_ms, ""));
    }
    Ok(exit_for(report.verdict))
}

/// `status REL`: window, checkpoints, verdict and decision as the server's journal has them.
pub(in crate::commands) async fn status(
    remote: Remote,
    release_id: &str,
    format: LintFormat,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    let value = remote.get(&release_path(release_id, "")).await?;
    // Decoded before anything is printed: an answer that is not a status is an error, in JSON
    // too.
    let status = convert::status(&value)?;
    if format == LintFormat::Json {
        let mut shown = value.clone();
        if let Some(map) = shown.as_object_mut() {
            // Additions for printing; the JSON stays what the local command prints.
            map.remove("plan_checkpoints");
            map.remove("requested");
        }
        output::out(&format!("{}\n", output::json(&shown)?));
        return Ok(ExitCode::Ok);
    }
    let release = status.release.clone().into_record(String::new());
    output::out(&format!("{}  {}\n", release.id, status.outcome.as_str()));
    let (declared, no_return) = convert::plan_checkpoints(&status);
    let decision = status.decision.clone();
    let report = convert::status_report(status);
    output::out(&describe(
        &release,
        &declared,
        no_return.as_deref(),
        report.as_ref(),
        decision.as_deref(),
        now_ms,
    ));
    Ok(ExitCode::Ok)
}
