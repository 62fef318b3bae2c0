//! The state of one release between measurements: replayed from its journal once, then kept
//! current by the measurements taken and the events other processes journal (checkpoints,
//! requests, decisions). Pure bookkeeping: it decides which events to journal, the caller
//! writes them.

use std::sync::Arc;

use backout_model::Plan;
use backout_model::plan::Criterion;
use backout_store::{Event, NewEvent, Release, ReleaseState, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check::{CheckReport, CriterionReport};
use crate::criteria::{CriterionState, CriterionStatus, Observation, Verdict, classify, evaluate};
use crate::errors::ExecError;
use crate::notify::routed;

/// The event kinds, journaled by others, that change a tracked release.
pub const TRACKED_KINDS: [&str; 7] = [
    "release_started",
    "rollback_requested",
    "checkpoint_reached",
    "window_closed",
    "decision",
    // A verified (or unverified) rollback concludes the release and closes its window.
    "rolled_back",
    "rollback_unverified",
];

/// One release's window, criteria states and verdict.
#[derive(Clone, Debug)]
pub struct Tracker {
    pub release_id: String,
    pub service: String,
    pub version: String,
    opened_at_ms: i64,
    closes_at_ms: Option<i64>,
    /// The window was closed explicitly (point of no return, success, or on time).
    closed: bool,
    close_reason: Option<String>,
    /// The window closed early because the deployment met its success criteria: the verdict
    /// stays `success` rather than `closed`.
    succeeded: bool,
    plan: Arc<Plan>,
    states: Vec<CriterionState>,
    requested: bool,
    last_verdict: Option<Verdict>,
    closing_noticed: bool,
    /// The newest journal event of the release applied (0: none yet).
    through_seq: u64,
    /// How many journal events the last replay applied after its snapshot: when many, `check`
    /// journals a new snapshot so the next replay stays short.
    replayed: usize,
}

/// The event kind of a tracker snapshot: a derived state, journaled so that `check` (a new
/// process each round) replays only what came after it instead of the whole release.
pub const SNAPSHOT_KIND: &str = "criteria_snapshot";

/// A replay that applied at least this many events journals a snapshot (see [`Tracker::replay`]):
/// a `check` round then replays at most about this many events plus its own.
pub const SNAPSHOT_AFTER: usize = 64;

/// What a `criteria_snapshot` event holds: the tracker's state after every event of the release
/// up to `through_seq` (events journaled later, including the snapshot's own batch, are replayed
/// on top of it). Seqs are assigned in commit order, so no event below `through_seq` can appear
/// after the snapshot was taken.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    through_seq: u64,
    /// Criterion ids with their states, in the plan's order: a snapshot of another plan's
    /// criteria is ignored (the release's plan never changes, so this is a guard, not a feature).
    criteria: Vec<(String, CriterionState)>,
    requested: bool,
    last_verdict: Option<Verdict>,
    closing_noticed: bool,
    closed: bool,
    succeeded: bool,
    close_reason: Option<String>,
}

/// What [`Tracker::conclude`] decided: the verdict now, the events to journal (a
/// `window_closing` notice, a changed verdict), and whether the window closes now (with the
/// reason and its `window_closed` event, for [`Store::close_release`]).
#[derive(Debug)]
pub struct Conclusion {
    pub verdict: Verdict,
    pub changed: bool,
    pub events: Vec<NewEvent>,
    pub close: Option<(String, NewEvent)>,
}

impl Tracker {
    /// A tracker for `release` guarded by `plan` (the plan stored with the release), with no
    /// measurement applied yet.
    pub fn new(release: &Release, plan: Arc<Plan>) -> Tracker {
        let count = plan.criteria.given().map_or(0, |c| c.rollback_when.len());
        Tracker {
            release_id: release.id.clone(),
            service: release.service.clone(),
            version: release.version.clone(),
            opened_at_ms: release.opened_at_ms,
            closes_at_ms: release.closes_at_ms,
            closed: release.state == ReleaseState::Closed,
            close_reason: release.close_reason.clone(),
            succeeded: false,
            plan,
            states: vec![CriterionState::default(); count],
            requested: false,
            last_verdict: None,
            closing_noticed: false,
            through_seq: 0,
            replayed: 0,
        }
    }

