//! What people do to a run through the store: confirm a manual step, resolve an in-doubt one,
//! abort the run. A running executor sees these on its next poll.

use backout_store::{NewEvent, RunState, RunUpdate, StepState, Store};
use serde_json::json;

use crate::errors::ExecError;

/// The outcome a person gives an in-doubt (or waiting) step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTarget {
    /// It took effect: count it as succeeded.
    Done,
    /// It did not work: count it as failed (its on_failure applies).
    Failed,
    /// It did not happen: run it again.
    Retry,
}

/// Confirms a manual step that waits for a performer.
pub async fn confirm(
    store: &dyn Store,
    run_id: &str,
    step_id: &str,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<(), ExecError> {
    set(
        store,
        run_id,
        step_id,
        actor,
        note,
        now,
        StepTarget::Done,
        &[StepState::WaitingManual],
        "step_confirmed",
    )
    .await
}

/// Resolves an in-doubt step (or a waiting manual one) as done, failed, or to be retried.
pub async fn resolve(
    store: &dyn Store,
    run_id: &str,
    step_id: &str,
    target: StepTarget,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<(), ExecError> {
    set(
        store,
        run_id,
        step_id,
        actor,
        note,
        now,
        target,
        &[StepState::InDoubt, StepState::WaitingManual],
        "step_resolved",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn set(
    store: &dyn Store,
    run_id: &str,
    step_id: &str,
    actor: &str,
    note: Option<&str>,
    now: i64,
    target: StepTarget,
    allowed: &[StepState],
    kind: &str,
) -> Result<(), ExecError> {
    let run = store.get_run(run_id).await?;
    if run.state.is_terminal() {
        return Err(ExecError::Refused(format!(
            "run `{run_id}` already ended: {}",
            run.state
        )));
    }
    let steps = store.list_steps(run_id).await?;
    let Some(record) = steps.iter().find(|s| s.step_id == step_id) else {
        let known: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
        return Err(ExecError::Refused(format!(
            "run `{run_id}` has no step `{step_id}` (steps: {})",
            known.join(", ")
        )));
    };
    if !allowed.contains(&record.state) {
        return Err(ExecError::Refused(format!(
            "step `{step_id}` is {}, not {}",
            record.state,
            allowed
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let mut next = record.clone();
    next.state = match target {
        StepTarget::Done => StepState::Succeeded,
        StepTarget::Failed => StepState::Failed,
        StepTarget::Retry => StepState::Pending,
    };
    next.updated_at_ms = now;
    next.finished_at_ms = (target != StepTarget::Retry).then_some(now);
    if target == StepTarget::Retry {
        next.started_at_ms = None;
    }
    let verb = match target {
        StepTarget::Done => "done",
        StepTarget::Failed => "failed",
        StepTarget::Retry => "to be retried",
    };
    next.note = Some(match note {
        Some(n) => format!("{verb} by {actor}: {n}"),
        None => format!("{verb} by {actor}"),
    });
    let event = NewEvent::new(kind, actor, now)
        .run(run_id)
        .step(step_id)
        .payload(json!({ "outcome": verb, "note": note }));
    store.record_step(&next, &event).await?;
    Ok(())
}

/// Aborts a run: a running executor cancels its steps (their process groups get SIGTERM) on its
/// next poll; a waiting run simply ends.
pub async fn abort(
    store: &dyn Store,
    run_id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), ExecError> {
    let run = store.get_run(run_id).await?;
    if run.state.is_terminal() {
        return Err(ExecError::Refused(format!(
            "run `{run_id}` already ended: {}",
            run.state
        )));
    }
    let event = NewEvent::new("run_aborted", actor, now)
        .run(run_id)
        .payload(json!({ "reason": reason }));
    store
        .update_run(
            &RunUpdate {
                run_id: run_id.into(),
                state: RunState::Aborted,
                executor: run.executor.clone(),
                at_ms: now,
            },
            &event,
        )
        .await?;
    Ok(())
}
