//! Release operations: open a release (its window opens), record the checkpoints of the forward
//! deployment (closing the window at the point of no return), let a person request a rollback,
//! and measure its criteria: once (`check`) or continuously for many releases (`Watcher`). The
//! CLI and the server call these with an explicit actor.

pub mod accept;
mod acts;
mod check;
pub mod decide;
mod execute;
mod outcome;
mod status;
mod tracker;
mod verify;
mod watcher;

pub use check::{CheckReport, CriterionReport, check};
pub use execute::{Rollback, carry_out, conclude_resumed, rollback_options};
pub use status::{ReleaseStatus, ReleaseView, decision_line, status, view};
pub use tracker::{Conclusion, SNAPSHOT_AFTER, SNAPSHOT_KIND, Tracker};
pub use verify::{Verified, verify_after};
pub use watcher::{Round, WatchOptions, Watcher};

use backout_model::plan::Answer;
use backout_store::{Checkpoint, NewEvent, NewRelease, Release, Store, StoreError};
use serde_json::json;

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
    .payload(json!({
        "checkpoint": name,
        "point_of_no_return": point_of_no_return,
        "reason": close,
    }));
    let event = crate::notify::routed(&plan, event);
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

/// Why a rollback is refused after the window closed, quoting the plan's `after_close`.
pub fn window_closed(release: &Release, plan: Option<&backout_model::Plan>) -> String {
    let after_close = plan
        .and_then(|p| p.window.given())
        .and_then(|w| w.after_close.as_deref())
        .map(|a| format!("; the plan says instead: {a}"))
        .unwrap_or_default();
    format!(
        "the rollback window of release `{}` is closed ({}){after_close}",
        release.id,
        release
            .close_reason
            .as_deref()
            .unwrap_or("its time ran out")
    )
}

/// The events of a release whose kind is one of `kinds`, in order, read page by page (the
/// store skips the others before decoding anything).
pub async fn for_each_event_of_kinds(
    store: &dyn Store,
    release_id: &str,
    kinds: &[&str],
    mut each: impl FnMut(&backout_store::Event),
) -> Result<(), ExecError> {
    let mut after = 0;
    loop {
        let page = store
            .release_events_of_kinds(release_id, after, kinds, 1000)
            .await?;
        page.iter().for_each(&mut each);
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => return Ok(()),
        }
    }
}

/// Every event of a release, in order, read page by page.
pub async fn for_each_event(
    store: &dyn Store,
    release_id: &str,
    mut each: impl FnMut(&backout_store::Event),
) -> Result<(), ExecError> {
    let mut after = 0;
    loop {
        let page = store.release_events(release_id, after, 1000).await?;
        page.iter().for_each(&mut each);
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => return Ok(()),
        }
    }
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
        let plan = backout_model::lint(&release.plan_source).plan;
        return Err(ExecError::Refused(window_closed(&release, plan.as_ref())));
    }
    let event = NewEvent::new("rollback_requested", actor, now_ms)
        .payload(json!({ "reason": reason }))
        .release(release_id);
    let Some(plan) = backout_model::lint(&release.plan_source).plan else {
        store.append_event(&event).await?;
        return Ok(release);
    };
    let mut events = vec![crate::notify::routed(&plan, event)];
    // The deciders are asked at once, in the same commit, unless they already were for the
    // decision pending now (a watcher asks only when nobody has).
    if let Some(auth) = plan.authorization.given() {
        let decisions = decide::Decisions::read(store, release_id, auth.quorum).await?;
        if !decisions.asked && decisions.approved_at_ms.is_none() {
            let mut tracker =
                Tracker::replay(store, &release, std::sync::Arc::new(plan.clone())).await?;
            tracker.apply_request();
            events.push(crate::notify::routed(
                &plan,
                decide::decision_requested(&plan, auth, tracker.evidence(), release_id, now_ms),
            ));
        }
    }
    store.append_events(&events).await?;
    Ok(release)
}
