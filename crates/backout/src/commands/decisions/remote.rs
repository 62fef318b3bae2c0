//! `decide` and `execute` against a server (`BACKOUT_SERVER`): the API decides and carries out
//! the rollback as the token's user; `execute` follows the run the server carries out, step by
//! step, through the same progress printer as a local run, and exits exactly as locally.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use backout_api as api;
use backout_core::release::decide::{Choice, Decided};
use backout_core::{Progress, ProgressEvent, RunSummary};
use backout_model::plan::StepKind;
use backout_store::{RunState, StepRecord, StepState};

use crate::cli::{DecideArgs, ExecuteArgs, RunFormat};
use crate::commands::context::Context;
use crate::commands::shared::execution::finish_with;
use crate::commands::shared::progress::{interactive, printer, run_steps, spawn_prompter_with};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use crate::remote::{Remote, body_of, convert, release_path, run_path, segment};

/// How often `execute` reads the run it follows.
const FOLLOW_POLL: StdDuration = StdDuration::from_millis(250);

pub(super) async fn decide(
    remote: Remote,
    args: &DecideArgs,
    choice: Choice,
) -> Result<ExitCode, CommandError> {
    let request = api::DecisionRequest {
        decision: match choice {
            Choice::Approve => api::DecisionChoice::Approve,
            Choice::Deny => api::DecisionChoice::Deny,
        },
        reason: args.reason.clone(),
        override_window: args.override_window,
    };
    let answer: api::Decision = remote
        .post_as(
            "decision",
            &release_path(&args.release, "/decisions"),
            &request,
        )
        .await?;
    let decided = Decided {
        approvals: usize::try_from(answer.approvals).map_err(|_| {
            convert::unexpected("decision", format!("`approvals` is {}", answer.approvals))
        })?,
        quorum: answer.quorum,
        approved: answer.approved,
        as_fallback: answer.as_fallback,
        override_window: answer.override_window,
    };
    super::announce_decision(&args.release, &answer.actor, choice, &decided, args.format);
    Ok(ExitCode::Ok)
}

/// `execute REL`: the server starts the approved rollback as the token's user; this follows
/// the run until it ends (0, 6) or waits for a person (7; with `--wait`, until it ends).
pub(super) async fn execute(
    remote: Remote,
    args: &ExecuteArgs,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    // Without a workaround the body is left out, as the API allows.
    let body = match &args.workaround {
        Some(w) => Some(body_of(&api::ExecuteRequest {
            workaround: Some(w.clone()),
        })?),
        None => None,
    };
    let started: api::Executed = convert::parse(
        "execution",
        &remote
            .call(
                reqwest::Method::POST,
                &release_path(&args.release, "/execute"),
                body,
            )
            .await?,
    )?;
    let run_id = started.run_id;
    if started.override_window {
        eprintln!(
            "WINDOW OVERRIDDEN: release {} is rolled back after its window closed, on the approval of the full quorum",
            args.release
        );
    }
    // At a terminal, a manual step is confirmed where the run is watched, as locally.
    let prompter = interactive(args.format).then(|| {
        let ctx = ctx.clone();
        spawn_prompter_with(move |run_id, step, note| confirm(&ctx, run_id, step, note))
    });
    let wait = args.wait || prompter.is_some();
    let code = follow(&remote, &run_id, args.format, wait, prompter).await?;
    if code != ExitCode::Ok {
        return Ok(code);
    }
    verified(&remote, &args.release, &run_id).await
}

