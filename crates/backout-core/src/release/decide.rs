//! Who may say yes to a rollback (Q3) and who may carry it out (Q4), enforced. Every rule
//! refuses with a message naming the rule, the group and its members, so the person at 3 a.m.
//! knows whom to wake.
//!
//! - Only `authorization.deciders` decide; once `fallback.after` passed since the rollback became
//!   required (or was requested) without a decision, `fallback.deciders` may too, and an
//!   `escalated` event is journaled at that moment (by the watcher, or by the first fallback
//!   decision if nobody watched).
//! - `quorum` distinct approvers approve; one deny answers the request: tripped criteria re-arm
//!   and the release keeps being watched.
//! - After the window closed, an approval needs `--override-window` and a reason, and the
//!   execution needs the full quorum of such approvals.
//! - `execute` needs the approval, a member of `execution.performers`, and with
//!   `separation_of_duties` someone who did not approve; the same holds for confirming or
//!   resolving the run's manual steps.

use backout_model::Plan;
use backout_model::plan::{Authorization, Group};
use backout_store::{Event, NewEvent, Release, Store};
use serde_json::json;

pub use super::acts::{Act, check_act, may_act, may_rehearse, may_run};
pub use super::outcome::Outcome;
use super::tracker::Tracker;
use crate::errors::ExecError;

/// The actor of approvals made by `authorization.automatic` criteria.
pub const AUTOMATIC: &str = "backout:automatic";

/// The actor of an unattended game day (`backout gameday --auto`): it may approve and execute
/// the rollback of a drill release (and of nothing else), standing in for the people a
/// drill without them cannot ask.
pub const GAMEDAY: &str = "backout:gameday";

/// Approve or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Approve,
    Deny,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Approve => "approve",
            Choice::Deny => "deny",
        }
    }
}

/// One approval counted toward the quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub actor: String,
    pub at_ms: i64,
    pub override_window: bool,
}

/// The decision state of a release, replayed from its journal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Since when a rollback is required or requested without an answer (none: nothing to
    /// decide).
    pub pending_since_ms: Option<i64>,
    /// Approvals since the rollback became required, in order.
    pub approvals: Vec<Approval>,
    /// When the quorum was reached.
    pub approved_at_ms: Option<i64>,
    /// The latest deny: who, and why.
    pub denied: Option<(String, String)>,
    /// An `escalated` event was journaled for the pending decision.
    pub escalated: bool,
    /// The deciders were asked (`decision_requested`) for the pending decision.
    pub asked: bool,
    /// An `escalated` event was journaled because no execution started within
    /// `execution.start_within` of the approval.
    pub start_escalated: bool,
    /// Executions started for the approval (run ids when known).
    pub executions: Vec<String>,
    /// Where the rollback stands once one started (kept across a later deny).
    pub rollback: Option<Outcome>,
    /// The release is a game day's practice release (`release_started` says `drill`): never a
    /// production release, and [`GAMEDAY`] may act on it.
    pub drill: bool,
}

