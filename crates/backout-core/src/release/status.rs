//! Where a release stands, as journaled (nothing is measured): its window, the verdict and each
//! criterion's last value, and where the decision stands in words. `backout status REL` and the
//! server's `GET /api/v1/releases/{id}` show the same thing.

use std::sync::Arc;

use backout_model::Plan;
use backout_store::{Event, Release, Store};
use serde_json::Value;

use super::check::CheckReport;
use super::decide::{self, Outcome};
use super::tracker::Tracker;
use crate::errors::ExecError;
use crate::time::{left, utc};

/// A release with its verdict and criteria as last journaled.
#[derive(Clone, Debug)]
pub struct ReleaseStatus {
    pub release: Release,
    /// The verdict and criteria; `None` when the stored plan no longer lints.
    pub report: Option<CheckReport>,
    /// Where the decision stands ([`decision_line`]).
    pub decision: Option<String>,
    /// Where the release stands as a whole (open, rolling back, rolled back, …).
    pub outcome: Outcome,
    pub now_ms: i64,
}

/// Reads a release and replays its journal into a verdict and the decision state.
pub async fn status(
    store: &dyn Store,
    release_id: &str,
    now_ms: i64,
) -> Result<ReleaseStatus, ExecError> {
    Ok(view(store, release_id, now_ms, |_| {}).await?.status)
}

/// A release's status with what it was computed from: its plan (`None` when the stored plan
/// no longer lints) and its replayed decisions.
#[derive(Clone, Debug)]
pub struct ReleaseView {
    pub status: ReleaseStatus,
    pub plan: Option<Arc<Plan>>,
    pub decisions: decide::Decisions,
}

/// [`status`] in one read of the release's journal, which `each` also sees, in order (the web
/// UI's charts and history come from the same pass): the verdict's replay, the decisions'
/// replay and the caller's share every page of events, so a view costs one journal read
/// however the page is composed.
pub async fn view(
    store: &dyn Store,
    release_id: &str,
    now_ms: i64,
    mut each: impl FnMut(&Event),
) -> Result<ReleaseView, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = Tracker::plan_of(&release).ok().map(Arc::new);
    let mut tracker = plan.as_ref().map(|p| Tracker::new(&release, p.clone()));
    let quorum = plan.as_deref().map_or(1, decide::quorum_of);
    let mut decisions = decide::Decisions::default();
    super::for_each_event(store, release_id, |event| {
        if let Some(tracker) = tracker.as_mut() {
            tracker.apply(event);
            decisions.apply(event, quorum);
        }
        each(event);
    })
    .await?;
    let report = tracker.map(|t| t.report(&[], now_ms));
    let (decision, outcome) = match &plan {
        Some(plan) => {
            let loaded = decide::Loaded {
                release,
                plan: (**plan).clone(),
                decisions,
            };
            let line = decision_line(&loaded, now_ms);
            let outcome = Outcome::of(&loaded.release, &loaded.decisions);
            let decide::Loaded {
                release, decisions, ..
            } = loaded;
            return Ok(ReleaseView {
                status: ReleaseStatus {
                    release,
                    report,
                    decision: line,
                    outcome,
                    now_ms,
                },
                plan: Some(plan.clone()),
                decisions,
            });
        }
        None => (None, Outcome::of(&release, &decide::Decisions::default())),
    };
    Ok(ReleaseView {
        status: ReleaseStatus {
            release,
            report,
            decision,
            outcome,
            now_ms,
        },
        plan,
        decisions,
    })
}

impl ReleaseStatus {
    /// The release without its plan text, with `window_closed`, `verdict`, `criteria` and
    /// `decision` (the JSON of `backout status REL --format json`).
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(&self.release).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("plan_source");
            map.insert("outcome".into(), self.outcome.as_str().into());
            map.insert(
                "window_closed".into(),
                self.release.window_closed(self.now_ms).into(),
            );
            if let Some(report) = &self.report {
                map.insert(
                    "verdict".into(),
                    serde_json::to_value(report.verdict).unwrap_or_default(),
                );
                map.insert(
                    "criteria".into(),
                    serde_json::to_value(&report.criteria).unwrap_or_default(),
                );
            }
            if let Some(decision) = &self.decision {
                map.insert("decision".into(), decision.as_str().into());
            }
        }
        value
    }
}

/// Where the decision stands, in words: nothing pending (`None`), waiting for whom (and when
/// the fallback may decide), approved (and whether it ran), or denied.
pub fn decision_line(loaded: &decide::Loaded, now_ms: i64) -> Option<String> {
    let auth = loaded.plan.authorization.given()?;
    let d = &loaded.decisions;
    if let Some(at) = d.approved_at_ms {
        let who: Vec<&str> = d.approvals.iter().map(|a| a.actor.as_str()).collect();
        let ran = if d.executions.is_empty() {
            format!(
                "; not executed yet (`backout execute {}`)",
                loaded.release.id
            )
        } else {
            "; executed".to_string()
        };
        return Some(format!(
            "approved at {} by {}{ran}",
            utc(at),
            who.join(", ")
        ));
    }
    if let Some(since) = d.pending_since_ms {
        let fallback = auth
            .fallback
            .as_ref()
            .map(|f| {
                let from = since + i64::try_from(f.after.as_millis()).unwrap_or(0);
                if now_ms >= from {
                    format!("; `{}` may decide too (escalated)", f.deciders)
                } else {
                    format!(
                        "; `{}` may decide too in {}",
                        f.deciders,
                        left(from - now_ms)
                    )
                }
            })
            .unwrap_or_default();
        return Some(format!(
            "waiting since {} for `{}`: {} of {} approval(s){fallback}",
            utc(since),
            auth.deciders,
            d.approvals.len(),
            auth.quorum
        ));
    }
    d.denied
        .as_ref()
        .map(|(who, why)| format!("denied by {who}: {why}"))
}
