//! `backout gameday`: a drill of the whole loop on a practice release. It opens the drill
//! (`backout_core::drill::open`), injects the fault (`--break`), and lets the real loop run:
//! this process watches the criteria (sharing the release with a server through its lease,
//! so a `serve` on the same store may watch it instead), and people decide and execute as in
//! an incident; with `--auto`, `backout:gameday` approves and executes. At the end `--heal`
//! runs (always), the legs are read from the journal and journaled as `gameday_reported`.
//! It must not time anything itself: every number comes from journaled events.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use backout_core::clock::SystemClock;
use backout_core::drill::{self, Legs, Report};
use backout_core::executor::LeaseSettings;
use backout_core::release::decide::{self, Choice, Decide, Outcome};
use backout_core::release::{WatchOptions, Watcher};
use backout_store::{NewEvent, Release, Store, StoreError};
use serde_json::json;

use crate::cli::{GamedayArgs, LintFormat, RunFormat};
use crate::commands::context::Context;
use crate::commands::shared::execution::{Watching, interrupted, run_release};
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// How often the journal is read for the loop's progress.
const POLL: Duration = Duration::from_millis(200);

pub fn gameday(args: &GamedayArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    let Some(plan) = linted.plan else {
        return Err(CommandError::usage(format!(
            "`{}` has {} error(s); run `backout lint {}` and fix them first",
            args.plan.display(),
            linted.errors(),
            args.plan.display()
        )));
    };
    let timeout = backout_model::Duration::parse(&args.timeout).ok_or_else(|| {
        CommandError::usage(format!(
            "--timeout {}: expected a duration like 30m or 1h30m",
            args.timeout
        ))
    })?;
    if args.break_command.trim().is_empty() {
        return Err(CommandError::usage(
            "--break needs the command that injects the fault (e.g. 'systemctl stop checkout')",
        ));
    }
    if args.env == plan.release.environment {
        output::warn(&format!(
            "the game day runs in `{}`, the environment the plan's releases target: the fault \
             is real there. The drill is still labelled DRILL and never counts as a release",
            args.env
        ));
    }
    ctx.with_store(|store| async move {
        let who = ctx.actor();
        let release = drill::open(
            store.as_ref(),
            &drill::OpenDrill {
                source: &source,
                environment: &args.env,
                actor: &who,
                at_ms: ctx.now(),
                break_command: &args.break_command,
                heal_command: args.heal_command.as_deref(),
                auto: args.auto,
            },
        )
        .await?;
        eprintln!(
            "DRILL: game day release {} of {} {} in {}{}",
            release.id,
            release.service,
            release.version,
            release.environment,
            if args.auto {
                " (unattended: backout:gameday approves and executes)"
            } else {
                "; deciders and performers act as in an incident"
            }
        );
        let deadline = ctx.now() + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 4);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let drive = async {
            let outcome = tokio::select! {
                outcome = drive(ctx, &store, &release, &who, args, deadline) => outcome,
                () = interrupted() => Ok("interrupted".to_string()),
            };
            let _ = stop.send(());
            outcome
        };
        let (watched, outcome) = tokio::join!(watch(&store, &release.id, stopped), drive);
        if let Err(e) = watched {
            output::warn(&format!(
                "the drill's criteria watcher stopped: {e}; the legs come from the journal"
            ));
        }
        // Heal always, whatever happened: the environment must not stay broken.
        let heal_exit_code = match &args.heal_command {
            Some(heal) => {
                eprintln!("DRILL: healing: {heal}");
                let code = shell(heal, &release).await;
                if code != Some(0) {
                    output::warn(&format!(
                        "--heal exited with {}; check the environment `{}` by hand",
                        code.map_or("a signal".to_string(), |c| c.to_string()),
                        release.environment
                    ));
                }
                code
            }
            None => None,
        };
        let outcome = outcome?;
        let report = conclude(
            ctx,
            &store,
            &release,
            &source,
            &who,
            &outcome,
            heal_exit_code,
        )
        .await?;
        print(&report, args.format);
        Ok(if report.legs.complete() {
            ExitCode::Ok
        } else {
            ExitCode::RunFailed
        })
    })
}

