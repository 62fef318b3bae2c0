//! `procedure.verify_after`: after the procedure of a release ran, the backout itself succeeded
//! only when the listed criteria pass continuously for `hold`. Measured like the release's
//! criteria (same sources, cadence and conditions), journaled as `verification` events (not
//! `measurement`: they must not count toward the forward deployment's verdict), ending with
//! `rolled_back` or `rollback_unverified`. Either concludes the release: its window closes with
//! that event (so watchers let it go and its criteria are no longer measured), and the event is
//! announced to the channels `communication.notify` routes it to.

use std::sync::Arc;

use backout_model::plan::Criterion;
use backout_store::{NewEvent, Store, StoreError};
use serde_json::json;

use super::tracker::Tracker;
use crate::clock::Clock;
use crate::criteria::sources;
use crate::criteria::{CriterionState, CriterionStatus, classify};
use crate::env::Resolver;
use crate::errors::ExecError;
use crate::executor::{Progress, ProgressEvent};
use crate::notify::routed;

/// How a verification ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Every check passed for the hold.
    Held,
    /// A check tripped, or the hold was not reached within three holds.
    Failed(String),
    /// The plan has no `verify_after`.
    NotRequired,
}

/// Measures `verify_after.checks` of the release's plan until they held for `hold`, one of
/// them tripped, or three holds passed.
pub async fn verify_after(
    store: &dyn Store,
    release_id: &str,
    run_id: &str,
    resolver: Arc<Resolver>,
    clock: &dyn Clock,
    actor: &str,
    progress: &dyn Progress,
) -> Result<Verified, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = Tracker::plan_of(&release)?;
    let Some(verify) = plan.procedure.given().and_then(|p| p.verify_after.clone()) else {
        // Nothing to verify: the procedure's success concludes the release.
        let now = clock.now_ms();
        let detail = "the procedure succeeded; the plan has no verify_after";
        let event = routed(
            &plan,
            NewEvent::new("rolled_back", actor, now)
                .payload(json!({ "run_id": run_id, "detail": detail, "verified": false }))
                .release(release_id),
        );
        conclude_release(store, release_id, detail, &event, now).await?;
        return Ok(Verified::NotRequired);
    };
    let configured = sources::of_plan(&plan);
    let checks: Vec<Criterion> = verify
        .checks
        .iter()
        .filter_map(|id| plan.criterion(id).cloned())
        .collect();
    let hold_ms = millis(verify.hold.as_millis());
    let started = clock.now_ms();
    let deadline = started + 3 * hold_ms.max(1);
    let mut states = vec![CriterionState::default(); checks.len()];
    let mut due = vec![started; checks.len()];
    store
        .append_event(
            &NewEvent::new("verification_started", actor, started)
                .payload(json!({ "run_id": run_id, "checks": verify.checks, "hold": verify.hold.to_string() }))
                .release(release_id),
        )
        .await?;
    loop {
        let now = clock.now_ms();
        let mut events = Vec::new();
        for (i, criterion) in checks.iter().enumerate() {
            if now < due[i] {
                continue;
            }
            let observation = sources::measure_at(
                criterion,
                &configured,
                resolver.clone(),
                Some(release.opened_at_ms),
            )
            .await;
            let (class, reason) = classify(criterion, &observation);
            // No warm-up: the criteria's `delay` is about the forward deployment.
            states[i].observe(criterion, &observation, now, i64::MIN / 2);
            due[i] = now + millis(criterion.every.as_millis());
            progress.event(&ProgressEvent::Verification {
                criterion: criterion.id.clone(),
                class: serde_json::to_value(class)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                reason: reason.clone(),
                held_ms: states[i]
                    .passing_since_ms
                    .map_or(0, |t| u64::try_from(now - t).unwrap_or(0)),
                hold_ms: verify.hold.as_millis(),
            });
            events.push(
                NewEvent::new("verification", actor, now)
                    .payload(json!({
                        "run_id": run_id,
                        "criterion": criterion.id,
                        "observation": observation,
                        "class": class,
                        "reason": reason,
                    }))
                    .release(release_id),
            );
        }
        store.append_events(&events).await?;
        let now = clock.now_ms();
        let failed =
            |why: String| Some((Verified::Failed(why.clone()), "rollback_unverified", why));
        let outcome = if let Some((c, s)) = checks
            .iter()
            .zip(&states)
            .find(|(_, s)| s.status == CriterionStatus::Tripped)
        {
            failed(format!(
                "{} tripped after the rollback: {}",
                c.id,
                s.last_reason.as_deref().unwrap_or("failing")
            ))
        } else if states.iter().all(|s| {
            s.status == CriterionStatus::Passing
                && s.passing_since_ms.is_some_and(|t| now - t >= hold_ms)
        }) {
            Some((
                Verified::Held,
                "rolled_back",
                format!("verify_after held for {}", verify.hold),
            ))
        } else if now >= deadline {
            failed(format!(
                "the checks did not pass for {} within {}",
                verify.hold,
                backout_model::Duration::from_millis(
                    u64::try_from(deadline - started).unwrap_or(0)
                )
            ))
        } else {
            None
        };
        if let Some((outcome, kind, detail)) = outcome {
            let event = routed(
                &plan,
                NewEvent::new(kind, actor, now)
                    .payload(json!({ "run_id": run_id, "detail": detail }))
                    .release(release_id),
            );
            conclude_release(store, release_id, &detail, &event, now).await?;
            return Ok(outcome);
        }
        let next = due
            .iter()
            .copied()
            .min()
            .unwrap_or(now + 1000)
            .min(deadline);
        // Wake when the next check is due, or when the hold could be reached.
        let hold_reached = states
            .iter()
            .filter_map(|s| s.passing_since_ms)
            .max()
            .map_or(next, |t| t + hold_ms);
        let wake = next.min(hold_reached.max(now + 1));
        tokio::time::sleep(std::time::Duration::from_millis(
            u64::try_from(wake - now).unwrap_or(0).clamp(1, 60_000),
        ))
        .await;
    }
}

/// Concludes a release with `event` (`rolled_back`, `rollback_unverified`): its window closes
/// with it, so nothing measures it any more. A window that already closed (on time, during the
/// rollback) keeps its reason; the event is journaled all the same.
async fn conclude_release(
    store: &dyn Store,
    release_id: &str,
    detail: &str,
    event: &NewEvent,
    now: i64,
) -> Result<(), ExecError> {
    let reason = format!("{}: {detail}", event.kind.replace('_', " "));
    match store.close_release(release_id, now, &reason, event).await {
        Ok(_) => Ok(()),
        Err(StoreError::Invalid { .. }) => {
            store.append_event(event).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 2)
}
