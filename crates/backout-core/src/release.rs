//! Release operations: open a release (its window opens) and record the checkpoints of the
//! forward deployment, closing the window at the point of no return. The CLI and the server call
//! these with an explicit actor.

use std::sync::Arc;

use backout_model::plan::{Answer, Criterion};
use backout_store::{Checkpoint, NewEvent, NewRelease, Release, Store, StoreError};
use serde_json::json;

use crate::criteria::{CriterionState, Observation, Verdict, classify, evaluate, sources};
use crate::env::Resolver;
use crate::errors::ExecError;

/// What `backout start` needs.
pub struct StartRelease<'a> {
    pub source: &'a str,
    /// The version deployed; the plan's `release.version` when not given.
    pub version: Option<&'a str>,
    /// The version a rollback returns to; the plan's `release.rollback_to` when not given.
    pub rollback_to: Option<&'a str>,
    pub actor: &'a str,
    /// When the deployment happened (the window opens then).
    pub at_ms: i64,
}

/// Opens a release guarded by the plan text (stored with it, with its content hash).
pub async fn start(store: &dyn Store, request: &StartRelease<'_>) -> Result<Release, ExecError> {
    let linted = backout_model::lint(request.source);
    let errors = linted.errors();
    let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
        return Err(ExecError::Refused(format!(
            "the plan has {errors} error(s); run `backout lint` on it first"
        )));
    };
    let closes_at_ms = match &plan.window {
        Answer::Given(w) => {
            Some(request.at_ms + i64::try_from(w.closes_after.as_millis()).unwrap_or(i64::MAX / 2))
        }
        Answer::NotApplicable(_) => None,
    };
    let id = backout_store::new_release_id(request.at_ms);
    let new = NewRelease {
        id: id.clone(),
        plan_hash: hash.clone(),
        plan_source: request.source.to_string(),
        service: plan.release.service.clone(),
        version: request.version.unwrap_or(&plan.release.version).to_string(),
        rollback_to: request
            .rollback_to
            .unwrap_or(&plan.release.rollback_to)
            .to_string(),
        environment: plan.release.environment.clone(),
        actor: request.actor.to_string(),
        opened_at_ms: request.at_ms,
        closes_at_ms,
    };
    let event = NewEvent::new("release_started", request.actor, request.at_ms).payload(json!({
        "service": new.service,
        "version": new.version,
        "rollback_to": new.rollback_to,
        "plan_hash": hash,
        "closes_at_ms": closes_at_ms,
    }));
    store.create_release(&new, &event).await?;
    Ok(store.get_release(&id).await?)
}

/// Records that the forward deployment reached `name`. Refuses names the plan does not declare;
/// reaching `window.closes_at_checkpoint` closes the window (the point of no return).
pub async fn checkpoint(
    store: &dyn Store,
    release_id: &str,
    name: &str,
    actor: &str,
    at_ms: i64,
) -> Result<Release, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = backout_model::lint(&release.plan_source)
        .plan
        .ok_or_else(|| ExecError::InvalidPlan {
            run_id: release_id.into(),
            message: "the stored plan no longer lints".into(),
        })?;
    if !plan.release.checkpoints.iter().any(|c| c == name) {
        return Err(ExecError::Usage(format!(
            "the plan of release `{release_id}` declares no checkpoint `{name}` (it has: {})",
            if plan.release.checkpoints.is_empty() {
                "none".into()
            } else {
                plan.release.checkpoints.join(", ")
            }
        )));
    }
    let point_of_no_return = plan
        .window
        .given()
        .and_then(|w| w.closes_at_checkpoint.as_deref())
        == Some(name);
    let close =
        point_of_no_return.then(|| format!("point of no return: checkpoint `{name}` reached"));
    let event = NewEvent::new(
        if point_of_no_return {
            "window_closed"
        } else {
            "checkpoint_reached"
        },
        actor,
        at_ms,
    )
    .payload(json!({ "checkpoint": name, "point_of_no_return": point_of_no_return }));
    let checkpoint = Checkpoint {
        name: name.to_string(),
        at_ms,
        actor: actor.to_string(),
    };
    match store
        .record_checkpoint(release_id, &checkpoint, close.as_deref(), &event)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(ExecError::Refused(format!(
                "release `{release_id}` already reached checkpoint `{name}`"
            )));
        }
        Err(StoreError::Invalid { .. }) => {
            return Err(ExecError::Refused(format!(
                "the window of release `{release_id}` is closed: {}",
                release.close_reason.as_deref().unwrap_or("it closed")
            )));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(store.get_release(release_id).await?)
}

