//! Scheduled rehearsals: which plans a server knows (registered ones, and those of open and
//! recent releases), and one scheduled rehearsal of a plan under the same sealing rules as
//! `backout rehearse` (no URL its environment does not rewrite; channels cut to the
//! environment's or `testing.notify`). Success is evidence through the usual path
//! (`rehearsal::conclude`); a failure is journaled as `rehearsal_failed`, routed to the
//! plan's `testing.notify` channels through the rehearsal run's own `failed` event.
//! Registrations are journal events (`plan_registered` / `plan_unregistered`), never a table.

use std::collections::BTreeMap;
use std::sync::Arc;

use backout_model::Plan;
use backout_store::{Evidence, EvidenceFilter, NewEvent, RunKind, RunState, Store};
use serde_json::json;

use super::schedule::Reason;
use crate::clock::SystemClock;
use crate::env::Resolver;
use crate::errors::ExecError;
use crate::executor::{Progress, ProgressEvent};
use crate::{Executor, RunOptions, rehearsal};

/// Who runs scheduled rehearsals.
pub const SCHEDULE_ACTOR: &str = "backout:schedule";
/// A plan registered for scheduled rehearsals (`backout plans add`).
pub const REGISTERED: &str = "plan_registered";
/// A registration withdrawn (`backout plans remove`).
pub const UNREGISTERED: &str = "plan_unregistered";
/// A scheduled rehearsal that did not produce evidence.
pub const REHEARSAL_FAILED: &str = "rehearsal_failed";
/// Evidence that expires soon with no schedule to renew it.
pub const EVIDENCE_EXPIRING: &str = "evidence_expiring";

/// A plan the scheduler knows: its text and why it knows it.
#[derive(Clone, Debug)]
pub struct KnownPlan {
    pub hash: String,
    pub source: String,
    pub plan: Plan,
    pub registered: bool,
}

/// The `plan_registered` event of a plan's text.
pub fn registered(source: &str, actor: &str, now_ms: i64) -> Result<NewEvent, ExecError> {
    let linted = backout_model::lint(source);
    let errors = linted.errors();
    let (Some(plan), Some(hash)) = (linted.plan, linted.hash) else {
        return Err(ExecError::Usage(format!(
            "the plan has {errors} error(s); run `backout lint` on it first"
        )));
    };
    if plan
        .testing
        .given()
        .is_none_or(|t| t.schedule.is_none() && t.renew_before.is_none())
    {
        return Err(ExecError::Usage(
            "the plan sets neither testing.schedule nor testing.renew_before: a server would never rehearse it".into(),
        ));
    }
    if let Some(t) = plan.testing.given() {
        super::schedule::time_zone(&t.time_zone).map_err(ExecError::Usage)?;
    }
    Ok(NewEvent::new(REGISTERED, actor, now_ms).payload(json!({
        "service": plan.release.service,
        "plan_hash": hash,
        "source": source,
    })))
}

/// The `plan_unregistered` event of a plan hash.
pub fn unregistered(hash: &str, actor: &str, now_ms: i64) -> NewEvent {
    NewEvent::new(UNREGISTERED, actor, now_ms).payload(json!({ "plan_hash": hash }))
}

