//! What people do to a run through the store: confirm a manual step, resolve an in-doubt one,
//! retry or skip failed steps (also of a run that ended failed or aborted: it is reopened and
//! continued by `resume`), abort the run. A running executor sees these on its next poll. Who
//! may do each is `release::decide::may_act`'s to say; these only apply the act.

use backout_model::plan::OnFailure;
use backout_store::{NewEvent, Run, RunState, RunUpdate, StepRecord, StepState, Store};
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
            "run `{run_id}` already ended: {}{}",
            run.state,
            ways_forward(&run)
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

/// Gives steps of a run a new attempt: the named ones (failed, aborted or in doubt), or every
/// failed or aborted step whose failure stops the run. A run that ended (failed, aborted) is
/// reopened (`waiting`) so that `resume` (or the server's executor) continues it; the DAG then
/// goes on from there. Returns the steps that will run again.
pub async fn retry(
    store: &dyn Store,
    run_id: &str,
    steps: &[String],
    actor: &str,
    now: i64,
) -> Result<Vec<String>, ExecError> {
    let (run, records) = reopenable(store, run_id, "retry").await?;
    let plan = backout_model::lint(&run.plan_source).plan;
    let blocking = |r: &StepRecord| {
        let tolerated = plan
            .as_ref()
            .and_then(|p| p.all_steps().find(|s| s.id == r.step_id))
            .is_some_and(|s| s.on_failure == OnFailure::Continue);
        matches!(r.state, StepState::Failed | StepState::Aborted) && !tolerated
    };
    let targets: Vec<&StepRecord> = if steps.is_empty() {
        records.iter().filter(|r| blocking(r)).collect()
    } else {
        let mut picked = Vec::new();
        for id in steps {
            let record = find(&records, run_id, id)?;
            if !matches!(
                record.state,
                StepState::Failed | StepState::Aborted | StepState::InDoubt
            ) {
                return Err(ExecError::Refused(format!(
                    "step `{id}` is {}; only a failed, aborted or in-doubt step can be retried",
                    record.state
                )));
            }
            picked.push(record);
        }
        picked
    };
    if targets.is_empty() {
        return Err(ExecError::Refused(format!(
            "run `{run_id}` has no failed or aborted step to retry (it is {}); name a step, or see `backout status {run_id}`",
            run.state
        )));
    }
    reopen(store, &run, "retry", actor, now).await?;
    let mut batch = Vec::new();
    for record in &targets {
        let mut next = (*record).clone();
        next.state = StepState::Pending;
        next.started_at_ms = None;
        next.finished_at_ms = None;
        next.updated_at_ms = now;
        next.pgid = None;
        next.note = Some(format!(
            "to be retried by {actor} after attempt {}",
            record.attempt
        ));
        let event = on_release(
            NewEvent::new("step_retry_requested", actor, now)
                .run(run_id)
                .step(&record.step_id)
                .payload(json!({ "after_attempt": record.attempt, "was": record.state.as_str() })),
            &run,
        );
        batch.push((next, event));
    }
    store.record_steps(&batch).await?;
    Ok(targets.iter().map(|r| r.step_id.clone()).collect())
}

/// Counts a step as done by other means (failed, aborted, in doubt, waiting for a person, or
/// not yet started), with the reason: its dependants proceed as after `on_failure: continue`.
/// A run that ended is reopened like for [`retry`].
pub async fn skip(
    store: &dyn Store,
    run_id: &str,
    step_id: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<(), ExecError> {
    let (run, records) = reopenable(store, run_id, "skip").await?;
    let record = find(&records, run_id, step_id)?;
    if matches!(
        record.state,
        StepState::Succeeded | StepState::Skipped | StepState::Running
    ) {
        return Err(ExecError::Refused(format!(
            "step `{step_id}` is {}; only a step that failed, was aborted, is in doubt, waits or has not started can be skipped",
            record.state
        )));
    }
    reopen(store, &run, "skip", actor, now).await?;
    let mut next = record.clone();
    next.state = StepState::Skipped;
    next.updated_at_ms = now;
    next.finished_at_ms = Some(now);
    next.note = Some(format!("skipped by {actor}: {reason}"));
    let event = on_release(
        NewEvent::new("step_skipped_by_person", actor, now)
            .run(run_id)
            .step(step_id)
            .payload(json!({ "reason": reason, "was": record.state.as_str() })),
        &run,
    );
    store.record_step(&next, &event).await?;
    Ok(())
}

/// The run and its steps, when a person may still change it: not succeeded or refused.
async fn reopenable(
    store: &dyn Store,
    run_id: &str,
    act: &str,
) -> Result<(Run, Vec<StepRecord>), ExecError> {
    let run = store.get_run(run_id).await?;
    match run.state {
        RunState::Succeeded => {
            return Err(ExecError::Refused(format!(
                "run `{run_id}` succeeded; there is nothing to {act}"
            )));
        }
        RunState::Refused => {
            return Err(ExecError::Refused(format!(
                "run `{run_id}` was refused by a precondition and ran nothing; start a new one (`backout execute REL` for a release, `backout run PLAN` otherwise)"
            )));
        }
        _ => {}
    }
    let records = store.list_steps(run_id).await?;
    Ok((run, records))
}

fn find<'a>(
    records: &'a [StepRecord],
    run_id: &str,
    step_id: &str,
) -> Result<&'a StepRecord, ExecError> {
    records
        .iter()
        .find(|s| s.step_id == step_id)
        .ok_or_else(|| {
            let known: Vec<&str> = records.iter().map(|s| s.step_id.as_str()).collect();
            ExecError::Refused(format!(
                "run `{run_id}` has no step `{step_id}` (steps: {})",
                known.join(", ")
            ))
        })
}