    /// The plan stored with a release, linted again (it linted when the release started).
    pub fn plan_of(release: &Release) -> Result<Plan, ExecError> {
        backout_model::lint(&release.plan_source)
            .plan
            .ok_or_else(|| ExecError::InvalidPlan {
                run_id: release.id.clone(),
                message: "the plan stored with the release no longer lints".into(),
            })
    }

    /// A tracker brought up to date with every event of the release in the journal: from the
    /// newest `criteria_snapshot` when there is a usable one, then every event after it. The
    /// cost is the events since that snapshot, not the release's whole history.
    pub async fn replay(
        store: &dyn Store,
        release: &Release,
        plan: Arc<Plan>,
    ) -> Result<Tracker, ExecError> {
        let mut tracker = Tracker::new(release, plan);
        if let Some(event) = store.last_release_event(&release.id, SNAPSHOT_KIND).await? {
            tracker.restore(&event);
        }
        let mut after = tracker.through_seq;
        loop {
            let page = store.release_events(&release.id, after, 1000).await?;
            for event in &page {
                tracker.apply(event);
                tracker.replayed += 1;
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = last.seq,
                _ => return Ok(tracker),
            }
        }
    }

    /// Takes the state of a snapshot event; one that does not decode or names other criteria
    /// is ignored, and the replay starts from the beginning as before snapshots existed.
    fn restore(&mut self, event: &Event) {
        let Ok(snapshot) = serde_json::from_value::<Snapshot>(event.payload.clone()) else {
            return;
        };
        let same_criteria = snapshot.criteria.len() == self.states.len()
            && snapshot
                .criteria
                .iter()
                .zip(self.criteria())
                .all(|((id, _), c)| *id == c.id);
        if !same_criteria {
            return;
        }
        self.states = snapshot.criteria.into_iter().map(|(_, s)| s).collect();
        self.requested = snapshot.requested;
        self.last_verdict = snapshot.last_verdict;
        self.closing_noticed = snapshot.closing_noticed;
        self.closed |= snapshot.closed;
        self.succeeded = snapshot.succeeded;
        if self.close_reason.is_none() {
            self.close_reason = snapshot.close_reason;
        }
        self.through_seq = snapshot.through_seq;
    }

    /// A `criteria_snapshot` event of the state as replayed, when the replay was long enough to
    /// be worth one ([`SNAPSHOT_AFTER`]). Take it before applying anything that is not yet in
    /// the journal: it describes the journal up to the newest event replayed.
    pub fn snapshot_if_long(&self, actor: &str, now_ms: i64) -> Option<NewEvent> {
        if self.replayed < SNAPSHOT_AFTER {
            return None;
        }
        let snapshot = Snapshot {
            through_seq: self.through_seq,
            criteria: self
                .criteria()
                .iter()
                .map(|c| c.id.clone())
                .zip(self.states.iter().cloned())
                .collect(),
            requested: self.requested,
            last_verdict: self.last_verdict,
            closing_noticed: self.closing_noticed,
            closed: self.closed,
            succeeded: self.succeeded,
            close_reason: self.close_reason.clone(),
        };
        let payload = serde_json::to_value(&snapshot).ok()?;
        Some(
            NewEvent::new(SNAPSHOT_KIND, actor, now_ms)
                .payload(payload)
                .release(&self.release_id),
        )
    }