/// After the run succeeded the server verifies the rollback (`procedure.verify_after`): wait
/// for the release's outcome and exit as locally (0 rolled back, 6 not verified).
async fn verified(
    remote: &Remote,
    release_id: &str,
    run_id: &str,
) -> Result<ExitCode, CommandError> {
    let path = release_path(release_id, "");
    let run: api::RunWithSteps = remote.get_as("run", &run_path(run_id, "")).await?;
    let hold = backout_model::lint(&run.plan_source)
        .plan
        .and_then(|plan| plan.procedure.given().and_then(|p| p.verify_after.clone()))
        .map_or(0, |v| v.hold.as_millis());
    // The server gives up after three holds; allow for its measurement cadence on top.
    let limit = std::time::Duration::from_millis(3 * hold) + std::time::Duration::from_secs(30);
    let start = std::time::Instant::now();
    loop {
        let status = convert::status(&remote.get(&path).await?)?;
        match status.outcome {
            api::ReleaseOutcome::RolledBack => {
                eprintln!(
                    "release {release_id}: rolled back and verified (procedure.verify_after held)"
                );
                return Ok(ExitCode::Ok);
            }
            api::ReleaseOutcome::RollbackUnverified => {
                output::error(&format!(
                    "release {release_id}: the rollback ran but did not verify; see `backout status {release_id}`"
                ));
                return Ok(ExitCode::RunFailed);
            }
            api::ReleaseOutcome::RollbackFailed => return Ok(ExitCode::RunFailed),
            _ if start.elapsed() > limit => {
                eprintln!(
                    "release {release_id}: still verifying after {}s; see `backout status {release_id}`",
                    limit.as_secs()
                );
                return Ok(ExitCode::Ok);
            }
            _ => {}
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// A confirmation typed at the prompt, through the API (a client of its own: the prompt runs
/// on its own thread).
fn confirm(
    ctx: &Context,
    run_id: &str,
    step: &str,
    note: Option<&str>,
) -> Result<(), CommandError> {
    let path = run_path(run_id, &format!("/steps/{}/confirm", segment(step)));
    let body = api::NoteRequest {
        note: note.map(str::to_string),
    };
    crate::remote::run(&ctx.global, |remote| async move {
        let _: api::RunWithSteps = remote.post_as("run", &path, &body).await?;
        Ok(())
    })
    .unwrap_or_else(|| Err(CommandError::usage("BACKOUT_SERVER is no longer set")))
}

/// Reads the run every [`FOLLOW_POLL`] and tells the progress printer what changed, as the
/// executor tells it locally.
async fn follow(
    remote: &Remote,
    run_id: &str,
    format: RunFormat,
    wait: bool,
    prompter: Option<std::sync::mpsc::Sender<(String, String)>>,
) -> Result<ExitCode, CommandError> {
    let path = run_path(run_id, "");
    let value = remote.get(&path).await?;
    let (run, _) = convert::run(&value)?;
    let plan = backout_model::lint(&run.plan_source).plan;
    let steps = plan
        .as_ref()
        .map(|p| run_steps(p, None))
        .unwrap_or_default();
    let manual: HashMap<String, (String, String)> = plan
        .iter()
        .flat_map(|p| p.all_steps())
        .filter_map(|s| match &s.kind {
            StepKind::Manual { by, instructions } => {
                Some((s.id.clone(), (by.clone(), instructions.clone())))
            }
            _ => None,
        })
        .collect();
    let expected: HashMap<String, u64> = plan
        .iter()
        .flat_map(|p| p.all_steps())
        .filter_map(|s| s.expected.map(|e| (s.id.clone(), e.as_millis())))
        .collect();
    let progress = printer(format, &steps, prompter);
    progress.event(&ProgressEvent::RunStarted {
        run_id: run_id.to_string(),
        steps: steps.len(),
        resumed: false,
    });
    let mut seen: HashMap<String, (StepState, u32)> = HashMap::new();
    loop {
        let value = remote.get(&path).await?;
        let (run, records) = convert::run(&value)?;
        for record in &records {
            tell(progress.as_ref(), record, &mut seen, &manual, &expected);
        }
        let people = records
            .iter()
            .any(|s| matches!(s.state, StepState::WaitingManual | StepState::InDoubt));
        let busy = records.iter().any(|s| s.state == StepState::Running);
        let waiting =
            run.state == RunState::Waiting || (run.state == RunState::Running && people && !busy);
        if run.state.is_terminal() || (waiting && !wait) {
            let mut summary = RunSummary {
                run,
                steps: records,
            };
            if waiting {
                summary.run.state = RunState::Waiting;
            } else {
                progress.event(&ProgressEvent::RunFinished {
                    run_id: run_id.to_string(),
                    state: summary.run.state,
                });
            }
            return Ok(finish_with(&summary, format, true));
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The progress events a step's new record stands for.
fn tell(
    progress: &dyn Progress,
    record: &StepRecord,
    seen: &mut HashMap<String, (StepState, u32)>,
    manual: &HashMap<String, (String, String)>,
    expected: &HashMap<String, u64>,
) {
    let now = (record.state, record.attempt);
    let before = seen.insert(record.step_id.clone(), now);
    if before == Some(now) {
        return;
    }
    let step = record.step_id.clone();
    let expected_ms = expected.get(&step).copied();
    let started_before = before
        .is_some_and(|(state, attempt)| attempt == record.attempt && state != StepState::Pending);
    match record.state {
        StepState::Pending => {}
        StepState::Running => progress.event(&ProgressEvent::StepStarted {
            step,
            attempt: record.attempt,
            expected_ms,
        }),
        StepState::WaitingManual => {
            let (by, instructions) = manual.get(&step).cloned().unwrap_or_default();
            progress.event(&ProgressEvent::StepWaiting {
                step,
                by,
                instructions,
            });
        }
        StepState::InDoubt => progress.event(&ProgressEvent::StepInDoubt { step }),
        state => {
            // Started and finished between two reads: it did start.
            if !started_before && record.started_at_ms.is_some() && state != StepState::Skipped {
                progress.event(&ProgressEvent::StepStarted {
                    step: step.clone(),
                    attempt: record.attempt,
                    expected_ms,
                });
            }
            let detail = record
                .note
                .clone()
                .unwrap_or_else(|| match record.exit_status {
                    Some(code) => format!("exit status {code}"),
                    None => state.to_string(),
                });
            progress.event(&ProgressEvent::StepFinished {
                step,
                state,
                detail,
                elapsed_ms: record
                    .finished_at_ms
                    .zip(record.started_at_ms)
                    .map_or(0, |(f, s)| u64::try_from(f - s).unwrap_or(0)),
                expected_ms,
                counted: None,
            });
        }
    }
}
