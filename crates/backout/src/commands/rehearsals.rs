//! `backout rehearse PLAN`: the procedure run in a test environment (with
//! `testing.overrides.<env>`), whose success is recorded as evidence; `--roundtrip` wraps it in
//! the forward deployment command run before and after; `--dry-run` only simulates (nothing
//! runs, nothing is stored, never evidence).

use backout_core::env::Resolver;
use backout_core::rehearsal::{self, Simulation, SimulationOptions};
use backout_core::{Executor, RunOptions};
use backout_model::plan::Answer;
use backout_model::{Duration, Plan};
use backout_store::{NewEvent, RoundTrip, RunKind, RunState, StepState};

use crate::cli::{RehearseArgs, RunFormat};
use crate::commands::context::Context;
use crate::commands::shared::evidence::announce;
use crate::commands::shared::execution::finish;
use crate::commands::shared::plan::{declared_checkpoints, load_plan};
use crate::commands::shared::progress::{interactive, printer, run_steps, spawn_prompter};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn rehearse(args: &RehearseArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let (source, plan, _hash) = load_plan(&args.plan)?;
    let checkpoints = checkpoints(&plan, &args.checkpoints)?;
    if args.dry_run {
        return dry_run(args, &plan, checkpoints);
    }
    backout_core::release::decide::may_rehearse(&plan, &ctx.actor())
        .map_err(CommandError::refused)?;
    let rehearse_in = plan.testing.given().map(|t| t.rehearse_in.clone());
    let Some(environment) = args.environment.clone().or_else(|| rehearse_in.clone()) else {
        return Err(CommandError::usage(
            "give the test environment with --env E (the plan's testing does not apply, so it names no rehearse_in)",
        ));
    };
    if environment == plan.release.environment {
        output::warn(&format!(
            "rehearsing in `{environment}`, the environment the release itself targets; a rehearsal belongs in a test environment"
        ));
    }
    if let Some(wanted) = &rehearse_in
        && *wanted != environment
    {
        output::warn(&format!(
            "the plan asks for rehearsals in `{wanted}` (testing.rehearse_in); evidence from `{environment}` will not answer Q9"
        ));
    }
    let extra_env = rehearsal::overrides(&plan, &environment, &Resolver::from_env())?;
    sealed(&plan, &environment, &extra_env)?;
    let mut options = RunOptions {
        kind: RunKind::Rehearsal,
        environment: environment.clone(),
        checkpoints,
        actor: ctx.actor(),
        release_id: None,
        workaround: None,
        // A round trip runs its second forward leg right after the backout: it waits for people.
        wait_for_people: args.wait || args.roundtrip.is_some(),
        extra_env: extra_env.clone(),
        break_glass: None,
    };
    let prompter = interactive(args.format).then(|| {
        options.wait_for_people = true;
        spawn_prompter(ctx)
    });
    let mut forward_env = extra_env;
    forward_env.extend([
        ("BACKOUT_SERVICE".to_string(), plan.release.service.clone()),
        (
            "BACKOUT_RELEASE_VERSION".to_string(),
            plan.release.version.clone(),
        ),
        (
            "BACKOUT_ROLLBACK_TO".to_string(),
            plan.release.rollback_to.clone(),
        ),
        ("BACKOUT_ENVIRONMENT".to_string(), environment.clone()),
    ]);
    let format = args.format;
    let clock = ctx.clock();
    ctx.with_store(|store| async move {
        let first = match &args.roundtrip {
            Some(command) => {
                let (run, out) = rehearsal::forward(command, &forward_env, || clock.now_ms()).await;
                show_forward(
                    "forward deployment (before the backout)",
                    &run,
                    &out,
                    format,
                );
                if !rehearsal::forward_ok(&run) {
                    return Err(CommandError {
                        code: ExitCode::RunFailed,
                        message: format!(
                            "round trip: the forward deployment `{command}` failed (exit {}) before the backout; nothing was rehearsed",
                            exit_text(run.exit_status)
                        ),
                    });
                }
                Some(run)
            }
            None => None,
        };
        let executor = Executor::new(
            store.clone(),
            ctx.clock(),
            Resolver::from_env(),
            printer(format, &run_steps(&plan, None), prompter),
        );
        let summary = executor.start(&source, &options).await?;
        let mut round_trip = None;
        if let (Some(command), Some(first)) = (&args.roundtrip, first)
            && summary.run.state == RunState::Succeeded
        {
            let (second, out) = rehearsal::forward(command, &forward_env, || clock.now_ms()).await;
            show_forward(
                "forward deployment (after the backout)",
                &second,
                &out,
                format,
            );
            let ok = rehearsal::forward_ok(&second);
            let trip = RoundTrip {
                command: command.clone(),
                first,
                second,
            };
            store
                .append_event(
                    &NewEvent::new(
                        if ok {
                            "round_trip_succeeded"
                        } else {
                            "round_trip_failed"
                        },
                        &options.actor,
                        ctx.now(),
                    )
                    .run(&summary.run.id)
                    .payload(serde_json::json!({ "round_trip": trip })),
                )
                .await?;
            if !ok {
                finish(&summary, format);
                return Err(CommandError {
                    code: ExitCode::RunFailed,
                    message: format!(
                        "round trip failed: the forward deployment `{command}` failed (exit {}) after the backout, so the release cannot be redeployed; no evidence recorded",
                        exit_text(trip.second.exit_status)
                    ),
                });
            }
            round_trip = Some(trip);
        }
        let evidence =
            rehearsal::conclude(store.as_ref(), &summary, &options.actor, round_trip, ctx.now())
                .await?;
        let code = finish(&summary, format);
        announce(evidence.as_ref(), &summary.run, format);
        Ok(code)
    })
}