impl Decisions {
    /// Replays the events of a release, in order.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>, quorum: u32) -> Decisions {
        let mut state = Decisions::default();
        for event in events {
            state.apply(event, quorum);
        }
        state
    }

    pub fn apply(&mut self, event: &Event, quorum: u32) {
        let text = |key: &str| event.payload.get(key).and_then(|v| v.as_str());
        match event.kind.as_str() {
            "release_started" => {
                self.drill = event.payload.get("drill") == Some(&serde_json::Value::Bool(true));
            }
            "verdict" if text("verdict") == Some("rollback_required") => {
                self.pending_since_ms.get_or_insert(event.at_ms);
            }
            "rollback_requested" => {
                self.pending_since_ms.get_or_insert(event.at_ms);
            }
            "decision_requested" => {
                self.pending_since_ms.get_or_insert(event.at_ms);
                self.asked = true;
            }
            "escalated" if text("reason") == Some("start_within") => self.start_escalated = true,
            "escalated" => self.escalated = true,
            "decision" if text("decision") == Some("approve") => {
                if self.approvals.iter().all(|a| a.actor != event.actor) {
                    self.approvals.push(Approval {
                        actor: event.actor.clone(),
                        at_ms: event.at_ms,
                        override_window: event
                            .payload
                            .get("override_window")
                            .and_then(serde_json::Value::as_bool)
                            .unwrap_or(false),
                    });
                }
                self.pending_since_ms.get_or_insert(event.at_ms);
                let automatic =
                    event.payload.get("automatic") == Some(&serde_json::Value::Bool(true));
                if self.approved_at_ms.is_none()
                    && (automatic || self.approvals.len() >= quorum as usize)
                {
                    self.approved_at_ms = Some(event.at_ms);
                }
            }
            "decision" if text("decision") == Some("deny") => {
                *self = Decisions {
                    denied: Some((event.actor.clone(), text("reason").unwrap_or("").into())),
                    executions: std::mem::take(&mut self.executions),
                    rollback: self.rollback,
                    drill: self.drill,
                    ..Decisions::default()
                };
            }
            "execution_started" => {
                self.executions
                    .push(text("run_id").unwrap_or("").to_string());
                self.rollback = Some(Outcome::RollingBack);
            }
            // The executor refused to start (a precondition failed, the plan has no procedure):
            // nothing ran, so a performer may try again.
            "execution_abandoned" => {
                self.executions.pop();
                self.rollback = None;
            }
            // The run of a release's execution names the release (journaled by the executor).
            "run_started" => {
                if let (Some(last), Some(run)) = (self.executions.last_mut(), &event.run_id) {
                    last.clone_from(run);
                }
            }
            // (A run that merely waited for a person was journaled so by older versions.)
            "execution_finished" if matches!(text("state"), Some("failed" | "aborted")) => {
                self.rollback = Some(Outcome::RollbackFailed);
            }
            "execution_reopened" => self.rollback = Some(Outcome::RollingBack),
            "rolled_back" | "rollback_verified" => self.rollback = Some(Outcome::RolledBack),
            "rollback_unverified" => self.rollback = Some(Outcome::RollbackUnverified),
            _ => {}
        }
    }

    /// Whether the quorum approved with the window overridden by each approver.
    pub fn overrides_window(&self, quorum: u32) -> bool {
        self.approvals.iter().filter(|a| a.override_window).count() >= quorum as usize
    }

    pub fn approved_by(&self, actor: &str) -> bool {
        self.approvals.iter().any(|a| same(&a.actor, actor))
    }
}

impl Decisions {
    /// Replays the decision events of a release from the journal.
    pub async fn read(
        store: &dyn Store,
        release_id: &str,
        quorum: u32,
    ) -> Result<Decisions, ExecError> {
        let mut decisions = Decisions::default();
        // Only the kinds `apply` reads: a release's measurements (most of its journal) stay in
        // the database.
        super::for_each_event_of_kinds(store, release_id, &DECISION_KINDS, |event| {
            decisions.apply(event, quorum)
        })
        .await?;
        Ok(decisions)
    }
}

/// Every event kind [`Decisions::apply`] reads; `read` asks the store for these only.
pub const DECISION_KINDS: [&str; 14] = [
    "release_started",
    "verdict",
    "rollback_requested",
    "decision_requested",
    "escalated",
    "decision",
    "execution_started",
    "execution_abandoned",
    "run_started",
    "execution_finished",
    "execution_reopened",
    "rolled_back",
    "rollback_verified",
    "rollback_unverified",
];

/// The quorum of a plan (1 when authorization does not apply).
pub fn quorum_of(plan: &Plan) -> u32 {
    plan.authorization.given().map_or(1, |a| a.quorum)
}

/// Identities compare without regard to case (`Carol@Example.com` is `carol@example.com`).
pub(super) fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

pub(super) fn group<'a>(plan: &'a Plan, name: &str) -> Option<&'a Group> {
    plan.people.iter().find(|g| g.name == name)
}

pub(super) fn member(plan: &Plan, name: &str, actor: &str) -> bool {
    group(plan, name).is_some_and(|g| g.members.iter().any(|m| same(m, actor)))
}

/// `release-managers` (carol@example.com, dan@example.com)
pub(super) fn describe_group(plan: &Plan, name: &str) -> String {
    match group(plan, name) {
        Some(g) => format!("`{name}` ({})", g.members.join(", ")),
        None => format!("`{name}`"),
    }
}

fn millis(d: backout_model::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// A release with its plan and decision state.
pub struct Loaded {
    pub release: Release,
    pub plan: Plan,
    pub decisions: Decisions,
}

/// Reads a release, its plan and its decisions.
pub async fn load(store: &dyn Store, release_id: &str) -> Result<Loaded, ExecError> {
    let release = store.get_release(release_id).await?;
    let plan = Tracker::plan_of(&release)?;
    let decisions = Decisions::read(store, release_id, quorum_of(&plan)).await?;
    Ok(Loaded {
        release,
        plan,
        decisions,
    })
}

/// What `backout decide` asks for.
pub struct Decide<'a> {
    pub release_id: &'a str,
    pub actor: &'a str,
    pub choice: Choice,
    pub reason: &'a str,
    pub override_window: bool,
    pub now_ms: i64,
}

