//! Run commands: `run`, `resume`, `status`, `confirm`, `resolve`, `abort`, `report`. They open the
//! store (`--database`, default SQLite under the user's data dir), call the executor or the
//! people operations of backout-core (`shared/progress.rs` prints the run while it runs), and map run
//! states to exit codes.

use std::time::Duration as StdDuration;

use backout_api as api;
use backout_core::env::Resolver;
use backout_core::release::decide::{self, Act};
use backout_core::{Executor, RunOptions, StepTarget};
use backout_model::Duration;
use backout_model::schedule::Schedule;
use backout_store::{Run, RunKind, RunState, StepRecord, StepState};

use crate::cli::{
    AbortArgs, ConfirmArgs, LintFormat, ReportArgs, ReportFormat, Resolution, ResolveArgs,
    ResumeArgs, RunArgs, StatusArgs,
};
use crate::commands::context::Context;
use crate::commands::shared::execution::{continue_run, exit_for, finish};
use crate::commands::shared::listing::release_line;
use crate::commands::shared::plan::declared_checkpoints;
use crate::commands::shared::plan::read_plan;
use crate::commands::shared::progress::{interactive, printer, run_steps, spawn_prompter};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use crate::remote::{Remote, convert, run_path, segment};

mod report;
pub use report::report;

pub fn run(args: &RunArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    let Some(plan) = &linted.plan else {
        return Err(CommandError::usage(format!(
            "`{}` has {} error(s); run `backout lint {}` and fix them first",
            args.plan.display(),
            linted.errors(),
            args.plan.display()
        )));
    };
    declared_checkpoints(plan, &args.checkpoints)?;
    let environment = args
        .environment
        .clone()
        .unwrap_or_else(|| plan.release.environment.clone());
    let who = ctx.actor();
    let reason = args.reason.as_deref().filter(|_| args.break_glass);
    let breaks_glass =
        decide::may_run(plan, &who, &environment, reason).map_err(CommandError::refused)?;
    if breaks_glass {
        output::warn(&format!(
            "BREAK GLASS: {who} runs the procedure in `{environment}` outside a release: {}",
            reason.unwrap_or_default()
        ));
    }
    let options = RunOptions {
        kind: RunKind::Adhoc,
        environment,
        checkpoints: args.checkpoints.clone(),
        actor: ctx.actor(),
        release_id: None,
        workaround: args.workaround.clone(),
        wait_for_people: args.wait,
        extra_env: Vec::new(),
        break_glass: if breaks_glass {
            reason.map(str::to_string)
        } else {
            None
        },
    };
    let plan = plan.clone();
    let mut options = options;
    let prompter = interactive(args.format).then(|| {
        options.wait_for_people = true;
        spawn_prompter(ctx)
    });
    ctx.with_store(|store| async move {
        let executor = Executor::new(
            store,
            ctx.clock(),
            Resolver::from_env(),
            printer(
                args.format,
                &run_steps(&plan, args.workaround.as_deref()),
                prompter,
            ),
        );
        let summary = executor.start(&source, &options).await?;
        Ok(finish(&summary, args.format))
    })
}

pub fn resume(args: &ResumeArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let prompter = interactive(args.format).then(|| spawn_prompter(ctx));
    let wait = args.wait || prompter.is_some();
    ctx.with_store(|store| async move {
        continue_run(&store, ctx, &args.run, args.format, wait, prompter).await
    })
}

pub fn status(args: &StatusArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote_status(r, args, ctx.now())) {
        return done;
    }
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        match &args.run {
            None => {
                let runs = store.list_runs(20).await?;
                if args.format == LintFormat::Json {
                    output::out(&format!(
                        "{}\n",
                        output::json(&runs.iter().map(run_json).collect::<Vec<_>>())?
                    ));
                    return Ok(ExitCode::Ok);
                }
                let releases = store.list_releases(10).await?;
                for release in &releases {
                    let outcome = decide::load(store.as_ref(), &release.id)
                        .await
                        .ok()
                        .map(|l| decide::Outcome::of(&l.release, &l.decisions));
                    output::out(&release_line(
                        release,
                        outcome.map(decide::Outcome::as_str),
                        ctx.now(),
                    ));
                }
                if runs.is_empty() {
                    output::out("no runs yet; start one with `backout run PLAN`\n");
                }
                for run in &runs {
                    output::out(&format!(
                        "{}  {:<10} {:<10} {}  by {}\n",
                        run.id,
                        run.state.to_string(),
                        run.kind.to_string(),
                        service_of(run),
                        run.actor
                    ));
                }
                Ok(ExitCode::Ok)
            }
            Some(id) => {
                let run = store.get_run(id).await?;
                let steps = store.list_steps(id).await?;
                if args.format == LintFormat::Json {
                    let value = serde_json::json!({ "run": run_json(&run), "steps": steps });
                    output::out(&format!("{}\n", output::json(&value)?));
                } else {
                    output::out(&step_table(&run, &steps, ctx.now()));
                    if let Some(gone) =
                        backout_core::executor::executor_gone_at(store.as_ref(), &run, ctx.now())
                            .await
                    {
                        output::out(&format!("{gone}\n"));
                    }
                }
                Ok(exit_for(run.state))
            }
        }
    })
}

