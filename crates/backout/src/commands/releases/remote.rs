//! The release commands against a server (`BACKOUT_SERVER`): each calls the API as the token's
//! user, turns the JSON back into the records the local printers take, and prints and exits
//! exactly as the local command does. `execute` follows the run the server carries out, step by
//! step, through the same progress printer as a local run.

use serde_json::{Value, json};

use super::{announce_checkpoint, announce_request, announce_start, describe, exit_for, view};
use crate::cli::StartArgs;
use crate::cli::{CheckArgs, CheckpointArgs, LintFormat, RequestArgs};
use crate::commands::shared::evidence;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use crate::remote::{Remote, convert, segment};

fn release_path(id: &str, rest: &str) -> String {
    format!("/api/v1/releases/{}{rest}", segment(id))
}

/// The token's user, for the messages that name who acted.
async fn who(remote: &Remote) -> Result<String, CommandError> {
    let me = remote.get("/api/v1/me").await?;
    Ok(me["user"]
        .as_str()
        .unwrap_or("the token's user")
        .to_string())
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
        let path = format!(
            "/api/v1/evidence?service={}&limit=500",
            segment(&plan.release.service)
        );
        let listed = remote.get(&path).await?;
        let evidence: Vec<backout_store::Evidence> =
            serde_json::from_value(listed["evidence"].clone()).map_err(|e| {
                CommandError::internal(format!("the server's evidence does not read: {e}"))
            })?;
        if let Some(problem) = evidence::untested(source, &plan, &evidence, now_ms) {
            return Err(CommandError::refused(format!(
                "refusing to start with --require-tested: {}; {}",
                problem.message,
                problem.help.unwrap_or_default()
            )));
        }
    }
    let body = json!({
        "plan": source,
        "version": args.version,
        "rollback_to": args.rollback_to,
        "at": args.at,
        "require_accepted": args.require_accepted,
    });
    let answer = remote
        .try_call(reqwest::Method::POST, "/api/v1/releases", Some(body))
        .await?;
    let value = match answer {
        Ok(value) => value,
        Err(failure) if failure.status == 422 => {
            let file = args.plan.display().to_string();
            print_diagnostics(&file, source, failure.details.as_ref());
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
/// the line, a caret), on standard error: standard output is for the release id.
fn print_diagnostics(file: &str, source: &str, details: Option<&Value>) {
    let color = output::color_stderr();
    let linted = backout_model::lint(source);
    let errors: Vec<_> = linted.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        for d in errors {
            eprintln!("{}", output::render_diagnostic(d, file, source, color));
        }
        return;
    }
    // This binary's lint found nothing: the server's version judged otherwise; its words.
    for d in details.and_then(Value::as_array).into_iter().flatten() {
        eprintln!(
            "{file}:{}:{}: {}[{}]: {}",
            d["line"].as_u64().unwrap_or(1),
            d["column"].as_u64().unwrap_or(1),
            d["severity"].as_str().unwrap_or("error"),
            d["code"].as_str().unwrap_or("?"),
            d["message"].as_str().unwrap_or_default()
        );
    }
}

pub(in crate::commands) async fn request(
    remote: Remote,
    args: &RequestArgs,
) -> Result<ExitCode, CommandError> {
    let value = remote
        .post(
            &release_path(&args.release, "/request"),
            json!({ "reason": args.reason }),
        )
        .await?;
    let release = convert::release(&value)?;
    announce_request(&release, &who(&remote).await?, &args.reason, args.format);
    Ok(ExitCode::Ok)
}

pub(in crate::commands) async fn checkpoint(
    remote: Remote,
    args: &CheckpointArgs,
) -> Result<ExitCode, CommandError> {
    let value = remote
        .post(
            &release_path(&args.release, "/checkpoints"),
            json!({ "name": args.name }),
        )
        .await?;
    announce_checkpoint(&convert::release(&value)?, &args.name, args.format);
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
    let release = convert::release(&value)?;
    if let Some(outcome) = value["outcome"].as_str() {
        output::out(&format!("{}  {outcome}\n", release.id));
    }
    let report = convert::report(&value)?;
    let (declared, no_return) = convert::plan_checkpoints(&value);
    output::out(&describe(
        &release,
        &declared,
        no_return.as_deref(),
        report.as_ref(),
        value["decision"].as_str(),
        now_ms,
    ));
    Ok(ExitCode::Ok)
}
