//! Release commands: `start` opens a release and its window, `checkpoint` records the forward
//! deployment's milestones, `request` asks for a rollback, `check` and `watch` measure the
//! criteria, and `status REL` shows the window, checkpoints, verdict and criteria.

pub(super) mod remote;
mod report;
mod view;

use std::sync::Arc;

use backout_core::criteria::Verdict;
use backout_core::release::{self, StartRelease, WatchOptions, Watcher, decide};
use backout_store::{Release, ReleaseState};

use crate::cli::{
    AcceptArgs, CheckArgs, CheckpointArgs, LintFormat, RequestArgs, StartArgs, WatchArgs,
};
use crate::commands::context::Context;
use crate::commands::shared::evidence;
use crate::commands::shared::execution::{Watching, interrupted, run_release};
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use backout_core::time::{left, parse_rfc3339, utc};
pub use report::report;

pub fn start(args: &StartArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    if let Some(done) =
        crate::remote::run(&ctx.global, |r| remote::start(r, args, &source, ctx.now()))
    {
        return done;
    }
    let linted = backout_model::lint(&source);
    let Some(plan) = linted.plan else {
        return Err(CommandError::usage(format!(
            "`{}` has {} error(s); run `backout lint {}` and fix them first",
            args.plan.display(),
            linted.errors(),
            args.plan.display()
        )));
    };
    let at_ms = match &args.at {
        Some(at) => {
            let at_ms = parse_rfc3339(at).map_err(|e| CommandError::usage(format!("--at: {e}")))?;
            if at_ms > ctx.now() + 60_000 {
                return Err(CommandError::usage(format!(
                    "--at {at} is in the future; give the time the deployment happened"
                )));
            }
            at_ms
        }
        None => ctx.now(),
    };
    ctx.with_store(|store| async move {
        if args.require_accepted {
            let hash = backout_model::lint(&source).hash.unwrap_or_default();
            if release::accept::acceptance(store.as_ref(), &hash)
                .await?
                .is_none()
            {
                return Err(CommandError::refused(release::accept::not_accepted(
                    &plan,
                    "refusing to start with --require-accepted",
                )));
            }
        }
        // Q9: is this exact version of the plan rehearsed? Loud when not; refused on request.
        let evidence = evidence::of_service(store.as_ref(), &plan.release.service).await?;
        if let Some(problem) = evidence::untested(&source, &plan, &evidence, ctx.now()) {
            let help = problem.help.clone().unwrap_or_default();
            if args.require_tested {
                return Err(CommandError::refused(format!(
                    "refusing to start with --require-tested: {}; {help}",
                    problem.message
                )));
            }
            output::warn(&format!(
                "UNTESTED PLAN: {}. Nobody has proven this backout works; {help} (or pass --require-tested to refuse such starts)",
                problem.message
            ));
        }
        let request = StartRelease {
            source: &source,
            version: args.version.as_deref(),
            rollback_to: args.rollback_to.as_deref(),
            actor: &ctx.actor(),
            at_ms,
        };
        let release = release::start(store.as_ref(), &request).await?;
        announce_start(&release, args.format, ctx.now());
        Ok(ExitCode::Ok)
    })
}

/// A release as a command's JSON answer: its stored record without the plan's text.
pub(super) fn release_answer(release: &Release) -> serde_json::Value {
    let mut value = serde_json::to_value(release).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("plan_source");
    }
    value
}

/// What `start` says: the window on standard error, the id alone on standard output (or, with
/// `--format json`, the release it opened).
fn announce_start(release: &Release, format: LintFormat, now_ms: i64) {
    eprintln!(
        "release {} of {} {} (rolls back to {}): window {}",
        release.id,
        release.service,
        release.version,
        release.rollback_to,
        match release.closes_at_ms {
            Some(t) if t <= now_ms => format!(
                "already closed at {} (the deployment at {} is older than the window)",
                utc(t),
                utc(release.opened_at_ms)
            ),
            Some(t) => format!("open until {}", utc(t)),
            None => "not applicable (a rollback is possible at any time)".into(),
        }
    );
    if format == LintFormat::Json {
        output::answer(&serde_json::json!({ "release": release_answer(release) }));
        return;
    }
    // The id alone on standard output, for scripts: REL=$(backout start …).
    output::out(&format!("{}\n", release.id));
}