    pub fn criteria(&self) -> &[Criterion] {
        criteria_of(&self.plan)
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// When the release's window opened (ms since the epoch): `baseline: {before_deploy}` is
    /// measured relative to it.
    pub fn opened_at_ms(&self) -> i64 {
        self.opened_at_ms
    }

    pub fn states(&self) -> &[CriterionState] {
        &self.states
    }

    pub fn closes_at_ms(&self) -> Option<i64> {
        self.closes_at_ms
    }

    /// Closed explicitly, or past its closing time.
    pub fn window_closed(&self, now_ms: i64) -> bool {
        self.closed || self.closes_at_ms.is_some_and(|t| now_ms >= t)
    }

    /// Whether the window was recorded as closed (nothing more to measure or journal).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Applies one journaled event of this release. Idempotent for everything but
    /// measurements, which the journal holds once each.
    pub fn apply(&mut self, event: &Event) {
        self.through_seq = self.through_seq.max(event.seq);
        let text = |key: &str| event.payload.get(key).and_then(|v| v.as_str());
        match event.kind.as_str() {
            "measurement" => {
                let observation = event
                    .payload
                    .get("observation")
                    .cloned()
                    .and_then(|o| serde_json::from_value::<Observation>(o).ok());
                let position = text("criterion")
                    .and_then(|id| self.criteria().iter().position(|c| c.id == id));
                if let (Some(i), Some(observation)) = (position, observation) {
                    // The plan is shared: hold it while the state changes, without a copy.
                    let plan = Arc::clone(&self.plan);
                    let criterion = &criteria_of(&plan)[i];
                    self.states[i].observe(criterion, &observation, event.at_ms, self.opened_at_ms);
                }
            }
            "rollback_requested" => self.requested = true,
            "verdict" => {
                self.last_verdict = event
                    .payload
                    .get("verdict")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok());
            }
            "window_closing" => self.closing_noticed = true,
            "window_closed" | "rolled_back" | "rollback_unverified" => {
                self.closed = true;
                self.succeeded |= text("verdict") == Some("success");
                if self.close_reason.is_none() {
                    self.close_reason = text("reason").map(str::to_string);
                }
            }
            // A decider denied the rollback: tripped criteria re-arm and the request is answered.
            "decision" if text("decision") == Some("deny") => {
                self.requested = false;
                for state in &mut self.states {
                    state.rearm();
                }
            }
            _ => {}
        }
    }

    /// Takes in a person's request for a rollback that is being journaled now.
    pub fn apply_request(&mut self) {
        self.requested = true;
    }

    /// When criterion `i` is next due: its last measurement plus `every`, never before the end
    /// of its `delay`.
    pub fn due_at(&self, i: usize) -> i64 {
        let criterion = &self.criteria()[i];
        let delay_end = self.opened_at_ms + millis(criterion.delay.as_millis());
        self.states[i]
            .last_measured_ms
            .map_or(delay_end, |t| t + millis(criterion.every.as_millis()))
            .max(delay_end)
    }

    /// The next moment the window changes by time alone: the closing notice, or the close.
    pub fn window_timer_ms(&self) -> Option<i64> {
        let closes = self.closes_at_ms.filter(|_| !self.closed)?;
        let notice = closes - self.closing_notice_ms();
        Some(if self.closing_noticed || notice <= self.opened_at_ms {
            closes
        } else {
            notice
        })
    }

    /// How long before the window closes on time `window_closing` is journaled
    /// (`window.closing_notice`).
    fn closing_notice_ms(&self) -> i64 {
        self.plan
            .window
            .given()
            .map_or(0, |w| millis(w.closing_notice.as_millis()))
    }

    /// Applies a measurement of criterion `i` taken at `at_ms`; returns its journal event.
    pub fn measured(
        &mut self,
        i: usize,
        observation: Observation,
        at_ms: i64,
        actor: &str,
    ) -> NewEvent {
        let plan = Arc::clone(&self.plan);
        let criterion = &criteria_of(&plan)[i];
        let (class, reason) = classify(criterion, &observation);
        self.states[i].observe(criterion, &observation, at_ms, self.opened_at_ms);
        NewEvent::new("measurement", actor, at_ms)
            .payload(json!({
                "criterion": criterion.id,
                "observation": observation,
                "class": class,
                "reason": reason,
            }))
            .release(&self.release_id)
    }