/// What a recorded decision did.
#[derive(Clone, Debug)]
pub struct Decided {
    pub approvals: usize,
    pub quorum: u32,
    /// The quorum is reached: the rollback may be executed.
    pub approved: bool,
    /// The decider decided as a member of the fallback group (and the decision escalated).
    pub as_fallback: bool,
    pub override_window: bool,
}

/// Records a decision after checking every rule of `authorization`.
pub async fn decide(store: &dyn Store, request: &Decide<'_>) -> Result<Decided, ExecError> {
    let Loaded {
        release,
        plan,
        decisions,
    } = load(store, request.release_id).await?;
    let id = request.release_id;
    if request.reason.trim().is_empty() {
        return Err(ExecError::Usage(
            "a decision needs a reason (--reason)".into(),
        ));
    }
    let Some(auth) = plan.authorization.given() else {
        return Err(ExecError::Refused(format!(
            "the plan of release `{id}` says authorization does not apply ({}); there is \
             nothing to decide: a performer may run `backout execute {id}`",
            match &plan.authorization {
                backout_model::plan::Answer::NotApplicable(why) => why.as_str(),
                backout_model::plan::Answer::Given(_) => "",
            }
        )));
    };
    let window_closed = release.window_closed(request.now_ms);
    if request.override_window && !window_closed {
        return Err(ExecError::Usage(format!(
            "the window of release `{id}` is still open: --override-window is only for a closed window"
        )));
    }
    if request.choice == Choice::Approve && window_closed && !request.override_window {
        return Err(ExecError::Refused(format!(
            "{}. To roll back anyway, {} deciders must each approve with --override-window and \
             a reason",
            super::window_closed(&release, Some(&plan)),
            auth.quorum
        )));
    }
    let Some(pending_since) = decisions.pending_since_ms.or((request.override_window
        && request.choice == Choice::Approve)
        .then_some(request.now_ms))
    else {
        return Err(ExecError::Refused(format!(
            "there is nothing to decide for release `{id}`: no rollback is required or \
             requested. `backout request {id} --reason …` asks for one"
        )));
    };
    // An unattended game day approves its own drill: there is nobody else to ask.
    let as_fallback = if request.actor == GAMEDAY && decisions.drill {
        false
    } else {
        authorize(&plan, auth, request, pending_since)?
    };
    if request.choice == Choice::Approve && decisions.approved_by(request.actor) {
        return Err(ExecError::Refused(format!(
            "`{}` already approved the rollback of release `{id}`; the quorum of {} needs \
             distinct approvers",
            request.actor, auth.quorum
        )));
    }
    if decisions.approved_at_ms.is_some() && request.choice == Choice::Approve {
        return Err(ExecError::Refused(format!(
            "the rollback of release `{id}` is already approved; a performer runs `backout execute {id}`"
        )));
    }
    let mut events = Vec::new();
    if as_fallback && !decisions.escalated {
        events.push(escalation(auth, pending_since, request.now_ms, id));
    }
    let approvals = decisions.approvals.len() + usize::from(request.choice == Choice::Approve);
    let approved = request.choice == Choice::Approve && approvals >= auth.quorum as usize;
    events.push(
        NewEvent::new("decision", request.actor, request.now_ms)
            .payload(json!({
                "decision": request.choice.as_str(),
                "reason": request.reason,
                "override_window": request.override_window,
                "fallback": as_fallback,
                "approvals": approvals,
                "quorum": auth.quorum,
                "approved": approved,
            }))
            .release(id),
    );
    let events: Vec<NewEvent> = events
        .into_iter()
        .map(|e| crate::notify::routed(&plan, e))
        .collect();
    store.append_events(&events).await?;
    Ok(Decided {
        approvals: if request.choice == Choice::Approve {
            approvals
        } else {
            0
        },
        quorum: auth.quorum,
        approved,
        as_fallback,
        override_window: request.override_window,
    })
}