pub fn request(args: &RequestArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote::request(r, args)) {
        return done;
    }
    ctx.with_store(|store| async move {
        let release = release::request(
            store.as_ref(),
            &args.release,
            &args.reason,
            &ctx.actor(),
            ctx.now(),
        )
        .await?;
        announce_request(&release, &ctx.actor(), &args.reason, args.format);
        Ok(ExitCode::Ok)
    })
}

fn announce_request(release: &Release, who: &str, reason: &str, format: LintFormat) {
    eprintln!(
        "release {}: rollback requested by {who} ({reason}); the verdict is now rollback_required",
        release.id
    );
    if format == LintFormat::Json {
        output::answer(&serde_json::json!({
            "release": release_answer(release),
            "requested": { "by": who, "reason": reason },
            "verdict": "rollback_required",
        }));
    }
}

pub fn checkpoint(args: &CheckpointArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote::checkpoint(r, args)) {
        return done;
    }
    ctx.with_store(|store| async move {
        let release = release::checkpoint(
            store.as_ref(),
            &args.release,
            &args.name,
            &ctx.actor(),
            ctx.now(),
        )
        .await?;
        announce_checkpoint(&release, &args.name, args.format);
        Ok(ExitCode::Ok)
    })
}

fn announce_checkpoint(release: &Release, name: &str, format: LintFormat) {
    if format == LintFormat::Json {
        output::answer(&serde_json::json!({
            "release": release_answer(release),
            "checkpoint": name,
        }));
    }
    match (&release.state, &release.close_reason) {
        (ReleaseState::Closed, Some(reason)) => eprintln!(
            "release {}: checkpoint `{name}` recorded; the rollback window is now closed ({reason})",
            release.id
        ),
        _ => eprintln!("release {}: checkpoint `{name}` recorded", release.id),
    }
}

pub fn check(args: &CheckArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote::check(r, args, ctx.now())) {
        return done;
    }
    ctx.with_store(|store| async move {
        let resolver = Arc::new(backout_core::env::Resolver::from_env());
        let report = release::check(
            store.as_ref(),
            &args.release,
            resolver,
            &ctx.actor(),
            ctx.now(),
            false,
        )
        .await?;
        if args.format == LintFormat::Json {
            output::out(&format!("{}\n", output::json(&report)?));
        } else {
            output::out(&view::table(&report, ctx.now(), ""));
        }
        // A rolled-back release is concluded: nothing is measured and nothing is asked of anyone.
        let loaded = release::decide::load(store.as_ref(), &args.release).await?;
        let outcome = release::decide::Outcome::of(&loaded.release, &loaded.decisions);
        if outcome == release::decide::Outcome::RolledBack {
            if args.format == LintFormat::Human {
                output::out(&format!(
                    "release {}: rolled_back (the rollback finished and verified); its criteria are no longer measured\n",
                    args.release
                ));
            }
            return Ok(ExitCode::Ok);
        }
        Ok(exit_for(report.verdict))
    })
}

