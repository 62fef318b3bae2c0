//! `decide` and `execute` against a server (`BACKOUT_SERVER`): the API decides and carries out
//! the rollback as the token's user; `execute` follows the run the server carries out, step by
//! step, through the same progress printer as a local run, and exits exactly as locally.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use backout_core::release::decide::{Choice, Decided};
use backout_core::{Progress, ProgressEvent, RunSummary};
use backout_model::plan::StepKind;
use backout_store::{RunState, StepRecord, StepState};
use serde_json::json;

use crate::cli::{DecideArgs, ExecuteArgs, RunFormat};
use crate::commands::context::Context;
use crate::commands::shared::execution::finish_with;
use crate::commands::shared::progress::{interactive, printer, run_steps, spawn_prompter_with};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use crate::remote::{Remote, convert, segment};

/// A release's resource in the API.
fn release_path(id: &str, rest: &str) -> String {
    format!("/api/v1/releases/{}{rest}", segment(id))
}

/// How often `execute` reads the run it follows.
const FOLLOW_POLL: StdDuration = StdDuration::from_millis(250);

pub(super) async fn decide(
    remote: Remote,
    args: &DecideArgs,
    choice: Choice,
) -> Result<ExitCode, CommandError> {
    let value = remote
        .post(
            &release_path(&args.release, "/decisions"),
            json!({
                "decision": choice.as_str(),
                "reason": args.reason,
                "override_window": args.override_window,
            }),
        )
        .await?;
    let decided = Decided {
        approvals: value["approvals"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        quorum: value["quorum"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
        approved: value["approved"].as_bool().unwrap_or(false),
        as_fallback: value["as_fallback"].as_bool().unwrap_or(false),
        override_window: value["override_window"].as_bool().unwrap_or(false),
    };
    let actor = value["actor"].as_str().unwrap_or("the token's user");
    super::announce_decision(&args.release, actor, choice, &decided, args.format);
    Ok(ExitCode::Ok)
}

/// `execute REL`: the server starts the approved rollback as the token's user; this follows
/// the run until it ends (0, 6) or waits for a person (7; with `--wait`, until it ends).
pub(super) async fn execute(
    remote: Remote,
    args: &ExecuteArgs,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    let body = args.workaround.as_ref().map(|w| json!({ "workaround": w }));
    let started = remote
        .call(
            reqwest::Method::POST,
            &release_path(&args.release, "/execute"),
            body,
        )
        .await?;
    let run_id = started["run_id"]
        .as_str()
        .ok_or_else(|| CommandError::internal("the server did not say which run it started"))?
        .to_string();
    if started["override_window"].as_bool() == Some(true) {
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
    let run = remote
        .get(&format!("/api/v1/runs/{}", segment(run_id)))
        .await?;
    let hold = run["plan_source"]
        .as_str()
        .and_then(|source| backout_model::lint(source).plan)
        .and_then(|plan| plan.procedure.given().and_then(|p| p.verify_after.clone()))
        .map_or(0, |v| v.hold.as_millis());
    // The server gives up after three holds; allow for its measurement cadence on top.
    let limit = std::time::Duration::from_millis(3 * hold) + std::time::Duration::from_secs(30);
    let start = std::time::Instant::now();
    let mut value = remote.get(&path).await?;
    loop {
        match value["outcome"].as_str() {
            Some("rolled_back") => {
                eprintln!(
                    "release {release_id}: rolled back and verified (procedure.verify_after held)"
                );
                return Ok(ExitCode::Ok);
            }
            Some("rollback_unverified") => {
                output::error(&format!(
                    "release {release_id}: the rollback ran but did not verify; see `backout status {release_id}`"
                ));
                return Ok(ExitCode::RunFailed);
            }
            Some("rollback_failed") => return Ok(ExitCode::RunFailed),
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
        value = remote.get(&path).await?;
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
    let path = format!(
        "/api/v1/runs/{}/steps/{}/confirm",
        segment(run_id),
        segment(step)
    );
    let body = match note {
        Some(note) => json!({ "note": note }),
        None => json!({}),
    };
    crate::remote::run(&ctx.global, |remote| async move {
        remote.post(&path, body).await.map(drop)
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
    let path = format!("/api/v1/runs/{}", segment(run_id));
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