/// Refuses a rehearsal that would reach a URL its environment does not rewrite (exit 5, naming
/// each one and the ways out), and says where its notifications go.
fn sealed(
    plan: &Plan,
    environment: &str,
    extra_env: &[(String, String)],
) -> Result<(), CommandError> {
    let mut resolver = Resolver::from_env();
    resolver.extend(extra_env.iter().cloned());
    let unsealed = rehearsal::unsealed_urls(plan, environment, &resolver);
    if !unsealed.is_empty() {
        let lines: Vec<String> = unsealed
            .iter()
            .map(|u| format!("  {}", u.describe()))
            .collect();
        return Err(CommandError {
            code: ExitCode::Refused,
            message: format!(
                "refusing to rehearse in `{environment}`: the rehearsal would reach URLs that testing.overrides.{environment}.urls does not rewrite:\n{}\nadd a rewrite for each (testing.overrides.{environment}.urls: {{\"https://prod-host\": \"https://{environment}-host\"}}), set the URL through testing.overrides.{environment}.env, or list a host every environment shares in testing.shared_hosts",
                lines.join("\n")
            ),
        });
    }
    eprintln!("{}", rehearsal::channels_said(plan, environment));
    Ok(())
}

fn exit_text(status: Option<i32>) -> String {
    status.map_or("none: it did not run to completion".into(), |c| {
        c.to_string()
    })
}

fn show_forward(what: &str, run: &backout_store::ForwardRun, out: &str, format: RunFormat) {
    if format == RunFormat::Json {
        let line = serde_json::json!({ "event": "round_trip_forward", "what": what, "run": run });
        output::out(&format!("{line}\n"));
        return;
    }
    let took =
        Duration::from_millis(u64::try_from(run.finished_at_ms - run.started_at_ms).unwrap_or(0));
    eprintln!(
        "{} {what}: exit {} in {took}",
        if rehearsal::forward_ok(run) {
            "✓"
        } else {
            "✗"
        },
        exit_text(run.exit_status)
    );
    for line in out.lines().take(20) {
        eprintln!("    {line}");
    }
}