/// A run without its plan text (which `status` does not need to repeat).
fn run_json(run: &Run) -> serde_json::Value {
    let mut value = serde_json::to_value(run).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("plan_source");
    }
    value
}

fn service_of(run: &Run) -> String {
    backout_model::lint(&run.plan_source).plan.map_or_else(
        || "?".into(),
        |p| format!("{} {}", p.release.service, p.release.version),
    )
}

fn expected_of(run: &Run) -> std::collections::HashMap<String, Duration> {
    let Some(plan) = backout_model::lint(&run.plan_source).plan else {
        return Default::default();
    };
    plan.all_steps()
        .filter_map(|s| s.expected.map(|e| (s.id.clone(), e)))
        .collect()
}

/// `status` and `status RUN` against a server: its releases (the API lists no runs), or one
/// run's steps, printed as locally.
async fn remote_status(
    remote: Remote,
    args: &StatusArgs,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    let Some(id) = &args.run else {
        return remote_list(remote, args.format, now_ms).await;
    };
    let answer: api::RunWithSteps = remote.get_as("run", &run_path(id, "")).await?;
    let printed = convert::run_as_printed(&answer);
    let gone = answer.executor_gone.clone();
    let (run, steps) = convert::run_records(answer);
    if args.format == LintFormat::Json {
        output::out(&format!("{}\n", output::json(&printed)?));
    } else {
        output::out(&step_table(&run, &steps, now_ms));
        if let Some(gone) = gone {
            output::out(&format!("{gone}\n"));
        }
    }
    Ok(exit_for(run.state))
}

/// `status` without an id: the server's recent releases (the API lists no runs).
async fn remote_list(
    remote: Remote,
    format: LintFormat,
    now_ms: i64,
) -> Result<ExitCode, CommandError> {
    let value = remote.get("/api/v1/releases?limit=20").await?;
    // Decoded before anything is printed: an answer that is not the list is an error, in JSON
    // too (which prints the server's answer as it came).
    let list: api::ReleaseList = convert::parse("release list", &value)?;
    if format == LintFormat::Json {
        output::out(&format!("{}\n", output::json(&value)?));
        return Ok(ExitCode::Ok);
    }
    if list.releases.is_empty() {
        output::out(&format!("no releases on {} yet\n", remote.base()));
    }
    for item in list.releases {
        output::out(&release_line(
            &item.release.into_record(String::new()),
            item.outcome.map(api::ReleaseOutcome::as_str),
            now_ms,
        ));
    }
    Ok(ExitCode::Ok)
}