/// One criterion in a check report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CriterionReport {
    pub id: String,
    pub title: String,
    pub state: CriterionState,
    /// Whether this check measured it (not when the window is closed or it is still in its delay).
    pub measured: bool,
}

/// The outcome of `backout check`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckReport {
    pub release_id: String,
    pub verdict: Verdict,
    pub criteria: Vec<CriterionReport>,
}

/// A person asks for a rollback: the verdict becomes `rollback_required` with no criterion.
/// Refused once the window is closed (quoting the plan's `after_close`).
pub async fn request(
    store: &dyn Store,
    release_id: &str,
    reason: &str,
    actor: &str,
    now_ms: i64,
) -> Result<Release, ExecError> {
    let release = store.get_release(release_id).await?;
    if reason.trim().is_empty() {
        return Err(ExecError::Usage(
            "a rollback request needs a reason (--reason)".into(),
        ));
    }
    if release.window_closed(now_ms) {
        let after_close = backout_model::lint(&release.plan_source)
            .plan
            .and_then(|p| p.window.given().and_then(|w| w.after_close.clone()))
            .map(|a| format!("; the plan says instead: {a}"))
            .unwrap_or_default();
        return Err(ExecError::Refused(format!(
            "the rollback window of release `{release_id}` is closed ({}){after_close}",
            release
                .close_reason
                .as_deref()
                .unwrap_or("its time ran out")
        )));
    }
    let event =
        NewEvent::new("rollback_requested", actor, now_ms).payload(json!({ "reason": reason }));
    store.append_event(&event.release(release_id)).await?;
    Ok(release)
}

/// When the next measurement of any criterion is due (for `watch`): the earliest of each
/// criterion's last measurement plus `every` (or the end of its delay), and the window's close.
pub fn next_due_ms(
    release: &Release,
    plan: &backout_model::Plan,
    report: &CheckReport,
) -> Option<i64> {
    let criteria = plan.criteria.given()?;
    let mut due: Vec<i64> = criteria
        .rollback_when
        .iter()
        .zip(&report.criteria)
        .map(|(c, r)| {
            let delay_end = release.opened_at_ms + i64::try_from(c.delay.as_millis()).unwrap_or(0);
            r.state
                .last_measured_ms
                .map_or(delay_end, |t| {
                    t + i64::try_from(c.every.as_millis()).unwrap_or(60_000)
                })
                .max(delay_end)
        })
        .collect();
    due.extend(release.closes_at_ms);
    due.into_iter().min()
}