/// The fault, then the loop until the rollback verified, failed or did not verify, the
/// deadline passed or the window closed; with `--auto`, the approval and execution too.
/// Returns how the game day ended.
async fn drive(
    ctx: &Context,
    store: &Arc<dyn Store>,
    release: &Release,
    who: &str,
    args: &GamedayArgs,
    deadline: i64,
) -> Result<String, CommandError> {
    let started = ctx.now();
    let code = shell(&args.break_command, release).await;
    let finished = ctx.now();
    store
        .append_event(&drill::fault_injected(
            &release.id,
            who,
            &args.break_command,
            started,
            finished,
            code,
        ))
        .await?;
    if code != Some(0) {
        output::error(&format!(
            "DRILL: --break exited with {}: no fault was injected as planned",
            code.map_or("a signal".to_string(), |c| c.to_string())
        ));
        return Ok("break_failed".into());
    }
    eprintln!(
        "DRILL: fault injected ({}); waiting for the criteria",
        args.break_command
    );
    let (mut asked, mut approved) = (false, false);
    loop {
        let loaded = decide::load(store.as_ref(), &release.id).await?;
        let d = &loaded.decisions;
        match d.rollback {
            Some(Outcome::RolledBack) => return Ok("rolled_back".into()),
            Some(Outcome::RollbackUnverified) => return Ok("rollback_unverified".into()),
            Some(Outcome::RollbackFailed) => return Ok("rollback_failed".into()),
            _ => {}
        }
        let at = ctx.now();
        if d.rollback.is_none() && loaded.release.window_closed(at) {
            return Ok("window_closed".into());
        }
        if at >= deadline {
            return Ok("timed_out".into());
        }
        if d.pending_since_ms.is_some() && d.approved_at_ms.is_none() && !asked {
            asked = true;
            eprintln!(
                "DRILL: rollback required{}",
                if args.auto {
                    ": approving as backout:gameday".to_string()
                } else {
                    format!(
                        "; the deciders are asked (`backout decide {} approve --reason …`)",
                        release.id
                    )
                }
            );
        }
        if args.auto && d.pending_since_ms.is_some() && d.approved_at_ms.is_none() {
            decide::decide(
                store.as_ref(),
                &Decide {
                    release_id: &release.id,
                    actor: decide::GAMEDAY,
                    choice: Choice::Approve,
                    reason: "game day --auto: an unattended drill approves itself",
                    override_window: false,
                    now_ms: ctx.now(),
                },
            )
            .await?;
            continue;
        }
        if d.approved_at_ms.is_some() && d.executions.is_empty() && !approved {
            approved = true;
            if !args.auto {
                eprintln!(
                    "DRILL: approved; a performer starts it (`backout execute {}`)",
                    release.id
                );
            }
        }
        if args.auto && d.approved_at_ms.is_some() && d.executions.is_empty() {
            eprintln!("DRILL: executing as {}", decide::GAMEDAY);
            if let Err(e) = run_release(
                ctx,
                store,
                &release.id,
                decide::GAMEDAY,
                None,
                Watching {
                    format: RunFormat::Human,
                    wait: false,
                    prompter: None,
                },
            )
            .await
            {
                output::error(&format!("DRILL: the execution did not run: {}", e.message));
                return Ok("execution_refused".into());
            }
            continue;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Watches the drill's criteria until `stopped`, under the release's lease: when a server
/// already watches it, this watcher leaves it to the server.
async fn watch(
    store: &Arc<dyn Store>,
    release_id: &str,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), backout_core::ExecError> {
    let options = WatchOptions {
        lease: Some(LeaseSettings {
            owner: format!("gameday:{}:{release_id}", std::process::id()),
            ttl: Duration::from_secs(15),
        }),
        ..WatchOptions::default()
    };
    let resolver = Arc::new(backout_core::env::Resolver::from_env());
    let mut watcher = Watcher::new(
        store.clone(),
        resolver,
        Arc::new(SystemClock),
        options,
        &[release_id.to_string()],
    )
    .await?;
    watcher
        .run(
            async {
                let _ = stopped.await;
            },
            |_| ControlFlow::Continue(()),
        )
        .await
}

/// Runs `command` with `sh -c` in backout's environment plus the drill's service and
/// environment (`BACKOUT_SERVICE`, `BACKOUT_ENVIRONMENT`); its exit code (`None`: it could not
/// run or a signal ended it).
async fn shell(command: &str, release: &Release) -> Option<i32> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("BACKOUT_SERVICE", &release.service)
        .env("BACKOUT_ENVIRONMENT", &release.environment)
        .stdin(std::process::Stdio::null())
        .status()
        .await;
    match status {
        Ok(status) => status.code(),
        Err(e) => {
            output::error(&format!("cannot run `sh -c {command}`: {e}"));
            None
        }
    }
}

/// Closes the drill's window if the loop left it open, reads the legs from the journal and
/// journals them as `gameday_reported`.
async fn conclude(
    ctx: &Context,
    store: &Arc<dyn Store>,
    release: &Release,
    source: &str,
    who: &str,
    outcome: &str,
    heal_exit_code: Option<i32>,
) -> Result<Report, CommandError> {
    let reason = format!("game day over: {outcome}");
    let close = NewEvent::new("window_closed", who, ctx.now())
        .payload(json!({ "reason": reason, "drill": true }))
        .release(&release.id);
    match store
        .close_release(&release.id, ctx.now(), &reason, &close)
        .await
    {
        Ok(_) | Err(StoreError::Invalid { .. }) => {}
        Err(e) => return Err(backout_core::ExecError::from(e).into()),
    }
    let mut events = Vec::new();
    backout_core::release::for_each_event(store.as_ref(), &release.id, |e| {
        events.push(e.clone());
    })
    .await?;
    let (start_within, expected) = backout_model::lint(source)
        .plan
        .map_or((None, None), |p| drill::budgets(&p));
    let report = Report {
        release_id: release.id.clone(),
        service: release.service.clone(),
        environment: release.environment.clone(),
        plan_hash: release.plan_hash.clone(),
        at_ms: ctx.now(),
        by: who.to_string(),
        legs: Legs::from_events(&events, start_within, expected),
        outcome: outcome.to_string(),
        heal_exit_code,
    };
    store.append_event(&drill::reported(&report)).await?;
    Ok(report)
}

fn print(report: &Report, format: LintFormat) {
    if format == LintFormat::Json {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        value["legs"] = report.legs.to_json();
        value["summary"] = report.legs.summary().into();
        value["complete"] = report.legs.complete().into();
        output::out(&format!("{value}\n"));
        return;
    }
    let mut text = format!(
        "DRILL game day {} of {} in {}: {}\n",
        report.release_id, report.service, report.environment, report.outcome
    );
    let legs = &report.legs;
    let rows = [
        ("fault → detection", &legs.fault, &legs.detected),
        ("detection → decision", &legs.detected, &legs.decided),
        ("decision → start", &legs.decided, &legs.started),
        ("start → finished", &legs.started, &legs.finished),
        ("finished → verified", &legs.finished, &legs.verified),
    ];
    for ((name, from, to), duration) in rows.iter().zip(legs.durations()) {
        let took = duration.map_or("not reached".to_string(), drill::human);
        let detail = match (from, to) {
            (Some(_), Some(to)) if !to.what.is_empty() => {
                format!("  by {} ({})", to.by, to.what)
            }
            (Some(_), Some(to)) => format!("  by {}", to.by),
            _ => String::new(),
        };
        text.push_str(&format!("  {name:<22} {took:>12}{detail}\n"));
    }
    text.push_str(&format!("  {}\n", legs.summary()));
    output::out(&text);
}

/// `backout report PLAN --drills`: every game day of the plan's service, oldest first, one row
/// each with its five legs, then whether each leg got faster or slower from the first to the
/// latest game day that measured it.
pub fn trend(args: &crate::cli::ReportArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let path = std::path::Path::new(&args.run);
    let source = read_plan(path).map_err(CommandError::usage)?;
    let Some(plan) = backout_model::lint(&source).plan else {
        return Err(CommandError::usage(format!(
            "`{}` does not lint; run `backout lint {}` and fix it first",
            args.run, args.run
        )));
    };
    let service = plan.release.service.clone();
    let reports = ctx.runtime()?.block_on(async {
        match ctx.open_existing().await? {
            Some(store) => {
                Ok::<_, CommandError>(drill::reports_of(store.as_ref(), &service).await?)
            }
            None => Ok(Vec::new()),
        }
    })?;
    if args.format == crate::cli::ReportFormat::Json {
        let rows: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut value = serde_json::to_value(r).unwrap_or_default();
                value["legs"] = r.legs.to_json();
                value["summary"] = r.legs.summary().into();
                value
            })
            .collect();
        output::out(&format!("{}\n", serde_json::Value::from(rows)));
        return Ok(ExitCode::Ok);
    }
    if reports.is_empty() {
        output::out(&format!(
            "no game day of {service} on record; run one with `backout gameday {} --env ENV --break CMD`\n",
            args.run
        ));
        return Ok(ExitCode::Ok);
    }
    let mut text = format!("game days of {service} (DRILLS), oldest first\n");
    text.push_str(&format!(
        "{:<20}  {:<10}  {:<20}  {:>11}  {:>11}  {:>11}  {:>11}  {:>12}\n",
        "when", "env", "outcome", "detection", "decision", "start", "procedure", "verification"
    ));
    let show = |d: Option<i64>| d.map_or("-".to_string(), drill::human);
    for r in &reports {
        let [a, b, c, d, e] = r.legs.durations();
        text.push_str(&format!(
            "{:<20}  {:<10}  {:<20}  {:>11}  {:>11}  {:>11}  {:>11}  {:>12}\n",
            backout_core::time::utc(r.at_ms),
            r.environment,
            r.outcome,
            show(a),
            show(b),
            show(c),
            show(d),
            show(e)
        ));
    }
    for (i, name) in drill::LEG_NAMES.iter().enumerate() {
        let measured: Vec<i64> = reports
            .iter()
            .filter_map(|r| r.legs.durations()[i])
            .collect();
        if let ([first, .., last], true) = (measured.as_slice(), measured.len() >= 2) {
            // Within a tenth of the first measurement is noise, not a trend.
            let word = if (last - first).abs() <= first / 10 {
                "about the same"
            } else if last < first {
                "faster"
            } else {
                "slower"
            };
            text.push_str(&format!(
                "{name}: {word} ({} → {} over {} game days)\n",
                drill::human(*first),
                drill::human(*last),
                measured.len()
            ));
        }
    }
    output::out(&text);
    Ok(ExitCode::Ok)
}
