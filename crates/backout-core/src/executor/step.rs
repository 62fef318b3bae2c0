//! One step of a run through its attempts: the runner, `verify`, retries with their delay, and
//! the final record the scheduling loop commits. Everything here happens after the step's
//! `running` record was committed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backout_model::plan::Step;
use backout_store::{NewEvent, StepRecord, StepState, Store};
use serde_json::json;

use super::{Context, Progress, ProgressEvent};
use crate::clock::Clock;
use crate::errors::ExecError;
use crate::process::{GroupIdentity, SpawnHook};
use crate::runner::{self, Outcome};

/// A step's final state, to be committed by the scheduling loop with what it unblocks.
pub(super) struct Finished {
    pub record: StepRecord,
    pub event: NewEvent,
    pub progress: ProgressEvent,
}

/// Runs one step through its attempts. The first attempt's `running` record was committed by the
/// loop; a retry commits the failed attempt and the next `running` together before starting it.
/// The final record is returned, not written: the loop commits it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn execute_step(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    progress: Arc<dyn Progress>,
    context: Arc<Context>,
    step: Step,
    mut record: StepRecord,
    outputs: BTreeMap<String, String>,
    actor: String,
) -> Result<Finished, ExecError> {
    let run_id = context.run_id.clone();
    let expected_ms = step.expected.map(|e| e.as_millis());
    // `retries` bounds the automatic attempts (1 + retries in all, also across a crash and
    // resume); a person's `resolve … retry` beyond that still gets its one run.
    let last_attempt = record.attempt.max(step.retries + 1);
    loop {
        let attempt = record.attempt;
        let started = record.started_at_ms.unwrap_or_else(|| clock.now_ms());
        let hook = spawn_hook(&store, &context, &record, &actor, clock.clone());
        let outcome = attempt_step(
            &context,
            &step,
            attempt,
            started,
            &outputs,
            clock.as_ref(),
            hook,
        )
        .await;
        let finished = clock.now_ms();
        record.finished_at_ms = Some(finished);
        record.updated_at_ms = finished;
        record.exit_status = outcome.exit_status;
        record.pgid = outcome.pgid;
        record.stdout = context.redactor.redact(&outcome.stdout);
        record.stderr = context.redactor.redact(&outcome.stderr);
        let detail = context.redactor.redact(&outcome.detail);
        record.note = Some(detail.clone());
        let elapsed_ms = u64::try_from(finished - started).unwrap_or(0);
        if outcome.ok {
            // Outputs are stored, shown and passed on redacted, like the output they come from.
            let value = record.stdout.trim_end_matches(['\n', '\r']).to_string();
            record.outputs = step
                .outputs
                .iter()
                .map(|name| (name.clone(), value.clone()))
                .collect();
            record.state = StepState::Succeeded;
            let event = NewEvent::new("step_succeeded", &actor, finished)
                .run(&run_id)
                .step(&step.id)
                .payload(json!({ "attempt": attempt, "detail": detail, "elapsed_ms": elapsed_ms }));
            let progress = ProgressEvent::StepFinished {
                step: step.id.clone(),
                state: StepState::Succeeded,
                detail,
                elapsed_ms,
                expected_ms,
                counted: None,
            };
            return Ok(Finished {
                record,
                event,
                progress,
            });
        }
        if attempt < last_attempt && !outcome.cancelled {
            progress.event(&ProgressEvent::StepRetrying {
                step: step.id.clone(),
                attempt,
                detail: detail.clone(),
            });
            // Pending, not failed, while the retry waits: after a crash in the delay, resume runs
            // the next attempt instead of taking this one for the final failure.
            record.state = StepState::Pending;
            record.note = Some(format!(
                "attempt {attempt} failed ({detail}); retrying after {}",
                step.retry_delay
            ));
            let event = NewEvent::new("step_attempt_failed", &actor, finished)
                .run(&run_id)
                .step(&step.id)
                .payload(json!({ "attempt": attempt, "detail": detail }))
                .fenced(context.fence.clone());
            store.record_step(&record, &event).await?;
            tokio::time::sleep(step.retry_delay.0).await;
            let now = clock.now_ms();
            record.state = StepState::Running;
            record.attempt = attempt + 1;
            record.started_at_ms = Some(now);
            record.finished_at_ms = None;
            record.updated_at_ms = now;
            record.note = None;
            let event = NewEvent::new("step_started", &actor, now)
                .run(&run_id)
                .step(&step.id)
                .payload(json!({ "attempt": attempt + 1 }))
                .fenced(context.fence.clone());
            store.record_step(&record, &event).await?;
            progress.event(&ProgressEvent::StepStarted {
                step: step.id.clone(),
                attempt: attempt + 1,
                expected_ms,
            });
            continue;
        }
        record.state = if outcome.cancelled {
            StepState::Aborted
        } else {
            StepState::Failed
        };
        let asks = step.on_failure == backout_model::plan::OnFailure::Ask;
        let kind = if outcome.cancelled {
            "step_aborted"
        } else if asks {
            // The run waits for a performer: retry, skip or abort.
            "step_failed_waiting"
        } else {
            "step_failed"
        };
        let event = NewEvent::new(kind, &actor, finished)
            .run(&run_id)
            .step(&step.id)
            .payload(
                json!({ "attempt": attempt, "detail": detail, "timed_out": outcome.timed_out }),
            );
        let progress = ProgressEvent::StepFinished {
            step: step.id.clone(),
            state: record.state,
            detail,
            elapsed_ms,
            expected_ms,
            counted: None,
        };
        return Ok(Finished {
            record,
            event,
            progress,
        });
    }
}

