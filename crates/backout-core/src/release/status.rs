//! Where a release stands, as journaled (nothing is measured): its window, the verdict and each
//! criterion's last value, and where the decision stands in words. `backout status REL` and the
//! server's `GET /api/v1/releases/{id}` show the same thing.

use std::sync::Arc;

use backout_store::{Release, Store};
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
    let release = store.get_release(release_id).await?;
    let report = match Tracker::plan_of(&release) {
        Ok(plan) => Some(
            Tracker::replay(store, &release, Arc::new(plan))
                .await?
                .report(&[], now_ms),
        ),
        Err(_) => None,
    };
    let (decision, outcome) = match decide::load(store, release_id).await {
        Ok(loaded) => (
            decision_line(&loaded, now_ms),
            Outcome::of(&loaded.release, &loaded.decisions),
        ),
        Err(_) => (None, Outcome::of(&release, &decide::Decisions::default())),
    };
    Ok(ReleaseStatus {
        release,
        report,
        decision,
        outcome,
        now_ms,
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