    /// The verdict at `now_ms`, without changing anything.
    pub fn verdict(&self, now_ms: i64) -> Verdict {
        if self.succeeded {
            return Verdict::Success;
        }
        let pairs: Vec<(&str, &CriterionState)> = self
            .criteria()
            .iter()
            .map(|c| c.id.as_str())
            .zip(self.states.iter())
            .collect();
        let success = self
            .plan
            .criteria
            .given()
            .and_then(|c| c.success_when.as_ref())
            .map(|s| (s.checks.as_slice(), millis(s.hold.as_millis())));
        evaluate::verdict(
            &pairs,
            self.requested,
            self.window_closed(now_ms),
            success,
            now_ms,
        )
    }

    /// Decides what changed at `now_ms` after measurements or events were applied: a changed
    /// verdict (with its evidence), a `window_closing` notice, and a close of the window on
    /// time or early as a success. The tracker counts them as done; the caller journals them.
    pub fn conclude(&mut self, now_ms: i64, actor: &str) -> Conclusion {
        let verdict = self.verdict(now_ms);
        let mut events = Vec::new();
        if let Some(closes) = self.closes_at_ms
            && !self.closed
            && !self.closing_noticed
            && now_ms >= closes - self.closing_notice_ms()
            && now_ms < closes
        {
            self.closing_noticed = true;
            events.push(routed(
                &self.plan,
                NewEvent::new("window_closing", actor, now_ms)
                    .payload(json!({ "closes_at_ms": closes, "remaining_ms": closes - now_ms }))
                    .release(&self.release_id),
            ));
        }
        let changed = self.last_verdict != Some(verdict);
        if changed {
            self.last_verdict = Some(verdict);
            events.push(routed(
                &self.plan,
                NewEvent::new("verdict", actor, now_ms)
                    .payload(json!({ "verdict": verdict, "evidence": self.evidence() }))
                    .release(&self.release_id),
            ));
        }
        let close = if self.closed {
            None
        } else {
            match (verdict, self.closes_at_ms) {
                (Verdict::Success, _) => {
                    Some("success: every success_when check passed for its hold".to_string())
                }
                (_, Some(t)) if now_ms >= t => {
                    Some("closed on time (window.closes_after)".to_string())
                }
                _ => None,
            }
        };
        let close = close.map(|reason| {
            self.closed = true;
            self.succeeded = verdict == Verdict::Success;
            self.close_reason = Some(reason.clone());
            let event = routed(
                &self.plan,
                NewEvent::new("window_closed", actor, now_ms)
                    .payload(json!({ "reason": reason, "verdict": verdict })),
            );
            (reason, event)
        });
        Conclusion {
            verdict,
            changed,
            events,
            close,
        }
    }

    /// The criteria that are not passing, with their latest reasons: why the verdict is what
    /// it is.
    pub fn evidence(&self) -> serde_json::Value {
        let criteria: Vec<serde_json::Value> = self
            .criteria()
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.status != CriterionStatus::Passing)
            .map(|(c, s)| {
                json!({
                    "criterion": c.id,
                    "status": s.status,
                    "consecutive_failures": s.consecutive_failures,
                    "reason": s.last_reason,
                })
            })
            .collect();
        json!({ "requested": self.requested, "criteria": criteria })
    }

    /// A report of every criterion; `measured` marks the ones measured in this round.
    pub fn report(&self, measured: &[bool], now_ms: i64) -> CheckReport {
        CheckReport {
            release_id: self.release_id.clone(),
            verdict: self.verdict(now_ms),
            requested: self.requested,
            closes_at_ms: self.closes_at_ms,
            close_reason: self.close_reason.clone(),
            criteria: self
                .criteria()
                .iter()
                .zip(&self.states)
                .enumerate()
                .map(|(i, (c, state))| CriterionReport {
                    id: c.id.clone(),
                    title: c.name().to_string(),
                    state: state.clone(),
                    measured: measured.get(i).copied().unwrap_or(false),
                    next_due_ms: (!self.window_closed(now_ms)).then(|| self.due_at(i)),
                })
                .collect(),
        }
    }
}

/// The rollback criteria of a plan.
fn criteria_of(plan: &Plan) -> &[Criterion] {
    plan.criteria
        .given()
        .map_or(&[], |c| c.rollback_when.as_slice())
}

fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX / 2)
}
