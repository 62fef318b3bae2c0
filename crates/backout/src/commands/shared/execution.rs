//! How runs end for the commands that carry them out: continuing a run with this process as
//! its executor (`resume`, `retry`, `skip`), carrying out a release's approved rollback
//! (`execute`, `watch --execute`), and the last line and exit code of a run (every command
//! that runs or follows one, locally or on a server).

use std::sync::Arc;

use backout_core::env::Resolver;
use backout_core::release;
use backout_core::release::decide;
use backout_core::{Executor, Progress, RunSummary};
use backout_model::Duration;
use backout_store::{Run, RunKind, RunState, StepState, Store};

use super::evidence;
use super::progress::{printer, run_steps};
use crate::cli::RunFormat;
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// Continues a run with this process as its executor (after a crash, a person's confirmation,
/// resolution, retry or skip), then concludes what it finished: a rehearsal's evidence, a
/// release's rollback (journaled and verified). Exits like `run`, and 6 when a release's
/// rollback ran but did not verify.
pub async fn continue_run(
    store: &Arc<dyn Store>,
    ctx: &Context,
    run_id: &str,
    format: RunFormat,
    wait: bool,
    prompter: Option<std::sync::mpsc::Sender<(String, String)>>,
) -> Result<ExitCode, CommandError> {
    let run = store.get_run(run_id).await?;
    let plan = backout_model::lint(&run.plan_source).plan;
    // A workaround run names its workaround in its first event.
    let workaround = match run.kind {
        RunKind::Workaround => store
            .run_events(run_id, 0, 1)
            .await?
            .first()
            .and_then(|e| e.payload.get("workaround")?.as_str().map(str::to_string)),
        _ => None,
    };
    let progress: Arc<dyn Progress> = match &plan {
        Some(plan) => printer(
            format,
            &run_steps(plan, workaround.as_deref()),
            prompter.clone(),
        ),
        None => {
            return Err(CommandError::internal(format!(
                "the plan stored with run `{}` does not lint",
                run_id
            )));
        }
    };
    let executor = Executor::new(store.clone(), ctx.clock(), Resolver::from_env(), progress);
    let summary = executor.resume(run_id, &ctx.actor(), wait).await?;
    // A rehearsal that this resume finished successfully becomes evidence now.
    let evidence =
        backout_core::rehearsal::conclude(store.as_ref(), &summary, &ctx.actor(), None, ctx.now())
            .await?;
    // A release's rollback that this resume finished is concluded as `execute` would:
    // journaled, and verified (procedure.verify_after) when it succeeded.
    let verified = backout_core::release::conclude_resumed(
        store,
        &summary,
        &ctx.actor(),
        Arc::new(Resolver::from_env()),
        ctx.clock().as_ref(),
        executor.progress(),
    )
    .await?;
    let code = finish(&summary, format);
    evidence::announce(evidence.as_ref(), &summary.run, format);
    let release = summary.run.release_id.as_deref().unwrap_or_default();
    match verified {
        Some(backout_core::release::Verified::Failed(why)) => {
            output::error(&format!(
                "release {release}: the rollback ran but did not verify: {why}"
            ));
            return Ok(ExitCode::RunFailed);
        }
        Some(backout_core::release::Verified::Held) => {
            eprintln!("release {release}: rolled back and verified (procedure.verify_after held)")
        }
        _ => {}
    }
    Ok(code)
}

/// How this process shows a run it carries out: the output format, whether it waits for
/// people, and the prompt at the terminal that confirms manual steps.
pub struct Watching {
    pub format: RunFormat,
    pub wait: bool,
    pub prompter: Option<std::sync::mpsc::Sender<(String, String)>>,
}