/// Plans registered and not withdrawn, by hash, from the journal.
pub async fn registered_plans(store: &dyn Store) -> Result<BTreeMap<String, String>, ExecError> {
    let mut plans = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store
            .events_of_kinds(after, &[REGISTERED, UNREGISTERED], 1000)
            .await?;
        for e in &page {
            let text = |k: &str| {
                e.payload
                    .get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            match (e.kind.as_str(), text("plan_hash")) {
                (REGISTERED, Some(hash)) => {
                    if let Some(source) = text("source") {
                        plans.insert(hash, source);
                    }
                }
                (UNREGISTERED, Some(hash)) => {
                    plans.remove(&hash);
                }
                _ => {}
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => return Ok(plans),
        }
    }
}

/// The plans a server rehearses: registered ones and those of open and the `recent` newest
/// releases, once per content hash, when their testing asks for a schedule or a renewal.
pub async fn known_plans(store: &dyn Store, recent: u32) -> Result<Vec<KnownPlan>, ExecError> {
    let mut sources: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for (hash, source) in registered_plans(store).await? {
        sources.insert(hash, (source, true));
    }
    let releases = store.open_releases().await?;
    for r in releases
        .into_iter()
        .chain(store.list_releases(recent).await?)
    {
        sources
            .entry(r.plan_hash.clone())
            .or_insert((r.plan_source, false));
    }
    Ok(sources
        .into_iter()
        .filter_map(|(hash, (source, registered))| {
            let plan = backout_model::lint(&source).plan?;
            let t = plan.testing.given()?;
            (t.schedule.is_some() || t.renew_before.is_some()).then_some(KnownPlan {
                hash,
                source,
                plan,
                registered,
            })
        })
        .collect())
}

/// The newest evidence of `hash` in the plan's `rehearse_in`.
pub async fn newest_evidence(
    store: &dyn Store,
    known: &KnownPlan,
) -> Result<Option<Evidence>, ExecError> {
    let environment = known.plan.testing.given().map(|t| t.rehearse_in.clone());
    let filter = EvidenceFilter {
        plan_hash: Some(known.hash.clone()),
        service: Some(known.plan.release.service.clone()),
        environment,
    };
    let mut found = store.list_evidence(&filter, 50).await?;
    found.sort_by_key(|e| std::cmp::Reverse(e.finished_at_ms));
    Ok(found.into_iter().next())
}

/// Progress of a scheduled rehearsal: nobody watches a terminal; the journal has it all.
struct Unwatched;

impl Progress for Unwatched {
    fn event(&self, _event: &ProgressEvent) {}
}

/// What one scheduled rehearsal ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rehearsed {
    Evidence(String),
    Failed(String),
}

/// Rehearses `known` in its `rehearse_in` as [`SCHEDULE_ACTOR`]: refused (and journaled as
/// failed) when it would reach a URL its environment does not rewrite; evidence on success;
/// `rehearsal_failed` otherwise.
pub async fn rehearse(
    store: Arc<dyn Store>,
    known: &KnownPlan,
    reason: Reason,
    now: impl Fn() -> i64,
) -> Result<Rehearsed, ExecError> {
    let Some(testing) = known.plan.testing.given() else {
        return Ok(Rehearsed::Failed(
            "the plan's testing does not apply".into(),
        ));
    };
    let environment = testing.rehearse_in.clone();
    let failed = |why: String, run: Option<&str>, at: i64| {
        let mut event = NewEvent::new(REHEARSAL_FAILED, SCHEDULE_ACTOR, at).payload(json!({
            "service": known.plan.release.service,
            "plan_hash": known.hash,
            "environment": environment,
            "reason": reason.as_str(),
            "error": why,
        }));
        if let Some(run) = run {
            event = event.run(run);
        }
        event
    };
    let resolver = Resolver::from_env();
    let extra_env = match rehearsal::overrides(&known.plan, &environment, &resolver) {
        Ok(env) => env,
        Err(e) => {
            let why = e.to_string();
            store
                .append_event(&failed(why.clone(), None, now()))
                .await?;
            return Ok(Rehearsed::Failed(why));
        }
    };
    let mut sealed_resolver = Resolver::from_env();
    sealed_resolver.extend(extra_env.iter().cloned());
    let unsealed = rehearsal::unsealed_urls(&known.plan, &environment, &sealed_resolver);
    if !unsealed.is_empty() {
        let why = format!(
            "not sealed: the rehearsal would reach {}",
            unsealed
                .iter()
                .map(|u| u.describe())
                .collect::<Vec<_>>()
                .join("; ")
        );
        store
            .append_event(&failed(why.clone(), None, now()))
            .await?;
        return Ok(Rehearsed::Failed(why));
    }
    let options = RunOptions {
        kind: RunKind::Rehearsal,
        environment: environment.clone(),
        checkpoints: known.plan.release.checkpoints.clone(),
        actor: SCHEDULE_ACTOR.to_string(),
        release_id: None,
        workaround: None,
        wait_for_people: false,
        extra_env,
        break_glass: None,
    };
    let executor = Executor::new(
        store.clone(),
        Arc::new(SystemClock),
        Resolver::from_env(),
        Arc::new(Unwatched),
    );
    let summary = match executor.start(&known.source, &options).await {
        Ok(summary) => summary,
        Err(e) => {
            let why = e.to_string();
            store
                .append_event(&failed(why.clone(), None, now()))
                .await?;
            return Ok(Rehearsed::Failed(why));
        }
    };
    if summary.run.state == RunState::Succeeded
        && let Some(evidence) =
            rehearsal::conclude(store.as_ref(), &summary, SCHEDULE_ACTOR, None, now()).await?
    {
        return Ok(Rehearsed::Evidence(evidence.id));
    }
    let why = format!(
        "run {} ended {}{}",
        summary.run.id,
        summary.run.state,
        crate::executor::ways_forward(&summary.run)
    );
    // Announced where the rehearsal's own events go (the sealed channels: `testing.notify`
    // or the environment's), on the run, whose stored plan the dispatcher reads.
    let sealed = rehearsal::seal(known.plan.clone(), &environment);
    let event = crate::notify::routed(&sealed, failed(why.clone(), Some(&summary.run.id), now()));
    store.append_event(&event).await?;
    Ok(Rehearsed::Failed(why))
}

