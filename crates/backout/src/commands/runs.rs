//! Run commands: `run`, `resume`, `status`, `confirm`, `resolve`, `abort`, `report`. They open the
//! store (`--database`, default SQLite under the user's data dir), call the executor or the
//! people operations of backout-core (`progress.rs` prints the run while it runs), and map run
//! states to exit codes.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::release::decide::{self, Act};
use backout_core::{Executor, Progress, RunOptions, RunSummary, StepTarget};
use backout_model::Duration;
use backout_model::schedule::Schedule;
use backout_store::{Run, RunKind, RunState, StepRecord, StepState, Store};

use super::progress::{interactive, printer, run_steps, spawn_prompter};
use crate::cli::{
    AbortArgs, ConfirmArgs, Global, LintFormat, ReportArgs, ReportFormat, Resolution, ResolveArgs,
    ResumeArgs, RunArgs, RunFormat, StatusArgs,
};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

mod report;
pub use report::report;

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::internal(format!("cannot start the async runtime: {e}")))
}

/// Runs `work` on the store with a dispatcher delivering the notifications it queues
/// (`notifying`).
pub(super) fn with_store<F, Fut, T>(global: &Global, work: F) -> Result<T, CommandError>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CommandError>>,
{
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        super::notifying::notifying(&store, work(store.clone())).await
    })
}

pub(super) async fn open_store(global: &Global) -> Result<Arc<dyn Store>, CommandError> {
    let url = match &global.database {
        Some(url) => url.clone(),
        None => backout_sqlite::default_database_url().map_err(|e| {
            CommandError::usage(format!(
                "{e}; pass --database sqlite://PATH or set BACKOUT_DATABASE_URL"
            ))
        })?,
    };
    if backout_postgres::is_postgres_url(&url) {
        // The error names the database without its password (`StoreError::Open` carries the
        // location), so the URL itself is not repeated.
        let store = backout_postgres::PostgresStore::open(&url)
            .await
            .map_err(|e| {
                CommandError::usage(format!("cannot open the store: {}", with_causes(&e)))
            })?;
        return Ok(Arc::new(store));
    }
    let store = backout_sqlite::SqliteStore::open(&url).await.map_err(|e| {
        CommandError::usage(format!(
            "cannot open the store `{url}`: {}",
            with_causes(&e)
        ))
    })?;
    Ok(Arc::new(store))
}