/// The checkpoints a rehearsal assumes: the ones given (each must be declared), else every
/// declared one, so that every step is rehearsed.
fn checkpoints(plan: &Plan, given: &[String]) -> Result<Vec<String>, CommandError> {
    declared_checkpoints(plan, given)?;
    Ok(if given.is_empty() {
        plan.release.checkpoints.clone()
    } else {
        given.to_vec()
    })
}

fn dry_run(
    args: &RehearseArgs,
    plan: &Plan,
    checkpoints: Vec<String>,
) -> Result<ExitCode, CommandError> {
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        return Err(CommandError::usage(format!(
            "--speed {speed}: give a positive factor, e.g. 60 to play an hour back in a minute"
        )));
    }
    let options = SimulationOptions {
        checkpoints,
        fail: args.fail.clone(),
        workaround: None,
    };
    let simulation = rehearsal::simulate(plan, &options)?;
    if args.format == RunFormat::Json {
        output::out(&format!("{}\n", output::json(&simulation)?));
    } else {
        print_simulation(plan, &options, &simulation, args.speed);
    }
    Ok(match simulation.outcome {
        RunState::Succeeded => ExitCode::Ok,
        _ => ExitCode::RunFailed,
    })
}

fn print_simulation(
    plan: &Plan,
    options: &SimulationOptions,
    sim: &Simulation,
    speed: Option<f64>,
) {
    let r = &plan.release;
    output::out(&format!(
        "dry run of the backout of {} {} → {}: nothing runs, nothing is stored, never evidence\n",
        r.service, r.version, r.rollback_to
    ));
    output::out(&format!(
        "  checkpoints reached: {}\n",
        if options.checkpoints.is_empty() {
            "none".to_string()
        } else {
            options.checkpoints.join(", ")
        }
    ));
    if !options.fail.is_empty() {
        output::out(&format!(
            "  injected failures: {}\n",
            options.fail.join(", ")
        ));
    }
    // Each line at its simulated time: starts and ends, in time order.
    let mut lines: Vec<(u64, usize, String)> = Vec::new();
    for (i, s) in sim.steps.iter().enumerate() {
        let branch = s
            .contingency
            .as_ref()
            .map(|c| format!(" [contingency {c}]"))
            .unwrap_or_default();
        let note = if s.note.is_empty() {
            String::new()
        } else {
            format!("  ({})", s.note)
        };
        if s.state == StepState::Skipped {
            lines.push((
                s.start_ms,
                i * 2,
                format!("– {}{branch} skipped{note}", s.step_id),
            ));
            continue;
        }
        lines.push((s.start_ms, i * 2, format!("▶ {}{branch}", s.step_id)));
        let mark = if s.state == StepState::Succeeded {
            "✓"
        } else {
            "✗"
        };
        lines.push((
            s.end_ms,
            i * 2 + 1,
            format!(
                "{mark} {}{branch} {} after {}{note}",
                s.step_id,
                s.state,
                Duration::from_millis(s.end_ms - s.start_ms)
            ),
        ));
    }
    lines.sort_by_key(|(t, order, _)| (*t, *order));
    let started = std::time::Instant::now();
    for (t, _, text) in &lines {
        if let Some(speed) = speed {
            let due = std::time::Duration::from_secs_f64(*t as f64 / 1000.0 / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        output::out(&format!(
            "  +{:<9} {text}\n",
            Duration::from_millis(*t).to_string()
        ));
    }
    let total = Duration::from_millis(sim.total_ms);
    let promise = match &plan.expected_duration {
        Answer::Given(d) if total > *d => format!(" — longer than expected_duration {d}"),
        Answer::Given(d) => format!(" — within expected_duration {d}"),
        Answer::NotApplicable(_) => String::new(),
    };
    output::out(&format!(
        "outcome: {} after {total}{promise}\n",
        sim.outcome
    ));
    if !sim.not_reached.is_empty() {
        output::out(&format!("not reached: {}\n", sim.not_reached.join(", ")));
    }
}