/// The `evidence_expiring` event of `evidence` (expiring at `expires_ms`), routed like the
/// rehearsal that made it (its sealed channels), on that rehearsal's run (whose stored plan
/// the dispatcher reads).
pub fn evidence_expiring(
    known: &KnownPlan,
    evidence: &Evidence,
    expires_ms: i64,
    now_ms: i64,
) -> NewEvent {
    let sealed = rehearsal::seal(known.plan.clone(), &evidence.environment);
    let event = NewEvent::new(EVIDENCE_EXPIRING, "backout", now_ms)
        .run(&evidence.run_id)
        .payload(json!({
            "service": known.plan.release.service,
            "plan_hash": known.hash,
            "evidence_id": evidence.id,
            "environment": evidence.environment,
            "expires_at_ms": expires_ms,
            "expires_at": crate::time::utc(expires_ms),
        }));
    crate::notify::routed(&sealed, event)
}

/// "last scheduled rehearsal failed on 2026-12-02T03:00:00Z in staging: run … ended failed"
/// when the newest scheduled attempt of `hash` failed after the newest evidence
/// (`evidence_ms`), for the document's Q9 and the UI.
pub async fn last_failure(
    store: &dyn Store,
    hash: &str,
    evidence_ms: Option<i64>,
) -> Result<Option<String>, ExecError> {
    let mut last = None;
    let mut after = 0;
    loop {
        let page = store
            .events_of_kinds(after, &[REHEARSAL_FAILED], 1000)
            .await?;
        for e in &page {
            if e.payload.get("plan_hash").and_then(|v| v.as_str()) == Some(hash) {
                last = Some(e.clone());
            }
        }
        match page.last() {
            Some(p) if page.len() == 1000 => after = p.seq,
            _ => break,
        }
    }
    Ok(last
        .filter(|e| evidence_ms.is_none_or(|ms| e.at_ms > ms))
        .map(|e| {
            let text = |k: &str| e.payload.get(k).and_then(|v| v.as_str()).unwrap_or("");
            format!(
                "Last scheduled rehearsal failed on {} in {}: {}",
                crate::time::utc(e.at_ms),
                text("environment"),
                text("error")
            )
        }))
}
