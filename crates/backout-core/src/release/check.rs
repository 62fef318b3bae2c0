//! `backout check`: one round of measurements of one release, journaled, with the verdict and
//! its evidence.

use std::sync::Arc;

use backout_store::{NewEvent, Store, StoreError};
use serde::Serialize;

use super::tracker::Tracker;
use crate::criteria::sources::{self, Source};
use crate::criteria::{CriterionState, Observation, Verdict};
use crate::env::{RedactedSource, Redactor, Resolver};
use crate::errors::ExecError;

/// One criterion in a check report.
#[derive(Clone, Debug, Serialize)]
pub struct CriterionReport {
    pub id: String,
    pub title: String,
    pub state: CriterionState,
    /// Whether this round measured it (not when the window is closed or it is in its delay).
    pub measured: bool,
    /// When it is next due (none once the window is closed).
    pub next_due_ms: Option<i64>,
}

/// A release's verdict with every criterion's state.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub release_id: String,
    pub verdict: Verdict,
    /// A person requested a rollback (`backout request`).
    pub requested: bool,
    pub closes_at_ms: Option<i64>,
    pub close_reason: Option<String>,
    pub criteria: Vec<CriterionReport>,
}

/// The sources of a release's criteria, built once: a source that cannot be built (no endpoint
/// configured, a `${VAR}` not set) measures as an error saying so.
pub fn sources_of(
    tracker: &Tracker,
    resolver: &Arc<Resolver>,
) -> Vec<Result<Arc<dyn Source>, String>> {
    let configured = sources::of_plan(tracker.plan());
    // Command criteria receive the plan's pass_env too (env.rs).
    let resolver = &Arc::new(resolver.passing(tracker.plan().pass_env()));
    tracker
        .criteria()
        .iter()
        .map(|c| {
            // Evidence is redacted before anyone sees it (env.rs).
            let redactor = Redactor::of_criterion(c, &configured, resolver);
            sources::for_criterion_at(
                c,
                &configured,
                resolver.clone(),
                Some(tracker.opened_at_ms()),
            )
            .map(|source| {
                Arc::new(RedactedSource::new(Arc::from(source), redactor.clone()))
                    as Arc<dyn Source>
            })
            .map_err(|message| redactor.redact(&message))
        })
        .collect()
}

/// One measurement, as an observation: a source that could not be built is an error.
pub async fn observe(source: Result<Arc<dyn Source>, String>) -> Observation {
    match source {
        Ok(source) => source.observe().await,
        Err(message) => Observation::Error { message },
    }
}

/// One round of measurements now: every criterion of the release (with `only_due`, each whose
/// `every` has passed since its last measurement) is measured in parallel, each within its
/// timeout; each measurement is journaled as a `measurement` event of the release, and the
/// states are replayed from the release's journal first (from its newest `criteria_snapshot`,
/// which a long replay journals for the next round), so `trips_after` and `success_when.hold`
/// count across checks. A changed verdict, a `window_closing` notice and a
/// close of the window (on time, or early as a success) are journaled too.
pub async fn check(
    store: &dyn Store,
    release_id: &str,
    resolver: Arc<Resolver>,
    actor: &str,
    now_ms: i64,
    only_due: bool,
) -> Result<CheckReport, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = Arc::new(Tracker::plan_of(&release)?);
    let mut tracker = Tracker::replay(store, &release, plan).await?;
    let count = tracker.criteria().len();
    let mut measured = vec![false; count];
    // The state as replayed, before this round changes it: the next round starts from here.
    let mut events: Vec<NewEvent> = tracker
        .snapshot_if_long(actor, now_ms)
        .into_iter()
        .collect();
    if !tracker.window_closed(now_ms) {
        let built = sources_of(&tracker, &resolver);
        let mut tasks = tokio::task::JoinSet::new();
        for (i, source) in built.into_iter().enumerate() {
            let in_delay =
                tracker.due_at(i) > now_ms && tracker.states()[i].last_measured_ms.is_none();
            let not_due = only_due && tracker.due_at(i) > now_ms;
            if in_delay || not_due {
                continue;
            }
            tasks.spawn(async move { (i, observe(source).await) });
        }
        let mut observed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            observed.push(
                joined
                    .map_err(|e| ExecError::Refused(format!("a measurement task failed: {e}")))?,
            );
        }
        observed.sort_by_key(|(i, _)| *i);
        for (i, observation) in observed {
            events.push(tracker.measured(i, observation, now_ms, actor));
            measured[i] = true;
        }
    }
    let conclusion = tracker.conclude(now_ms, actor);
    events.extend(conclusion.events);
    store.append_events(&events).await?;
    if let Some((reason, event)) = conclusion.close {
        close(store, release_id, now_ms, &reason, &event).await?;
    }
    Ok(tracker.report(&measured, now_ms))
}

/// Closes the window; a window someone else closed meanwhile is not an error.
pub async fn close(
    store: &dyn Store,
    release_id: &str,
    now_ms: i64,
    reason: &str,
    event: &NewEvent,
) -> Result<(), ExecError> {
    match store.close_release(release_id, now_ms, reason, event).await {
        Ok(_) | Err(StoreError::Invalid { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