/// Whether `actor` may approve now, as [`decide`] judges it (leaving out a closed window's
/// override): a rollback is pending and not yet approved, `actor` has not approved it, and is
/// a decider, or a fallback decider once `fallback.after` has passed. The web UI shows its
/// decision buttons by this; `decide` still enforces every rule.
pub fn may_decide(plan: &Plan, decisions: &Decisions, actor: &str, now_ms: i64) -> bool {
    let Some(auth) = plan.authorization.given() else {
        return false;
    };
    let Some(pending) = decisions.pending_since_ms else {
        return false;
    };
    if decisions.approved_at_ms.is_some() || decisions.approved_by(actor) {
        return false;
    }
    member(plan, &auth.deciders, actor)
        || auth.fallback.as_ref().is_some_and(|f| {
            member(plan, &f.deciders, actor) && now_ms >= pending + millis(f.after)
        })
}

/// Whether `actor` may decide now; `Ok(true)` when only as a member of the fallback group.
fn authorize(
    plan: &Plan,
    auth: &Authorization,
    request: &Decide<'_>,
    pending_since: i64,
) -> Result<bool, ExecError> {
    if member(plan, &auth.deciders, request.actor) {
        return Ok(false);
    }
    let deciders = describe_group(plan, &auth.deciders);
    let Some(fallback) = &auth.fallback else {
        return Err(ExecError::Refused(format!(
            "`{}` may not decide: only {deciders} may (authorization.deciders)",
            request.actor
        )));
    };
    if !member(plan, &fallback.deciders, request.actor) {
        return Err(ExecError::Refused(format!(
            "`{}` may not decide: only {deciders} may (authorization.deciders), or {} once no \
             decision came for {} (authorization.fallback)",
            request.actor,
            describe_group(plan, &fallback.deciders),
            fallback.after
        )));
    }
    let from = pending_since + millis(fallback.after);
    if request.now_ms < from {
        return Err(ExecError::Refused(format!(
            "`{}` is in the fallback group `{}`, which may decide only after {} without a \
             decision (authorization.fallback.after): in {}. Until then ask {deciders}",
            request.actor,
            fallback.deciders,
            fallback.after,
            backout_model::Duration::from_millis(
                u64::try_from(from - request.now_ms).unwrap_or(0) / 1000 * 1000
            )
        )));
    }
    Ok(true)
}

/// The `escalated` event for a decision nobody made within `fallback.after`.
pub fn escalation(auth: &Authorization, pending_since: i64, now_ms: i64, id: &str) -> NewEvent {
    let fallback = auth.fallback.as_ref();
    NewEvent::new("escalated", "backout", now_ms)
        .payload(json!({
            "reason": "no_decision",
            "pending_since_ms": pending_since,
            "after": fallback.map(|f| f.after.to_string()),
            "deciders": auth.deciders,
            "fallback_deciders": fallback.map(|f| f.deciders.clone()),
        }))
        .release(id)
}

/// The `decision_requested` event that asks the deciders of release `id` to decide, with the
/// evidence that makes a decision necessary (not yet routed).
pub fn decision_requested(
    plan: &Plan,
    auth: &backout_model::plan::Authorization,
    evidence: serde_json::Value,
    id: &str,
    now_ms: i64,
) -> NewEvent {
    NewEvent::new("decision_requested", "backout", now_ms)
        .payload(json!({
            "deciders": auth.deciders,
            "members": group(plan, &auth.deciders).map(|g| g.members.clone()),
            "quorum": auth.quorum,
            "fallback": auth.fallback.as_ref().map(|f| json!({
                "after": f.after.to_string(), "deciders": f.deciders,
            })),
            "evidence": evidence,
        }))
        .release(id)
}

/// What a watcher journals after a release's verdict or decisions changed, at `now_ms`:
/// - a rollback became required and one of `authorization.automatic` is tripped inside the
///   window: an approval by [`AUTOMATIC`] (no person needed);
/// - otherwise, once per pending decision: `decision_requested`, asking the deciders;
/// - no decision within `fallback.after`: `escalated` (the fallback group may now decide);
/// - approved, but no execution within `execution.start_within`: `escalated`.
///
/// Also returns when to look again (the next escalation due), if any.
pub fn follow_up(
    plan: &Plan,
    decisions: &Decisions,
    tracker: &Tracker,
    now_ms: i64,
    automatic: bool,
) -> (Vec<NewEvent>, Option<i64>) {
    let (events, next) = follow_up_events(plan, decisions, tracker, now_ms, automatic);
    let events = events
        .into_iter()
        .map(|e| crate::notify::routed(plan, e))
        .collect();
    (events, next)
}