/// A run that ended becomes `waiting` again (`run_reopened`; for a release's run also
/// `execution_reopened`, so the release reads `rolling_back` and its end is concluded again).
async fn reopen(
    store: &dyn Store,
    run: &Run,
    act: &str,
    actor: &str,
    now: i64,
) -> Result<(), ExecError> {
    if !run.state.is_terminal() {
        return Ok(());
    }
    let event = on_release(
        NewEvent::new("run_reopened", actor, now)
            .run(&run.id)
            .payload(json!({ "act": act, "was": run.state.as_str() })),
        run,
    );
    store
        .update_run(
            &RunUpdate {
                run_id: run.id.clone(),
                state: RunState::Waiting,
                executor: None,
                at_ms: now,
            },
            &event,
        )
        .await?;
    if let Some(release_id) = &run.release_id {
        store
            .append_event(
                &NewEvent::new("execution_reopened", actor, now)
                    .payload(json!({ "run_id": run.id, "act": act }))
                    .release(release_id),
            )
            .await?;
    }
    Ok(())
}

/// What a person may still do with a run that ended, for refusals that would otherwise leave
/// the on-call in a circle.
pub fn ways_forward(run: &Run) -> String {
    let id = &run.id;
    match run.state {
        RunState::Failed | RunState::Aborted => {
            let workarounds: Vec<String> = backout_model::lint(&run.plan_source)
                .plan
                .and_then(|p| p.workarounds.given().cloned())
                .map(|w| w.into_iter().map(|w| w.id).collect())
                .unwrap_or_default();
            let workaround = match (&run.release_id, workarounds.is_empty()) {
                (Some(rel), false) => format!(
                    ", or a workaround inside the release: `backout execute {rel} --workaround ID` ({})",
                    workarounds.join(", ")
                ),
                _ => String::new(),
            };
            format!(
                "; its ways forward: `backout retry {id} [STEP…]` (a new attempt of the failed steps), \
                 `backout skip {id} STEP --reason R` (count it done; dependants proceed){workaround}"
            )
        }
        _ => String::new(),
    }
}

/// An act on a release's run is part of the release's story too (`report REL`).
fn on_release(mut event: NewEvent, run: &Run) -> NewEvent {
    event.release_id.clone_from(&run.release_id);
    event
}

/// Aborts a run: a running executor cancels its steps (their process groups get SIGTERM) on its
/// next poll; a waiting run simply ends; a failed run is given up (it stays as it failed, and
/// its release's rollback reads failed until a workaround or a new decision).
pub async fn abort(
    store: &dyn Store,
    run_id: &str,
    actor: &str,
    reason: &str,
    now: i64,
) -> Result<(), ExecError> {
    let run = store.get_run(run_id).await?;
    if run.state.is_terminal() && run.state != RunState::Failed {
        return Err(ExecError::Refused(format!(
            "run `{run_id}` already ended: {}",
            run.state
        )));
    }
    let event = on_release(
        NewEvent::new("run_aborted", actor, now)
            .run(run_id)
            .payload(json!({ "reason": reason })),
        &run,
    );
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
    // No executor will conclude a run that waited, had failed or whose executor died: the
    // release hears it here.
    if let Some(release_id) = &run.release_id
        && (matches!(run.state, RunState::Waiting | RunState::Failed)
            || super::executor_gone(&run).is_some())
    {
        store
            .append_event(
                &NewEvent::new("execution_finished", actor, now)
                    .payload(json!({ "run_id": run_id, "state": RunState::Aborted.as_str() }))
                    .release(release_id),
            )
            .await?;
    }
    Ok(())
}