/// An error and its causes, "a: b: c", so the root cause (say, "database is locked") shows.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Who is acting: `--as`, `BACKOUT_USER`, else the OS user.
pub fn actor(global: &Global) -> String {
    global
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .or_else(os_user)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user from /etc/passwd (USER is unset under cron, CI and sudo -i).
fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

pub(super) fn now() -> i64 {
    SystemClock.now_ms()
}

pub fn run(args: &RunArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let source = super::read_plan(&args.plan).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    let Some(plan) = &linted.plan else {
        return Err(CommandError::usage(format!(
            "`{}` has {} error(s); run `backout lint {}` and fix them first",
            args.plan.display(),
            linted.errors(),
            args.plan.display()
        )));
    };
    super::rehearsals::declared_checkpoints(plan, &args.checkpoints)?;
    let environment = args
        .environment
        .clone()
        .unwrap_or_else(|| plan.release.environment.clone());
    let who = actor(global);
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
        actor: actor(global),
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
        spawn_prompter(global)
    });
    with_store(global, |store| async move {
        let executor = Executor::new(
            store,
            Arc::new(SystemClock),
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

pub fn resume(args: &ResumeArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let prompter = interactive(args.format).then(|| spawn_prompter(global));
    let wait = args.wait || prompter.is_some();
    with_store(global, |store| async move {
        continue_run(&store, global, &args.run, args.format, wait, prompter).await
    })
}

/// Continues a run with this process as its executor (after a crash, a person's confirmation,
/// resolution, retry or skip), then concludes what it finished: a rehearsal's evidence, a
/// release's rollback (journaled and verified). Exits like `run`, and 6 when a release's
/// rollback ran but did not verify.
pub(super) async fn continue_run(
    store: &Arc<dyn Store>,
    global: &Global,
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
    let executor = Executor::new(
        store.clone(),
        Arc::new(SystemClock),
        Resolver::from_env(),
        progress,
    );
    let summary = executor.resume(run_id, &actor(global), wait).await?;
    // A rehearsal that this resume finished successfully becomes evidence now.
    let evidence =
        backout_core::rehearsal::conclude(store.as_ref(), &summary, &actor(global), None, now())
            .await?;
    // A release's rollback that this resume finished is concluded as `execute` would:
    // journaled, and verified (procedure.verify_after) when it succeeded.
    let verified = backout_core::release::conclude_resumed(
        store,
        &summary,
        &actor(global),
        Arc::new(Resolver::from_env()),
        &SystemClock,
        executor.progress(),
    )
    .await?;
    let code = finish(&summary, format);
    super::rehearsals::announce(evidence.as_ref(), &summary.run, format);
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

pub(super) fn finish(summary: &RunSummary, format: RunFormat) -> ExitCode {
    finish_with(summary, format, false)
}

/// The last line of a run for people, and its exit code. A run on a server (`on_server`) is
/// continued by the server's executor once a person confirms or resolves, not by `resume`.
pub(super) fn finish_with(summary: &RunSummary, format: RunFormat, on_server: bool) -> ExitCode {
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

pub(super) fn exit_for(state: RunState) -> ExitCode {
    match state {
        RunState::Succeeded => ExitCode::Ok,
        RunState::Waiting | RunState::Running => ExitCode::Waiting,
        RunState::Refused => ExitCode::Refused,
        RunState::Failed | RunState::Aborted => ExitCode::RunFailed,
    }
}

pub fn status(args: &StatusArgs, global: &Global) -> Result<ExitCode, CommandError> {
    if let Some(id) = args.run.as_deref().filter(|id| id.starts_with("rel-")) {
        return super::releases::status(id, args.format, global);
    }
    if let Some(done) = crate::remote::run(global, |r| remote_status(r, args)) {
        return done;
    }
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        match &args.run {
            None => {
                let runs = store.list_runs(20).await?;
                if args.format == LintFormat::Json {
                    output::out(&format!(
                        "{}\n",
                        json(&runs.iter().map(run_json).collect::<Vec<_>>())?
                    ));
                    return Ok(ExitCode::Ok);
                }
                let releases = store.list_releases(10).await?;
                for release in &releases {
                    let outcome = decide::load(store.as_ref(), &release.id)
                        .await
                        .ok()
                        .map(|l| decide::Outcome::of(&l.release, &l.decisions));
                    output::out(&super::releases::line(
                        release,
                        outcome.map(decide::Outcome::as_str),
                        now(),
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
                    output::out(&format!("{}\n", json(&value)?));
                } else {
                    output::out(&step_table(&run, &steps));
                    if let Some(gone) =
                        backout_core::executor::executor_gone_at(store.as_ref(), &run, now()).await
                    {
                        output::out(&format!("{gone}\n"));
                    }
                }
                Ok(exit_for(run.state))
            }
        }
    })
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, CommandError> {
    serde_json::to_string_pretty(value).map_err(|e| CommandError::internal(e.to_string()))
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
    remote: crate::remote::Remote,
    args: &StatusArgs,
) -> Result<ExitCode, CommandError> {
    let Some(id) = &args.run else {
        return super::releases::remote::list(remote, args.format).await;
    };
    let value = remote
        .get(&format!("/api/v1/runs/{}", crate::remote::segment(id)))
        .await?;
    let (run, steps) = crate::remote::convert::run(&value)?;
    if args.format == LintFormat::Json {
        output::out(&format!(
            "{}\n",
            json(&crate::remote::convert::run_as_printed(&value))?
        ));
    } else {
        output::out(&step_table(&run, &steps));
        if let Some(gone) = value["executor_gone"].as_str() {
            output::out(&format!("{gone}\n"));
        }
    }
    Ok(exit_for(run.state))
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

pub(super) fn step_table(run: &Run, steps: &[StepRecord]) -> String {
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
                    Duration::from_millis(u64::try_from(now() - a).unwrap_or(0))
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

pub fn confirm(args: &ConfirmArgs, global: &Global) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(global, |remote| async move {
        let mut body = serde_json::json!({});
        if let Some(note) = &args.note {
            body["note"] = note.as_str().into();
        }
        let path = format!(
            "/api/v1/runs/{}/steps/{}/confirm",
            crate::remote::segment(&args.run),
            crate::remote::segment(&args.step)
        );
        let value = remote.post(&path, body).await?;
        eprintln!(
            "confirmed {} in run {}; the server's executor continues the run",
            args.step, args.run
        );
        act_answer(args.format, &value, "confirmed", Some(&args.step));
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    with_store(global, |store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(
            store.as_ref(),
            &run,
            Act::Confirm(&args.step),
            &actor(global),
        )
        .await?;
        backout_core::executor::confirm(
            store.as_ref(),
            &args.run,
            &args.step,
            &actor(global),
            args.note.as_deref(),
            now(),
        )
        .await?;
        eprintln!(
            "confirmed {} in run {}; a waiting executor continues, otherwise run `backout resume {}`",
            args.step, args.run, args.run
        );
        if args.format == LintFormat::Json {
            let value = run_and_steps(store.as_ref(), &args.run).await?;
            act_answer(args.format, &value, "confirmed", Some(&args.step));
        }
        Ok(ExitCode::Ok)
    })
}

pub fn resolve(args: &ResolveArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let target = match args.outcome {
        Resolution::Done => StepTarget::Done,
        Resolution::Failed => StepTarget::Failed,
        Resolution::Retry => StepTarget::Retry,
    };
    if let Some(done) = crate::remote::run(global, |remote| async move {
        let mut body = serde_json::json!({ "outcome": resolution_name(args.outcome) });
        if let Some(note) = &args.note {
            body["note"] = note.as_str().into();
        }
        let path = format!(
            "/api/v1/runs/{}/steps/{}/resolve",
            crate::remote::segment(&args.run),
            crate::remote::segment(&args.step)
        );
        let value = remote.post(&path, body).await?;
        eprintln!(
            "resolved {} in run {}; the server's executor continues the run",
            args.step, args.run
        );
        act_answer(args.format, &value, "resolved", Some(&args.step));
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    with_store(global, |store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Resolve, &actor(global)).await?;
        backout_core::executor::resolve(
            store.as_ref(),
            &args.run,
            &args.step,
            target,
            &actor(global),
            args.note.as_deref(),
            now(),
        )
        .await?;
        eprintln!(
            "resolved {} in run {}; continue with `backout resume {}`",
            args.step, args.run, args.run
        );
        if args.format == LintFormat::Json {
            let value = run_and_steps(store.as_ref(), &args.run).await?;
            act_answer(args.format, &value, "resolved", Some(&args.step));
        }
        Ok(ExitCode::Ok)
    })
}

/// A run and its steps, shaped as the server's `GET /api/v1/runs/{id}` answers.
async fn run_and_steps(
    store: &dyn backout_store::Store,
    run_id: &str,
) -> Result<serde_json::Value, CommandError> {
    let run = store.get_run(run_id).await?;
    let steps = store.list_steps(run_id).await?;
    Ok(serde_json::json!({ "run": run_json(&run), "steps": steps }))
}

/// With `--format json`, what an act on a run left: the run's id and state, and the step's
/// state, from `value` (a run with its steps, as the server answers).
fn act_answer(format: LintFormat, value: &serde_json::Value, act: &str, step: Option<&str>) {
    if format != LintFormat::Json {
        return;
    }
    let run = &value["run"];
    let mut answer = serde_json::json!({
        "act": act,
        "run": run["id"],
        "run_state": run["state"],
    });
    if let Some(step) = step {
        answer["step"] = step.into();
        answer["step_state"] = value["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["step_id"] == step))
            .map_or(serde_json::Value::Null, |s| s["state"].clone());
    }
    output::out(&format!("{answer}\n"));
}

fn resolution_name(outcome: Resolution) -> &'static str {
    match outcome {
        Resolution::Done => "done",
        Resolution::Failed => "failed",
        Resolution::Retry => "retry",
    }
}

pub fn abort(args: &AbortArgs, global: &Global) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(global, |remote| async move {
        let path = format!("/api/v1/runs/{}/abort", crate::remote::segment(&args.run));
        let value = remote
            .post(&path, serde_json::json!({ "reason": args.reason }))
            .await?;
        eprintln!(
            "run {} aborted; the server's executor stops its steps within a second",
            args.run
        );
        act_answer(args.format, &value, "aborted", None);
        Ok(ExitCode::Ok)
    }) {
        return done;
    }
    with_store(global, |store| async move {
        let run = store.get_run(&args.run).await?;
        decide::may_act(store.as_ref(), &run, Act::Abort, &actor(global)).await?;
        backout_core::executor::abort(
            store.as_ref(),
            &args.run,
            &actor(global),
            &args.reason,
            now(),
        )
        .await?;
        eprintln!(
            "run {} aborted; a running executor stops its steps within a second",
            args.run
        );
        // Give a live executor its poll interval to cancel, so `status` right after shows it.
        tokio::time::sleep(StdDuration::from_millis(10)).await;
        if args.format == LintFormat::Json {
            let value = run_and_steps(store.as_ref(), &args.run).await?;
            act_answer(args.format, &value, "aborted", None);
        }
        Ok(ExitCode::Ok)
    })
}