fn follow_up_events(
    plan: &Plan,
    decisions: &Decisions,
    tracker: &Tracker,
    now_ms: i64,
    automatic: bool,
) -> (Vec<NewEvent>, Option<i64>) {
    let id = tracker.release_id.as_str();
    let mut events = Vec::new();
    let mut next = None;
    let Some(auth) = plan.authorization.given() else {
        return (events, next);
    };
    let Some(pending_since) = decisions.pending_since_ms else {
        return (events, next);
    };
    if decisions.approved_at_ms.is_none() {
        let tripped: Vec<String> = tracker
            .criteria()
            .iter()
            .zip(tracker.states())
            .filter(|(c, s)| {
                s.status == crate::criteria::CriterionStatus::Tripped
                    && auth.automatic.iter().any(|a| a == &c.id)
            })
            .map(|(c, s)| {
                format!(
                    "{} ({})",
                    c.id,
                    s.last_reason.as_deref().unwrap_or("tripped")
                )
            })
            .collect();
        // An unaccepted plan names no automatic decider: people decide (`accept.rs`).
        if automatic && !tripped.is_empty() && !tracker.window_closed(now_ms) {
            events.push(
                NewEvent::new("decision", AUTOMATIC, now_ms)
                    .payload(json!({
                        "decision": "approve",
                        "automatic": true,
                        "reason": format!("authorization.automatic: {} tripped", tripped.join(", ")),
                        "override_window": false,
                        "fallback": false,
                        "approvals": 1,
                        "quorum": auth.quorum,
                        "approved": true,
                    }))
                    .release(id),
            );
            return (events, next);
        }
        if !decisions.asked {
            events.push(decision_requested(
                plan,
                auth,
                tracker.evidence(),
                id,
                now_ms,
            ));
        }
        if let Some(fallback) = &auth.fallback
            && !decisions.escalated
        {
            let due = pending_since + millis(fallback.after);
            if now_ms >= due {
                events.push(escalation(auth, pending_since, now_ms, id));
            } else {
                next = Some(due);
            }
        }
    } else if let (Some(approved), Some(within)) = (
        decisions.approved_at_ms,
        plan.execution.given().and_then(|e| e.start_within),
    ) && decisions.executions.is_empty()
        && !decisions.start_escalated
    {
        let due = approved + millis(within);
        if now_ms >= due {
            events.push(
                NewEvent::new("escalated", "backout", now_ms)
                    .payload(json!({
                        "reason": "start_within",
                        "approved_at_ms": approved,
                        "start_within": within.to_string(),
                        "performers": plan.execution.given().map(|e| e.performers.clone()),
                    }))
                    .release(id),
            );
        } else {
            next = Some(due);
        }
    }
    (events, next)
}

/// What `backout execute` may run: the release and its plan, after every rule held.
pub struct Cleared {
    pub release: Release,
    pub plan: Plan,
    pub override_window: bool,
    /// Run this workaround (Q6) instead of the procedure.
    pub workaround: Option<String>,
}

/// Checks that `actor` may start the rollback of a release now, and journals the start
/// (`execution_started`), so a second `execute` is refused.
pub async fn clear_execution(
    store: &dyn Store,
    release_id: &str,
    actor: &str,
    now_ms: i64,
) -> Result<Cleared, ExecError> {
    clear_execution_of(store, release_id, actor, now_ms, None).await
}