/// Watches one release until its verdict needs a person, success is reached or the window
/// closes (exiting with the verdict's code), or, with `--all`, every open release until
/// interrupted.
pub fn watch(args: &WatchArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let ids: Vec<String> = match (&args.release, args.all) {
        (Some(id), false) => vec![id.clone()],
        (None, true) => Vec::new(),
        (Some(_), true) => {
            return Err(CommandError::usage(
                "give either a release id or --all, not both",
            ));
        }
        (None, false) => {
            return Err(CommandError::usage(
                "which release? give its id (see `backout status`) or --all",
            ));
        }
    };
    ctx.with_store(|store| async move {
        let options = WatchOptions {
            actor: ctx.actor(),
            all: args.all,
            concurrency: args.concurrency.max(1),
            ..WatchOptions::default()
        };
        let resolver = Arc::new(backout_core::env::Resolver::from_env());
        let mut watcher = Watcher::new(
            store.clone(),
            resolver,
            ctx.clock(),
            options,
            &ids,
        )
        .await?;
        if args.all {
            eprintln!(
                "watching {} open release(s) and any that start; Ctrl-C stops",
                watcher.len()
            );
        }
        let live = args.format == LintFormat::Human
            && !args.all
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        let mut view = view::LiveView::default();
        let mut last = None;
        let (execute, mut asked, mut approved_automatically) = (args.execute, false, false);
        let who = ctx.actor();
        let all = args.all;
        let format = args.format;
        watcher
            .run(interrupted(), |round| {
                let verdict = round.verdict();
                match format {
                    LintFormat::Json if all && !round.verdict_changed => {}
                    LintFormat::Json => {
                        if let Ok(text) = serde_json::to_string(&round.report()) {
                            output::out(&format!("{text}\n"));
                        }
                    }
                    LintFormat::Human if all => {
                        if round.verdict_changed {
                            let t = round.tracker;
                            output::out(&format!(
                                "{} {} {} {} {}",
                                utc(round.now_ms),
                                t.release_id,
                                t.service,
                                t.version,
                                view::verdict_line(&round.report())
                            ));
                        }
                    }
                    LintFormat::Human if live => {
                        let t = round.tracker;
                        let window = match t.closes_at_ms() {
                            _ if t.window_closed(round.now_ms) => "window closed".to_string(),
                            Some(c) => format!(
                                "window open until {} ({} left)",
                                utc(c),
                                left(c - round.now_ms)
                            ),
                            None => "no window: a rollback is possible at any time".into(),
                        };
                        let header = format!(
                            "release {}  {} {}  {window}  (updated {})",
                            t.release_id,
                            t.service,
                            t.version,
                            utc(round.now_ms)
                        );
                        output::out(&view.frame(&header, &round.report(), round.now_ms));
                    }
                    LintFormat::Human => output::out(&view::log_lines(
                        &round.report(),
                        round.verdict_changed,
                        round.now_ms,
                    )),
                }
                last = Some(verdict);
                let d = round.decisions;
                if execute && verdict == Verdict::RollbackRequired {
                    if d.approved_at_ms.is_some() && d.executions.is_empty() {
                        approved_automatically = d.approved_by(decide::AUTOMATIC);
                        return std::ops::ControlFlow::Break(());
                    }
                    if !asked && d.approved_at_ms.is_none() {
                        asked = true;
                        eprintln!(
                            "rollback required: waiting for a decision (`backout decide {} approve --reason …`); this watch executes it once approved",
                            round.tracker.release_id
                        );
                    }
                    return std::ops::ControlFlow::Continue(());
                }
                if execute && verdict == Verdict::Inconclusive {
                    // A person should look; the loop keeps watching for a verdict.
                    return std::ops::ControlFlow::Continue(());
                }
                // Degrading is printed (and notified) but needs no action yet: keep watching.
                if !all && !matches!(verdict, Verdict::Healthy | Verdict::Degrading) {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .await?;
        if execute && last == Some(Verdict::RollbackRequired) {
            return execute_and_verify(ctx, &store, &ids[0], &who, approved_automatically).await;
        }
        Ok(match (all, last) {
            (false, Some(verdict)) => exit_for(verdict),
            _ => ExitCode::Ok,
        })
    })
}

/// The end of `watch --execute`: the approved rollback runs (as `backout:automatic` when a
/// criterion approved it, else as the watching user, who must be a performer), then
/// `verify_after` must hold.
async fn execute_and_verify(
    ctx: &Context,
    store: &Arc<dyn backout_store::Store>,
    release_id: &str,
    who: &str,
    automatic: bool,
) -> Result<ExitCode, CommandError> {
    let performer = if automatic { decide::AUTOMATIC } else { who };
    eprintln!("release {release_id}: the rollback is approved; executing it as {performer}");
    let (code, _) = run_release(
        ctx,
        store,
        release_id,
        performer,
        None,
        Watching {
            format: crate::cli::RunFormat::Human,
            wait: true,
            prompter: None,
        },
    )
    .await?;
    Ok(code)
}

fn exit_for(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::RollbackRequired => ExitCode::RollbackRequired,
        Verdict::Inconclusive => ExitCode::Inconclusive,
        // Degrading is a warning, not yet a verdict that needs action: exit codes stay as
        // they were (4 only for inconclusive).
        Verdict::Degrading | Verdict::Success | Verdict::Healthy => ExitCode::Ok,
        // A closed window refuses rollbacks: say so in the exit code too.
        Verdict::Closed => ExitCode::Refused,
    }
}

/// `status rel-…`: window, checkpoints and the plan guarding the release.
pub fn status(
    release_id: &str,
    format: LintFormat,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| {
        remote::status(r, release_id, format, ctx.now())
    }) {
        return done;
    }
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        // The verdict and criteria as the journal has them: status measures nothing.
        let status = release::status(store.as_ref(), release_id, ctx.now()).await?;
        if format == LintFormat::Json {
            output::out(&format!("{}\n", output::json(&status.to_json())?));
        } else {
            let (declared, no_return) = match backout_model::lint(&status.release.plan_source).plan
            {
                Some(plan) => (
                    plan.release.checkpoints.clone(),
                    plan.window
                        .given()
                        .and_then(|w| w.closes_at_checkpoint.clone()),
                ),
                None => (Vec::new(), None),
            };
            output::out(&format!(
                "{}  {}\n",
                status.release.id,
                status.outcome.as_str()
            ));
            let text = describe(
                &status.release,
                &declared,
                no_return.as_deref(),
                status.report.as_ref(),
                status.decision.as_deref(),
                status.now_ms,
            );
            output::out(&text);
        }
        Ok(ExitCode::Ok)
    })
}