/// One round of measurements now: every criterion of the release's plan (with `only_due`, each
/// whose `every` has passed since its last measurement) is measured (in
/// parallel, each within its timeout), each measurement is journaled as a `measurement` event of
/// the release, and the criteria's states are replayed from all of the release's measurements, so
/// `trips_after` and `success_when.hold` count across checks. A changed verdict is journaled too.
pub async fn check(
    store: &dyn Store,
    release_id: &str,
    resolver: Arc<Resolver>,
    actor: &str,
    now_ms: i64,
    only_due: bool,
) -> Result<CheckReport, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = backout_model::lint(&release.plan_source)
        .plan
        .ok_or_else(|| ExecError::InvalidPlan {
            run_id: release_id.into(),
            message: "the stored plan no longer lints".into(),
        })?;
    let criteria: Vec<Criterion> = plan
        .criteria
        .given()
        .map(|c| c.rollback_when.clone())
        .unwrap_or_default();
    let mut states: Vec<CriterionState> = vec![CriterionState::default(); criteria.len()];
    let mut last_verdict: Option<String> = None;
    let mut requested = false;
    let mut after = 0;
    loop {
        let events = store.release_events(release_id, after, 1000).await?;
        for event in &events {
            match event.kind.as_str() {
                "measurement" => {
                    let id = event.payload.get("criterion").and_then(|c| c.as_str());
                    let observation = event
                        .payload
                        .get("observation")
                        .cloned()
                        .and_then(|o| serde_json::from_value::<Observation>(o).ok());
                    if let (Some(i), Some(observation)) = (
                        id.and_then(|id| criteria.iter().position(|c| c.id == id)),
                        observation,
                    ) {
                        states[i].observe(
                            &criteria[i],
                            &observation,
                            event.at_ms,
                            release.opened_at_ms,
                        );
                    }
                }
                "rollback_requested" => requested = true,
                "verdict" => {
                    last_verdict = event
                        .payload
                        .get("verdict")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                }
                _ => {}
            }
        }
        match events.last() {
            Some(last) if events.len() == 1000 => after = last.seq,
            _ => break,
        }
    }
    let window_closed = release.window_closed(now_ms);
    let mut measured = vec![false; criteria.len()];
    if !window_closed {
        let sources = plan
            .criteria
            .given()
            .map(|c| c.sources.clone())
            .unwrap_or_default();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, criterion) in criteria.iter().enumerate() {
            if now_ms
                < release.opened_at_ms + i64::try_from(criterion.delay.as_millis()).unwrap_or(0)
            {
                continue;
            }
            // `watch` measures each criterion at its own cadence (`every`); `check` measures all.
            let every = i64::try_from(criterion.every.as_millis()).unwrap_or(0);
            if only_due
                && states[i]
                    .last_measured_ms
                    .is_some_and(|t| now_ms < t + every)
            {
                continue;
            }
            let source = sources::for_criterion(criterion, &sources, resolver.clone());
            tasks.spawn(async move {
                let observation = match source {
                    Ok(source) => source.observe().await,
                    Err(message) => Observation::Error { message },
                };
                (i, observation)
            });
        }
        let mut observed: Vec<(usize, Observation)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            observed.push(
                joined
                    .map_err(|e| ExecError::Refused(format!("a measurement task failed: {e}")))?,
            );
        }
        observed.sort_by_key(|(i, _)| *i);
        for (i, observation) in observed {
            let (class, reason) = classify(&criteria[i], &observation);
            let event = NewEvent::new("measurement", actor, now_ms).payload(json!({
                "criterion": criteria[i].id,
                "observation": observation,
                "class": class,
                "reason": reason,
            }));
            store.append_event(&event.release(release_id)).await?;
            states[i].observe(&criteria[i], &observation, now_ms, release.opened_at_ms);
            measured[i] = true;
        }
    }
    let pairs: Vec<(&str, &CriterionState)> = criteria
        .iter()
        .map(|c| c.id.as_str())
        .zip(states.iter())
        .collect();
    let success = plan
        .criteria
        .given()
        .and_then(|c| c.success_when.as_ref())
        .map(|s| {
            (
                s.checks.as_slice(),
                i64::try_from(s.hold.as_millis()).unwrap_or(i64::MAX),
            )
        });
    let verdict = evaluate::verdict(&pairs, requested, window_closed, success, now_ms);
    // The window closes on time, or early when the deployment met its success criteria.
    if release.state == backout_store::ReleaseState::Open {
        let reason = match (verdict, release.closes_at_ms) {
            (Verdict::Success, _) => {
                Some("success: every success_when check passed for its hold".to_string())
            }
            (_, Some(t)) if now_ms >= t => Some("closed on time (window.closes_after)".to_string()),
            _ => None,
        };
        if let Some(reason) = reason {
            let event = NewEvent::new("window_closed", actor, now_ms)
                .payload(json!({ "reason": reason, "verdict": verdict }));
            store
                .close_release(release_id, now_ms, &reason, &event)
                .await?;
        }
    }
    let name = serde_json::to_value(verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string));
    if name != last_verdict {
        let event = NewEvent::new("verdict", actor, now_ms).payload(json!({ "verdict": verdict }));
        store.append_event(&event.release(release_id)).await?;
    }
    Ok(CheckReport {
        release_id: release_id.to_string(),
        verdict,
        criteria: criteria
            .iter()
            .zip(states)
            .zip(measured)
            .map(|((c, state), measured)| CriterionReport {
                id: c.id.clone(),
                title: c.name().to_string(),
                state,
                measured,
            })
            .collect(),
    })
}