/// [`clear_execution`] of the procedure, or of a workaround (`backout execute REL --workaround
/// ID`): under the same approval and performer rules, as the first execution or after the
/// rollback failed or did not verify (then the window does not stop it: the release is already
/// being rolled back).
pub async fn clear_execution_of(
    store: &dyn Store,
    release_id: &str,
    actor: &str,
    now_ms: i64,
    workaround: Option<&str>,
) -> Result<Cleared, ExecError> {
    let Loaded {
        release,
        plan,
        decisions,
    } = load(store, release_id).await?;
    let id = release_id;
    // An automatic approval is carried out by the watcher itself, as `backout:automatic`.
    let automatic = actor == AUTOMATIC;
    if automatic && !decisions.approved_by(AUTOMATIC) {
        return Err(ExecError::Refused(format!(
            "the rollback of release `{id}` was not approved automatically; a performer must start it"
        )));
    }
    // `backout gameday --auto` performs its own drill (and only a drill) as [`GAMEDAY`].
    let gameday = actor == GAMEDAY;
    if gameday && !decisions.drill {
        return Err(ExecError::Refused(format!(
            "`{GAMEDAY}` acts only on game-day drills; release `{id}` is not one"
        )));
    }
    if let Some(execution) = plan.execution.given()
        && !automatic
        && !gameday
        && !member(&plan, &execution.performers, actor)
    {
        return Err(ExecError::Refused(format!(
            "`{actor}` may not execute the rollback: only {} may (execution.performers)",
            describe_group(&plan, &execution.performers)
        )));
    }
    let mut override_window = false;
    if let Some(auth) = plan.authorization.given() {
        if decisions.approved_at_ms.is_none() {
            let denied = decisions
                .denied
                .as_ref()
                .map(|(who, why)| format!("; the last decision was a deny by {who}: {why}"))
                .unwrap_or_default();
            return Err(ExecError::Refused(format!(
                "the rollback of release `{id}` is not approved: {} of {} approval(s) from {}{denied}",
                decisions.approvals.len(),
                auth.quorum,
                describe_group(&plan, &auth.deciders)
            )));
        }
        if auth.separation_of_duties && !gameday && decisions.approved_by(actor) {
            return Err(ExecError::Refused(format!(
                "`{actor}` approved this rollback and may not also start it \
                 (authorization.separation_of_duties); another performer must"
            )));
        }
        override_window = decisions.overrides_window(auth.quorum);
    }
    if let Some(w) = workaround {
        crate::executor::steps_to_run(&plan, Some(w))?;
    }
    let recovering = workaround.is_some()
        && matches!(
            decisions.rollback,
            Some(Outcome::RollbackFailed | Outcome::RollbackUnverified)
        );
    // A rollback already under way (or over) is answered with where it stands and the ways
    // forward, before the window, which a concluded rollback closes.
    if let Some(run) = decisions.executions.last()
        && !recovering
    {
        return Err(ExecError::Refused(
            already_started(store, id, &plan, run, decisions.rollback).await,
        ));
    }
    if release.window_closed(now_ms) && !override_window && !recovering {
        return Err(ExecError::Refused(super::window_closed(
            &release,
            Some(&plan),
        )));
    }
    store
        .append_event(
            &NewEvent::new("execution_started", actor, now_ms)
                .payload(json!({ "override_window": override_window, "workaround": workaround }))
                .release(id),
        )
        .await?;
    Ok(Cleared {
        release,
        plan,
        override_window,
        workaround: workaround.map(str::to_string),
    })
}

/// Why a second execution is refused, with the way forward that is allowed (never a circle).
async fn already_started(
    store: &dyn Store,
    id: &str,
    plan: &Plan,
    run_id: &str,
    outcome: Option<Outcome>,
) -> String {
    let workarounds: Vec<&str> = plan
        .workarounds
        .given()
        .map(|w| w.iter().map(|w| w.id.as_str()).collect())
        .unwrap_or_default();
    let workaround = if workarounds.is_empty() {
        String::new()
    } else {
        format!(
            ", or run a workaround inside the release: `backout execute {id} --workaround ID` ({})",
            workarounds.join(", ")
        )
    };
    let run = match store.get_run(run_id).await {
        Ok(run) => run,
        Err(_) => {
            return format!(
                "the rollback of release `{id}` was already started; see `backout status {id}`"
            );
        }
    };
    let head = format!("the rollback of release `{id}` was already started as run `{run_id}`");
    match (run.state, outcome) {
        (backout_store::RunState::Running, _) => format!(
            "{head}, which is running; follow it with `backout status {run_id}` (if its executor is gone, `backout resume {run_id}`)"
        ),
        (backout_store::RunState::Waiting, _) => format!(
            "{head}, which waits for a person: see `backout status {run_id}`, then confirm, resolve, retry or skip its steps and `backout resume {run_id}`"
        ),
        (backout_store::RunState::Failed | backout_store::RunState::Aborted, _) => format!(
            "{head}, which ended {}{}",
            run.state,
            crate::executor::ways_forward(&run)
        ),
        (_, Some(Outcome::RolledBack)) => {
            format!("{head}; it finished and verified: the release is rolled back")
        }
        (_, Some(Outcome::RollbackUnverified)) => {
            format!("{head}; it finished but verify_after did not hold{workaround}")
        }
        _ => format!("{head}; see `backout status {run_id}`{workaround}"),
    }
}

/// Records that an execution cleared by [`clear_execution`] did not start a run.
pub async fn abandon_execution(
    store: &dyn Store,
    release_id: &str,
    actor: &str,
    why: &str,
    now_ms: i64,
) -> Result<(), ExecError> {
    store
        .append_event(
            &NewEvent::new("execution_abandoned", actor, now_ms)
                .payload(json!({ "error": why }))
                .release(release_id),
        )
        .await?;
    Ok(())
}