/// Clears the execution of a release's rollback (or of its `workaround`) for `who` and runs its
/// procedure; returns the exit code and whether the run completed. A run that never started is
/// journaled as abandoned, so a performer may try again.
pub async fn run_release(
    ctx: &Context,
    store: &Arc<dyn Store>,
    release_id: &str,
    who: &str,
    workaround: Option<&str>,
    watching: Watching,
) -> Result<(ExitCode, Option<Run>), CommandError> {
    let Watching {
        format,
        wait,
        prompter,
    } = watching;
    let cleared =
        decide::clear_execution_of(store.as_ref(), release_id, who, ctx.now(), workaround).await?;
    if let Some(w) = &cleared.workaround {
        eprintln!("release {release_id}: running workaround `{w}` as an execution of the release");
    }
    if cleared.override_window {
        eprintln!(
            "WINDOW OVERRIDDEN: release {release_id} is rolled back after its window closed, on the approval of the full quorum"
        );
    }
    let executor = Executor::new(
        store.clone(),
        ctx.clock(),
        Resolver::from_env(),
        printer(
            format,
            &run_steps(&cleared.plan, cleared.workaround.as_deref()),
            prompter,
        ),
    );
    let rollback = release::carry_out(
        store,
        &executor,
        &cleared,
        who,
        wait,
        Arc::new(Resolver::from_env()),
        ctx.clock().as_ref(),
    )
    .await?;
    let code = finish(&rollback.summary, format);
    let code = match rollback.verified {
        Some(release::Verified::Held) => {
            eprintln!(
                "release {release_id}: rolled back and verified (procedure.verify_after held)"
            );
            code
        }
        Some(release::Verified::Failed(why)) => {
            output::error(&format!(
                "release {release_id}: the rollback ran but did not verify: {why}"
            ));
            ExitCode::RunFailed
        }
        Some(release::Verified::NotRequired) | None => code,
    };
    Ok((code, Some(rollback.summary.run)))
}

pub fn finish(summary: &RunSummary, format: RunFormat) -> ExitCode {
    finish_with(summary, format, false)
}

/// The last line of a run for people, and its exit code. A run on a server (`on_server`) is
/// continued by the server's executor once a person confirms or resolves, not by `resume`.
pub fn finish_with(summary: &RunSummary, format: RunFormat, on_server: bool) -> ExitCode {
    if format == RunFormat::Human {
        let run = &summary.run;
        let took = run.finished_at_ms.unwrap_or(run.updated_at_ms) - run.created_at_ms;
        let mut line = format!(
            "run {} {} after {}",
            run.id,
            run.state,
            Duration::from_millis(u64::try_from(took).unwrap_or(0))
        );
        match run.state {
            RunState::Waiting => {
                let of = |state: StepState| -> Vec<&str> {
                    summary
                        .steps
                        .iter()
                        .filter(|s| s.state == state)
                        .map(|s| s.step_id.as_str())
                        .collect()
                };
                let (manual, in_doubt) = (of(StepState::WaitingManual), of(StepState::InDoubt));
                line.push_str("; waiting for a person");
                if !manual.is_empty() {
                    line.push_str(&format!(
                        "\n  manual: {} — when done, `backout confirm {} STEP --note …`",
                        manual.join(", "),
                        run.id
                    ));
                }
                if !in_doubt.is_empty() {
                    line.push_str(&format!(
                        "\n  in doubt after a crash: {} — check whether each took effect, then `backout resolve {} STEP done|failed|retry`",
                        in_doubt.join(", "),
                        run.id
                    ));
                }
                if on_server {
                    line.push_str("\n  the server's executor continues the run once they are done");
                } else {
                    line.push_str(&format!("\n  then `backout resume {}`", run.id));
                }
            }
            RunState::Failed => line.push_str(&format!("; see `backout status {}`", run.id)),
            _ => {}
        }
        eprintln!("{line}");
    }
    exit_for(summary.run.state)
}

pub fn exit_for(state: RunState) -> ExitCode {
    match state {
        RunState::Succeeded => ExitCode::Ok,
        RunState::Waiting | RunState::Running => ExitCode::Waiting,
        RunState::Refused => ExitCode::Refused,
        RunState::Failed | RunState::Aborted => ExitCode::RunFailed,
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}