/// What each failed, aborted or in-doubt step said last (stderr, then stdout; redacted when
/// recorded): where the on-call looks first.
pub(super) fn failed_output(steps: &[StepRecord]) -> String {
    let mut out = String::new();
    for s in steps.iter().filter(|s| {
        matches!(
            s.state,
            StepState::Failed | StepState::Aborted | StepState::InDoubt
        )
    }) {
        let tail = backout_core::executor::output_tail(s, backout_core::executor::TAIL_LINES);
        if tail.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{} ({}) said last:\n", s.step_id, s.state));
        for line in tail.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

pub(super) fn step_table(run: &Run, steps: &[StepRecord], now_ms: i64) -> String {
    let expected = expected_of(run);
    let mut out = format!(
        "run {}  {}  ({}, {} by {})\n",
        run.id,
        run.state,
        service_of(run),
        run.kind,
        run.actor
    );
    out.push_str(&format!(
        "{:<24} {:<15} {:>7} {:>9} {:>10} {:>10} {:>6}  note\n",
        "step", "state", "attempt", "started", "took", "expected", "exit"
    ));
    for s in steps {
        let took = match (s.started_at_ms, s.finished_at_ms) {
            (Some(a), Some(b)) => {
                Duration::from_millis(u64::try_from(b - a).unwrap_or(0)).to_string()
            }
            (Some(a), None) if matches!(s.state, StepState::Running | StepState::WaitingManual) => {
                format!(
                    "{}…",
                    Duration::from_millis(u64::try_from(now_ms - a).unwrap_or(0))
                )
            }
            _ => "-".into(),
        };
        let started = s.started_at_ms.map_or("-".into(), |t| {
            format!("+{:.1}s", (t - run.created_at_ms) as f64 / 1000.0)
        });
        let exp = expected
            .get(&s.step_id)
            .map_or("-".into(), ToString::to_string);
        let exit = s.exit_status.map_or("-".into(), |c| c.to_string());
        let note: String = s
            .note
            .clone()
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect();
        out.push_str(&format!(
            "{:<24} {:<15} {:>7} {:>9} {:>10} {:>10} {:>6}  {note}\n",
            s.step_id,
            s.state.to_string(),
            s.attempt,
            started,
            took,
            exp,
            exit
        ));
    }
    out.push_str(&failed_output(steps));
    out
}

pub fn confirm(args: &ConfirmArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let body = api::NoteRequest {
            note: args.note.clone(),
        };
        let path = run_path(
            &args.run,
            &format!("/steps/{}/confirm", segment(&args.step)),
        );
        let answer: api::RunWithSteps = remote.post_as("run", &path, &body).await?;
        let (run, steps) = convert::run_records(answer);
        eprintln!(
            "confirmed {} in run {}; the server's executor continues the run",
            args.step, args.run
        );
        act_answer(args.format, &run, &steps, "confirmed", Some(&args.step));
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    ctx.with_store(|store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(
            store.as_ref(),
            &run,
            Act::Confirm(&args.step),
            &ctx.actor(),
        )
        .await?;
        backout_core::executor::confirm(
            store.as_ref(),
            &args.run,
            &args.step,
            &ctx.actor(),
            args.note.as_deref(),
            ctx.now(),
        )
        .await?;
        eprintln!(
            "confirmed {} in run {}; a waiting executor continues, otherwise run `backout resume {}`",
            args.step, args.run, args.run
        );
        if args.format == LintFormat::Json {
            let run = store.get_run(&args.run).await?;
            let steps = store.list_steps(&args.run).await?;
            act_answer(args.format, &run, &steps, "confirmed", Some(&args.step));
        }
        Ok(ExitCode::Ok)
    })
}

pub fn resolve(args: &ResolveArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let target = match args.outcome {
        Resolution::Done => StepTarget::Done,
        Resolution::Failed => StepTarget::Failed,
        Resolution::Retry => StepTarget::Retry,
    };
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let body = api::ResolveRequest {
            outcome: resolution_of(args.outcome),
            note: args.note.clone(),
        };
        let path = run_path(
            &args.run,
            &format!("/steps/{}/resolve", segment(&args.step)),
        );
        let answer: api::RunWithSteps = remote.post_as("run", &path, &body).await?;
        let (run, steps) = convert::run_records(answer);
        eprintln!(
            "resolved {} in run {}; the server's executor continues the run",
            args.step, args.run
        );
        act_answer(args.format, &run, &steps, "resolved", Some(&args.step));
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    ctx.with_store(|store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Resolve, &ctx.actor()).await?;
        backout_core::executor::resolve(
            store.as_ref(),
            &args.run,
            &args.step,
            target,
            &ctx.actor(),
            args.note.as_deref(),
            ctx.now(),
        )
        .await?;
        eprintln!(
            "resolved {} in run {}; continue with `backout resume {}`",
            args.step, args.run, args.run
        );
        if args.format == LintFormat::Json {
            let run = store.get_run(&args.run).await?;
            let steps = store.list_steps(&args.run).await?;
            act_answer(args.format, &run, &steps, "resolved", Some(&args.step));
        }
        Ok(ExitCode::Ok)
    })
}

/// With `--format json`, what an act on a run left: the run's id and state, and the step's
/// state (from the store, or from the server's answer decoded into the same records).
fn act_answer(format: LintFormat, run: &Run, steps: &[StepRecord], act: &str, step: Option<&str>) {
    if format != LintFormat::Json {
        return;
    }
    let state = |s: RunState| serde_json::to_value(s).unwrap_or_default();
    let mut answer = serde_json::json!({
        "act": act,
        "run": run.id,
        "run_state": state(run.state),
    });
    if let Some(step) = step {
        answer["step"] = step.into();
        answer["step_state"] = steps
            .iter()
            .find(|s| s.step_id == step)
            .map_or(serde_json::Value::Null, |s| {
                serde_json::to_value(s.state).unwrap_or_default()
            });
    }
    output::out(&format!("{answer}\n"));
}

/// The API's name for how an in-doubt step is resolved.
fn resolution_of(outcome: Resolution) -> api::ResolveOutcome {
    match outcome {
        Resolution::Done => api::ResolveOutcome::Done,
        Resolution::Failed => api::ResolveOutcome::Failed,
        Resolution::Retry => api::ResolveOutcome::Retry,
    }
}

pub fn abort(args: &AbortArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        let body = api::AbortRequest {
            reason: Some(args.reason.clone()),
        };
        let answer: api::RunWithSteps = remote
            .post_as("run", &run_path(&args.run, "/abort"), &body)
            .await?;
        let (run, steps) = convert::run_records(answer);
        eprintln!(
            "run {} aborted; the server's executor stops its steps within a second",
            args.run
        );
        act_answer(args.format, &run, &steps, "aborted", None);
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    ctx.with_store(|store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Abort, &ctx.actor()).await?;
        backout_core::executor::abort(
            store.as_ref(),
            &args.run,
            &ctx.actor(),
            &args.reason,
            ctx.now(),
        )
        .await?;
        eprintln!(
            "run {} aborted; a running executor stops its steps within a second",
            args.run
        );
        // Give a live executor its poll interval to cancel, so `status` right after shows it.
        tokio::time::sleep(StdDuration::from_millis(10)).await;
        if args.format == LintFormat::Json {
            let run = store.get_run(&args.run).await?;
            let steps = store.list_steps(&args.run).await?;
            act_answer(args.format, &run, &steps, "aborted", None);
        }
        Ok(ExitCode::Ok)
    })
}