/// Records the process group of a command attempt right after its spawn (`step_process`, the
/// `running` record with its pgid), so a resume after a crash stops exactly that group.
fn spawn_hook(
    store: &Arc<dyn Store>,
    context: &Arc<Context>,
    record: &StepRecord,
    actor: &str,
    clock: Arc<dyn Clock>,
) -> SpawnHook {
    let (store, fence, actor) = (store.clone(), context.fence.clone(), actor.to_string());
    let record = record.clone();
    Arc::new(move |identity: GroupIdentity| {
        let (store, fence, actor, clock) =
            (store.clone(), fence.clone(), actor.clone(), clock.clone());
        let mut record = record.clone();
        Box::pin(async move {
            record.pgid = Some(identity.pgid);
            record.updated_at_ms = clock.now_ms();
            let event = NewEvent::new("step_process", &actor, record.updated_at_ms)
                .run(&record.run_id)
                .step(&record.step_id)
                .payload(json!({ "attempt": record.attempt, "group": identity }))
                .fenced(fence);
            // Needed after a crash of the executor, never after the machine's (its processes
            // are gone with it): durable against `kill -9`, not necessarily fsynced.
            store
                .record_process(&record, &event)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// One attempt: the step's runner, then its `verify` within what is left of the timeout.
async fn attempt_step(
    context: &Context,
    step: &Step,
    attempt: u32,
    started: i64,
    outputs: &BTreeMap<String, String>,
    clock: &dyn Clock,
    spawned: SpawnHook,
) -> Outcome {
    let mut inv = context.invocation(Some(step), attempt, step.timeout.map(|t| t.0), outputs);
    inv.spawned = Some(spawned);
    for (k, v) in &step.env {
        match context.resolver.resolve(v) {
            Ok(v) => inv.env.push((k.clone(), v)),
            Err(e) => return Outcome::failed(e.to_string()),
        }
    }
    // A rehearsal environment's `env` wins over the step's own: it never reaches production.
    inv.env.extend(context.overrides.iter().cloned());
    let Some(runner) = runner::for_step(&step.kind, &context.plan) else {
        return Outcome::failed("manual steps are confirmed by a person, not run");
    };
    let mut outcome = runner.run(inv).await;
    if outcome.ok
        && let Some(verify) = &step.verify
    {
        let spent = Duration::from_millis(u64::try_from(clock.now_ms() - started).unwrap_or(0));
        let remaining = step
            .timeout
            .map_or(Duration::from_secs(60), |t| t.0.saturating_sub(spent));
        let check = runner::for_check(verify, &context.plan)
            .run(context.invocation(Some(step), attempt, Some(remaining), outputs))
            .await;
        if !check.ok {
            outcome.ok = false;
            outcome.detail = format!("verify failed: {}", check.detail);
        }
    }
    outcome
}
