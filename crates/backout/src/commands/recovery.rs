//! `retry` and `skip`: the ways forward from a failed step, inside the run and its release.
//! Each is a performer's act (`decide::may_act`), journaled; a run that ended is reopened and
//! continued here as `resume` would, so the on-call never has to leave the release for an
//! ad-hoc `backout run`.

use std::sync::Arc;

use backout_core::release::decide::{self, Act};
use backout_store::{RunState, Store};

use crate::cli::{RetryArgs, RunFormat, SkipArgs};
use crate::commands::context::Context;
use crate::commands::shared::execution::continue_run;
use crate::commands::shared::progress::{interactive, spawn_prompter};
use crate::exit_codes::{CommandError, ExitCode};

pub fn retry(args: &RetryArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let path = format!("/api/v1/runs/{}/retry", crate::remote::segment(&args.run));
        remote
            .post(&path, serde_json::json!({ "steps": args.steps }))
            .await?;
        eprintln!(
            "retrying in run {}; the server's executor continues the run (`backout status {}`)",
            args.run, args.run
        );
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    let who = ctx.actor();
    ctx.with_store(|store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Retry, &who).await?;
        let steps =
            backout_core::executor::retry(store.as_ref(), &args.run, &args.steps, &who, ctx.now())
                .await?;
        eprintln!(
            "run {}: a new attempt for {} ({who})",
            args.run,
            steps.join(", ")
        );
        carry_on(&store, ctx, &args.run, args.format, args.wait).await
    })
}

pub fn skip(args: &SkipArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let path = format!(
            "/api/v1/runs/{}/steps/{}/skip",
            crate::remote::segment(&args.run),
            crate::remote::segment(&args.step)
        );
        remote
            .post(&path, serde_json::json!({ "reason": args.reason }))
            .await?;
        eprintln!(
            "skipped {} in run {}; the server's executor continues the run",
            args.step, args.run
        );
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    let who = ctx.actor();
    ctx.with_store(|store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Skip, &who).await?;
        backout_core::executor::skip(
            store.as_ref(),
            &args.run,
            &args.step,
            &args.reason,
            &who,
            ctx.now(),
        )
        .await?;
        eprintln!(
            "run {}: {} skipped by {who}: {}",
            args.run, args.step, args.reason
        );
        carry_on(&store, ctx, &args.run, args.format, args.wait).await
    })
}

/// After the act: a run whose executor still runs it (waiting for people) picks the change up
/// on its next poll; otherwise this process continues the run.
async fn carry_on(
    store: &Arc<dyn Store>,
    ctx: &Context,
    run_id: &str,
    format: RunFormat,
    wait: bool,
) -> Result<ExitCode, CommandError> {
    let run = store.get_run(run_id).await?;
    if run.state == RunState::Running
        && run
            .executor
            .as_ref()
            .is_some_and(|e| backout_core::process::is_alive(e.pid))
    {
        eprintln!("run {run_id}: its executor is running and continues it");
        return Ok(ExitCode::Ok);
    }
    let prompter = interactive(format).then(|| spawn_prompter(ctx));
    let wait = wait || prompter.is_some();
    continue_run(store, ctx, run_id, format, wait, prompter).await
}