/// `status REL` for people: `declared` are the plan's checkpoints, `no_return` the one that
/// closes the window.
fn describe(
    release: &Release,
    declared: &[String],
    no_return: Option<&str>,
    report: Option<&release::CheckReport>,
    decision: Option<&str>,
    now_ms: i64,
) -> String {
    let mut out = format!(
        "release {}  {} {} → {} ({})\n",
        release.id, release.service, release.version, release.rollback_to, release.environment
    );
    out.push_str(&format!(
        "  started by {} at {}, plan hash {}\n",
        release.actor,
        utc(release.opened_at_ms),
        short(&release.plan_hash)
    ));
    let window = match (release.state, release.closes_at_ms) {
        (ReleaseState::Closed, _) => format!(
            "closed at {}: {}",
            release.closed_at_ms.map_or("?".into(), utc),
            release.close_reason.as_deref().unwrap_or("closed")
        ),
        (ReleaseState::Open, Some(t)) if now_ms >= t => {
            format!("closed at {} (its time ran out)", utc(t))
        }
        (ReleaseState::Open, Some(t)) => {
            format!("open until {} ({} left)", utc(t), left(t - now_ms))
        }
        (ReleaseState::Open, None) => "not applicable: a rollback is possible at any time".into(),
    };
    out.push_str(&format!("  window: {window}\n"));
    if !declared.is_empty() {
        out.push_str("  checkpoints:\n");
        for name in declared {
            let mark = if no_return == Some(name.as_str()) {
                "  (point of no return)"
            } else {
                ""
            };
            match release.checkpoints.iter().find(|c| &c.name == name) {
                Some(c) => out.push_str(&format!(
                    "    ✓ {name} at {} by {}{mark}\n",
                    utc(c.at_ms),
                    c.actor
                )),
                None => out.push_str(&format!("    · {name}{mark}\n")),
            }
        }
    }
    match report {
        Some(report) if !report.criteria.is_empty() => {
            out.push_str(&format!(
                "  criteria (as last measured; `backout check {}` measures now):\n",
                release.id
            ));
            out.push_str(&view::table(report, now_ms, "  "));
        }
        Some(report) => out.push_str(&format!("  {}", view::verdict_line(report))),
        None => {}
    }
    if let Some(decision) = decision {
        out.push_str(&format!("  decision: {decision}\n"));
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `accept PLAN`: the deployment engineer (or, through a server, an admin) accepts the plan's
/// exact content; see `backout_core::release::accept`.
pub fn accept(args: &AcceptArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    if let Some(done) = crate::remote::run(&ctx.global, |remote| {
        let source = source.clone();
        async move {
            let accepted: backout_api::Accepted = remote
                .post_as(
                    "acceptance",
                    "/api/v1/plans/accept",
                    &backout_api::AcceptRequest { plan: source },
                )
                .await?;
            eprintln!(
                "{}: content {} accepted by {}",
                args.plan.display(),
                short(&accepted.plan_hash),
                accepted.accepted_by
            );
            Ok(ExitCode::Ok)
        }
    }) {
        return done;
    }
    ctx.with_store(|store| async move {
        let accepted =
            release::accept::accept(store.as_ref(), &source, &ctx.actor(), false, ctx.now())
                .await?;
        eprintln!(
            "{}: content {} accepted by {}",
            args.plan.display(),
            short(&accepted.plan_hash),
            accepted.actor
        );
        Ok(ExitCode::Ok)
    })
}
