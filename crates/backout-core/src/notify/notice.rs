//! Notices from the journal: what a delivery says, built from its event and the records the
//! dispatcher loaded (the release, the run and its steps, the plan stored with them, and the
//! parts of the release's history a message refers to). Pure: nothing here reads a store.
//!
//! The shapes of `verdict`, `decision` and `run` are the ones `backout_notify::Notice`
//! documents, so the built-in templates and the plan's `communication.templates` find what
//! they print.

use backout_model::plan::{Event, StepKind};
use backout_model::{Duration, Plan};
use backout_notify::{Link, Message, Notice, ReleaseInfo, WindowInfo, render};
use backout_store::{Delivery, Event as JournalEvent, Release, Run, StepRecord, StepState};
use serde_json::{Map, Value, json};

use super::route::MESSAGE;

/// Everything a notice is built from.
pub struct Facts<'a> {
    pub delivery: &'a Delivery,
    pub event: &'a JournalEvent,
    pub plan: &'a Plan,
    pub release: Option<&'a Release>,
    pub run: Option<&'a Run>,
    pub steps: &'a [StepRecord],
    pub history: &'a History,
    /// Where people open the web UI (`BACKOUT_PUBLIC_URL`): the notice links its pages.
    pub public_url: Option<&'a str>,
}

/// What happened to the release before the event, where a message needs it.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Who asked for a rollback and why (`backout request`), the latest request.
    pub requested: Option<(String, String)>,
    /// The payload of the latest `verdict` event.
    pub verdict: Option<Value>,
    /// The latest decision, as the notice's `decision`.
    pub decision: Option<Value>,
}

impl History {
    /// Takes in one earlier event of the release.
    pub fn apply(&mut self, event: &JournalEvent) {
        match event.kind.as_str() {
            "rollback_requested" => {
                let reason = event.payload.get("reason").and_then(Value::as_str);
                self.requested = Some((event.actor.clone(), reason.unwrap_or("").to_string()));
            }
            "verdict" => self.verdict = Some(event.payload.clone()),
            "decision" => self.decision = Some(decision(event)),
            _ => {}
        }
    }

    /// Whether a notice of `event` refers to earlier events of its release.
    pub fn needed(notify_event: Event, event: &JournalEvent) -> bool {
        match notify_event {
            Event::RollbackRequired => event
                .payload
                .pointer("/evidence/requested")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            Event::DecisionRequested | Event::Escalated => true,
            _ => false,
        }
    }
}

/// The idempotency key of every delivery of a journal event: stable across retries, processes
/// and restarts, and different for every event (its hash is in it).
pub fn event_id(event: &JournalEvent) -> String {
    let short = event.hash.get(..12).unwrap_or(&event.hash);
    format!("evt-{}-{short}", event.seq)
}

/// The lifecycle event a delivery announces (a `notify` step's message is `message`).
pub fn notify_event(delivery: &Delivery) -> Result<Event, String> {
    Event::parse(&delivery.notify_event).ok_or_else(|| {
        format!(
            "`{}` is not an event backout notifies about",
            delivery.notify_event
        )
    })
}

/// The notice of a delivery.
pub fn notice(facts: &Facts<'_>) -> Result<Notice, String> {
    let event = notify_event(facts.delivery)?;
    let mut notice = Notice::new(
        event,
        event_id(facts.event),
        rfc3339(facts.event.at_ms),
        String::new(),
    );
    notice.release = facts.release.map(|r| release_info(facts, r));
    notice.plan = Some(facts.plan.release.service.clone());
    notice.verdict = verdict(facts, event);
    notice.decision = match event {
        Event::Decision if facts.event.kind == "decision" => Some(decision(facts.event)),
        Event::Escalated | Event::Decision => facts.history.decision.clone(),
        _ => None,
    };
    notice.run = run(facts);
    notice.deciders = deciders(facts, event);
    notice.summary = summary(facts, event, &notice);
    if let Some(base) = facts.public_url {
        notice.links = links(base, &notice);
    }
    Ok(notice)
}

/// The web UI's pages about a notice, under `base` (the public URL people open the server
/// at): the release, the run, and where the decision is made or recorded.
pub fn links(base: &str, notice: &Notice) -> Vec<Link> {
    let base = base.trim().trim_end_matches('/');
    let link = |label: &str, path: String| Link {
        label: label.to_string(),
        url: format!("{base}{path}"),
    };
    let mut links = Vec::new();
    if let Some(release) = &notice.release {
        let page = format!("/ui/releases/{}", segment(&release.id));
        match notice.event {
            Event::RollbackRequired
            | Event::Inconclusive
            | Event::Degrading
            | Event::DecisionRequested
            | Event::Escalated => links.push(link("Decide", format!("{page}#decide-form"))),
            Event::Decision => links.push(link("Decision", format!("{page}#decision"))),
            _ => {}
        }
        links.push(link("Release", page));
    }
    if let Some(run) = notice
        .run
        .as_ref()
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
    {
        links.push(link("Run", format!("/ui/runs/{}", segment(run))));
    }
    links
}

/// A path segment: anything but unreserved characters percent-encoded.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The message of a delivery: the plan's template for the event when it has one (falling back
/// to the built-in text, with a note, when that template fails), the built-in text otherwise,
/// and a `notify` step's own message for [`MESSAGE`] deliveries without a template. A template
/// that rendered also becomes the notice's `summary`, so every channel (the webhook's JSON
/// included) says the plan's words.
pub fn message(
    facts: &Facts<'_>,
    notice: &mut Notice,
) -> Result<(Message, Option<String>), String> {
    let template = facts.plan.communication.given().and_then(|c| {
        c.templates
            .iter()
            .find(|(e, _)| *e == notice.event)
            .map(|(_, t)| t.as_str())
    });
    if facts.delivery.notify_event == MESSAGE && template.is_none() {
        return Ok((step_message(facts, notice)?, None));
    }
    match render(notice, template) {
        Ok(message) => {
            if let Some(template) = template
                && let Ok(body) = backout_notify::render_body(notice, template)
            {
                notice.summary = body.split_whitespace().collect::<Vec<_>>().join(" ");
            }
            Ok((message, None))
        }
        Err(error) if template.is_some() => {
            let message = render(notice, None).map_err(|e| e.to_string())?;
            Ok((
                message,
                Some(format!(
                    "the plan's template for {} failed ({error}); the built-in text was sent",
                    notice.event.as_str()
                )),
            ))
        }
        Err(error) => Err(format!("the built-in message does not render: {error}")),
    }
}

fn release_info(facts: &Facts<'_>, release: &Release) -> ReleaseInfo {
    let at = facts.event.at_ms;
    ReleaseInfo {
        id: release.id.clone(),
        service: release.service.clone(),
        version: release.version.clone(),
        rollback_to: Some(release.rollback_to.clone()),
        environment: Some(release.environment.clone()),
        plan_hash: Some(release.plan_hash.clone()),
        change_ticket: facts.plan.release.change_ticket.clone(),
        window: release.closes_at_ms.map(|closes| WindowInfo {
            closes_at: rfc3339(closes),
            closed: facts.event.kind == "window_closed"
                || closes <= at
                || release.closed_at_ms.is_some_and(|c| c <= at),
            overridden: false,
            after_close: facts
                .plan
                .window
                .given()
                .and_then(|w| w.after_close.clone()),
        }),
    }
}

/// The verdict and its evidence: the event's own for a verdict event, else the latest one.
fn verdict(facts: &Facts<'_>, event: Event) -> Option<Value> {
    // A person's request announces the rollback itself: no criterion needed.
    if facts.event.kind == "rollback_requested" {
        let reason = facts
            .event
            .payload
            .get("reason")
            .cloned()
            .unwrap_or(Value::Null);
        return Some(json!({
            "verdict": "rollback_required",
            "criteria": [],
            "requested": { "by": facts.event.actor, "reason": reason },
        }));
    }
    let payload = if facts.event.kind == "verdict" {
        &facts.event.payload
    } else if matches!(event, Event::DecisionRequested | Event::Escalated) {
        facts.history.verdict.as_ref()?
    } else {
        return None;
    };
    let name = payload.get("verdict")?.clone();
    let evidence = payload.get("evidence").cloned().unwrap_or(Value::Null);
    let criteria_of_plan = facts
        .plan
        .criteria
        .given()
        .map_or(&[][..], |c| c.rollback_when.as_slice());
    let mut criteria: Vec<Value> = evidence
        .get("criteria")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let id = c.get("criterion").and_then(Value::as_str).unwrap_or("");
            let title = criteria_of_plan
                .iter()
                .find(|p| p.id == id)
                .map_or(id, |p| p.name());
            let mut entry = Map::new();
            entry.insert("id".into(), json!(id));
            entry.insert("name".into(), json!(title));
            entry.insert(
                "status".into(),
                c.get("status").cloned().unwrap_or(Value::Null),
            );
            if let Some(reason) = c.get("reason").and_then(Value::as_str) {
                entry.insert("reason".into(), json!(reason));
            }
            Value::Object(entry)
        })
        .collect();
    if name == "success"
        && criteria.is_empty()
        && let Some(success) = facts
            .plan
            .criteria
            .given()
            .and_then(|c| c.success_when.as_ref())
    {
        criteria = success
            .checks
            .iter()
            .map(|id| {
                let title = criteria_of_plan
                    .iter()
                    .find(|p| &p.id == id)
                    .map_or(id.as_str(), |p| p.name());
                json!({ "id": id, "name": title, "status": "passing",
                        "reason": format!("passed for {}", success.hold) })
            })
            .collect();
    }
    let mut verdict = json!({ "verdict": name, "criteria": criteria });
    if evidence.get("requested").and_then(Value::as_bool) == Some(true) {
        verdict["requested"] = match &facts.history.requested {
            Some((by, reason)) => json!({ "by": by, "reason": reason }),
            None => json!({ "by": null }),
        };
    }
    Some(verdict)
}

/// A `decision` event as the notice's `decision`.
fn decision(event: &JournalEvent) -> Value {
    let field = |key: &str| event.payload.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "actor": event.actor,
        "decision": field("decision"),
        "reason": field("reason"),
        "override_window": event.payload.get("override_window").and_then(Value::as_bool).unwrap_or(false),
        "approvals": field("approvals"),
        "quorum": field("quorum"),
        "approved": field("approved"),
    })
}

/// The run the event is about, as the templates read it.
fn run(facts: &Facts<'_>) -> Option<Value> {
    let run = facts.run?;
    let event = facts.event;
    let state = match event.kind.as_str() {
        "run_started" => "running",
        "run_succeeded" => "succeeded",
        "run_failed" => "failed",
        _ => run.state.as_str(),
    };
    let count = |states: &[StepState]| {
        facts
            .steps
            .iter()
            .filter(|s| states.contains(&s.state))
            .count()
    };
    let mut value = json!({
        "id": run.id,
        "kind": run.kind,
        "environment": run.environment,
        "state": state,
        "duration": Duration::between(run.created_at_ms, event.at_ms).measured(),
        "steps": {
            "total": facts.steps.len(),
            "done": count(&[StepState::Succeeded, StepState::Skipped]),
            "failed": count(&[StepState::Failed]),
        },
    });
    if let Some(step) = step(facts) {
        value["step"] = step;
    }
    Some(value)
}

/// The step a run notice is about: the event's step, or for a failed run the step it stopped at.
fn step(facts: &Facts<'_>) -> Option<Value> {
    let event = facts.event;
    let id = match &event.step_id {
        Some(id) => id.clone(),
        None if event.kind == "run_failed" => facts
            .steps
            .iter()
            .find(|s| s.state == StepState::Failed)?
            .step_id
            .clone(),
        None => return None,
    };
    let mut step = Map::new();
    step.insert("id".into(), json!(id));
    let planned = facts.plan.all_steps().find(|s| s.id == id);
    if let Some(title) = planned.and_then(|s| s.title.as_ref()) {
        step.insert("title".into(), json!(title));
    }
    let detail = event.payload.get("detail").and_then(Value::as_str);
    let note = facts
        .steps
        .iter()
        .find(|s| s.step_id == id)
        .and_then(|s| s.note.as_deref());
    let output = facts
        .steps
        .iter()
        .find(|s| s.step_id == id)
        .map(|s| crate::executor::output_tail(s, crate::executor::TAIL_LINES))
        .filter(|t| !t.is_empty());
    match event.kind.as_str() {
        "step_failed" | "step_failed_waiting" => {
            if let Some(error) = detail.or(note) {
                step.insert("error".into(), json!(error));
            }
            step.insert("output".into(), json!(output));
        }
        "run_failed" => {
            if let Some(error) = note {
                step.insert("error".into(), json!(error));
            }
            step.insert("output".into(), json!(output));
        }
        _ => {}
    }
    match planned.map(|s| &s.kind) {
        Some(StepKind::Manual { by, instructions }) => {
            step.insert("performers".into(), json!(members(facts.plan, by)));
            step.insert("instructions".into(), json!(instructions));
        }
        Some(StepKind::Notify {
            message: Some(message),
            ..
        }) => {
            step.insert("message".into(), json!(message));
        }
        _ => {}
    }
    Some(Value::Object(step))
}

/// Who may decide now: the deciders, or for an escalation the fallback deciders.
fn deciders(facts: &Facts<'_>, event: Event) -> Vec<String> {
    let Some(auth) = facts.plan.authorization.given() else {
        return Vec::new();
    };
    match event {
        Event::RollbackRequired
        | Event::Inconclusive
        | Event::Degrading
        | Event::DecisionRequested => members(facts.plan, &auth.deciders),
        Event::Escalated => {
            let group = facts
                .event
                .payload
                .get("fallback_deciders")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| auth.fallback.as_ref().map(|f| f.deciders.clone()))
                .unwrap_or_else(|| auth.deciders.clone());
            members(facts.plan, &group)
        }
        _ => Vec::new(),
    }
}

/// The people of a group, or the name itself when it is not a declared group.
fn members(plan: &Plan, group: &str) -> Vec<String> {
    match plan.people.iter().find(|g| g.name == group) {
        Some(g) if !g.members.is_empty() => g.members.clone(),
        _ => vec![group.to_string()],
    }
}

/// "checkout 2.4.0 in production", or the plan's service for a run without a release.
fn what(facts: &Facts<'_>) -> String {
    match facts.release {
        Some(r) => format!("{} {} in {}", r.service, r.version, r.environment),
        None => match facts.run {
            Some(run) => format!("{} in {}", facts.plan.release.service, run.environment),
            None => facts.plan.release.service.clone(),
        },
    }
}

/// One line in plain words.
fn summary(facts: &Facts<'_>, event: Event, notice: &Notice) -> String {
    let what = what(facts);
    let payload = &facts.event.payload;
    let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or("");
    let run_id = facts.run.map_or("", |r| r.id.as_str());
    let step_id = facts.event.step_id.as_deref().unwrap_or("a step");
    let criteria = |statuses: &[&str]| -> String {
        notice
            .verdict
            .as_ref()
            .and_then(|v| v.get("criteria"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| {
                c.get("status")
                    .and_then(Value::as_str)
                    .is_some_and(|s| statuses.contains(&s))
            })
            .filter_map(|c| c.get("id").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if event == Event::Message {
        let step = facts
            .event
            .step_id
            .as_deref()
            .and_then(|id| facts.plan.all_steps().find(|s| s.id == id));
        return match step.map(|s| &s.kind) {
            Some(StepKind::Notify {
                message: Some(message),
                ..
            }) => format!("{what}: {message}"),
            _ => format!("{what}: {}", step.map_or(step_id, |s| s.name())),
        };
    }
    match event {
        Event::RollbackRequired => {
            let tripped = criteria(&["tripped", "failing"]);
            let requested = notice
                .verdict
                .as_ref()
                .and_then(|v| v.get("requested"))
                .map(|r| {
                    let by = r.get("by").and_then(Value::as_str).unwrap_or("a person");
                    format!("requested by {by}")
                });
            let why = [
                (!tripped.is_empty()).then(|| format!("tripped: {tripped}")),
                requested,
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
            if why.is_empty() {
                format!("{what}: rollback required")
            } else {
                format!("{what}: rollback required ({why})")
            }
        }
        Event::Inconclusive => {
            let unsure = criteria(&["inconclusive"]);
            if unsure.is_empty() {
                format!("{what}: inconclusive, a person should look")
            } else {
                format!("{what}: inconclusive ({unsure}), a person should look")
            }
        }
        Event::Degrading => {
            let failing = criteria(&["failing", "erring"]);
            if failing.is_empty() {
                format!("{what}: degrading, not yet enough to trip")
            } else {
                format!("{what}: degrading ({failing}), not yet enough to trip")
            }
        }
        // Answered above: a notify step's own text.
        Event::Message => format!("{what}: {step_id}"),
        Event::Success => format!("{what}: the deployment met its success criteria"),
        Event::DecisionRequested => format!("{what}: a decision on rolling back is needed"),
        Event::Decision => {
            let decision = notice.decision.as_ref();
            let field = |key: &str| {
                decision
                    .and_then(|d| d.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let verb = match field("decision").as_str() {
                "approve" => "approved",
                "deny" => "denied",
                _ => "decided on",
            };
            let count = |key: &str| decision.and_then(|d| d.get(key)).and_then(Value::as_u64);
            match (verb, count("approvals"), count("quorum")) {
                ("approved", Some(k), Some(n)) => format!(
                    "{what}: {} approved the rollback ({k} of {n} approval{})",
                    facts.event.actor,
                    if n == 1 { "" } else { "s" }
                ),
                _ => format!("{what}: {} {verb} the rollback", facts.event.actor),
            }
        }
        Event::Escalated if facts.event.kind == "manual_step_escalated" => format!(
            "{what}: ESCALATED: manual step {step_id} has waited {} for {}",
            text("timeout"),
            text("by")
        ),
        Event::Escalated => format!(
            "{what}: escalated, no one acted in time{}",
            if notice.deciders.is_empty() {
                String::new()
            } else {
                format!("; now {}", notice.deciders.join(", "))
            }
        ),
        Event::Started => format!("{what}: backout started (run {run_id})"),
        Event::ManualStepWaiting if facts.event.kind == "manual_step_reminded" => format!(
            "{what}: reminder: manual step {step_id} still waits for {}",
            text("by")
        ),
        Event::ManualStepWaiting => {
            format!("{what}: manual step {step_id} waits for {}", text("by"))
        }
        Event::StepFailed => match text("detail") {
            "" => format!("{what}: step {step_id} failed"),
            detail => format!("{what}: step {step_id} failed: {detail}"),
        },
        Event::Completed => format!("{what}: backout completed (run {run_id})"),
        Event::Failed => format!("{what}: backout FAILED (run {run_id})"),
        Event::RolledBack => format!("{what}: rolled back and verified (run {run_id})"),
        Event::BreakGlass => format!(
            "{what}: BREAK GLASS: {} runs the procedure in {} outside a release (run {run_id}): {}",
            facts.event.actor,
            text("environment"),
            text("reason")
        ),
        Event::RollbackUnverified => format!(
            "{what}: backout ran but did NOT verify (run {run_id}): {}",
            text("detail")
        ),
        Event::WindowClosing => match notice.release.as_ref().and_then(|r| r.window.as_ref()) {
            Some(window) => format!("{what}: the rollback window closes at {}", window.closes_at),
            None => format!("{what}: the rollback window closes soon"),
        },
        Event::WindowClosed => match text("reason") {
            "" => format!("{what}: the rollback window closed"),
            reason => format!("{what}: the rollback window closed ({reason})"),
        },
        Event::RehearsalFailed => format!(
            "{what}: the scheduled rehearsal in {} FAILED: {}",
            text("environment"),
            text("error")
        ),
        Event::EvidenceExpiring => format!(
            "{what}: the rehearsal evidence {} from {} expires at {}",
            text("evidence_id"),
            text("environment"),
            text("expires_at")
        ),
    }
}

/// The message of a `notify` step: its text, under a subject naming the release and the step;
/// its HTML form is the layout of every other message (`backout_notify::html_of`), which
/// escapes what the plan and the run put in it.
fn step_message(facts: &Facts<'_>, notice: &Notice) -> Result<Message, String> {
    let what = what(facts);
    let step = facts
        .event
        .step_id
        .as_deref()
        .and_then(|id| facts.plan.all_steps().find(|s| s.id == id));
    let title = step.map_or("a notify step", |s| s.name());
    let body = match step.map(|s| &s.kind) {
        Some(StepKind::Notify {
            message: Some(message),
            ..
        }) => message.clone(),
        _ => title.to_string(),
    };
    let mut text = format!("{body}\n");
    if let Some(run) = facts.run {
        text.push_str(&format!(
            "\nFrom the backout of {what} (run {}, step {}). Follow it with:\n  backout status {}\n",
            run.id,
            step.map_or("?", |s| s.id.as_str()),
            run.id
        ));
    }
    let subject = format!("{what}: {title}");
    let html = backout_notify::html_of(&subject, &text, notice.event, &notice.event_id)
        .map_err(|e| format!("the HTML of a notify step's message does not render: {e}"))?;
    Ok(Message {
        subject,
        text,
        html,
    })
}

/// RFC 3339 in UTC, to the second: `2026-11-26T18:04:05Z`.
pub fn rfc3339(ms: i64) -> String {
    crate::time::utc(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_716_245_000), "2026-11-26T18:04:05Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn links_point_at_the_ui_pages() {
        let mut notice = Notice::new(Event::Decision, "evt-1", "2026-01-01T00:00:00Z", "x");
        notice.release = Some(ReleaseInfo {
            id: "rel 1".into(),
            ..ReleaseInfo::default()
        });
        notice.run = Some(json!({ "id": "run-7" }));
        let links = links("https://backout.example.com/", &notice);
        let pairs: Vec<(&str, &str)> = links
            .iter()
            .map(|l| (l.label.as_str(), l.url.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "Decision",
                    "https://backout.example.com/ui/releases/rel%201#decision"
                ),
                ("Release", "https://backout.example.com/ui/releases/rel%201"),
                ("Run", "https://backout.example.com/ui/runs/run-7"),
            ]
        );
    }

    /// A `notify` step's own words reach the e-mail as text, never as markup: the HTML comes
    /// from the autoescaping layout every message uses.
    #[test]
    fn a_notify_steps_html_escapes_what_the_plan_says() {
        const PLAN: &str = include_str!("../../../../fixtures/plans/valid/checkout.yaml");
        let source = PLAN.replace(
            "\"Backing out checkout 2.14.0 to 2.13.4\"",
            "'<script>alert(1)</script> & \"quotes\"'",
        );
        let plan = backout_model::lint(&source)
            .plan
            .expect("the fixture lints");
        let event = backout_store::NewEvent::new("step_started", "w", 1_000)
            .step("announce")
            .seal(7, backout_store::GENESIS_HASH);
        let delivery = Delivery {
            id: 1,
            event_seq: 7,
            release_id: None,
            run_id: None,
            channel: "ops".into(),
            kind: backout_store::DeliveryKind::Email,
            notify_event: MESSAGE.into(),
            state: backout_store::DeliveryState::Pending,
            created_at_ms: 1_000,
            next_attempt_at_ms: Some(1_000),
            claimed_by: None,
            claimed_until_ms: None,
            attempts: Vec::new(),
            last_error: None,
            delivered_at_ms: None,
            updated_at_ms: 1_000,
        };
        let facts = Facts {
            delivery: &delivery,
            event: &event,
            plan: &plan,
            release: None,
            run: None,
            steps: &[],
            history: &History::default(),
            public_url: None,
        };
        let mut notice = notice(&facts).expect("a notice");
        let (message, note) = message(&facts, &mut notice).expect("a message");
        assert_eq!(note, None);
        assert!(
            message
                .text
                .contains("<script>alert(1)</script> & \"quotes\"")
        );
        assert!(!message.html.contains("<script>"), "{}", message.html);
        assert!(
            message
                .html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;quotes&quot;"),
            "{}",
            message.html
        );
        assert!(message.html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let event =
            backout_store::NewEvent::new("verdict", "w", 1).seal(42, backout_store::GENESIS_HASH);
        let id = event_id(&event);
        assert_eq!(id, format!("evt-42-{}", &event.hash[..12]));
        assert_eq!(id, event_id(&event.clone()));
        let other = backout_store::NewEvent::new("verdict", "w", 1).seal(43, &event.hash);
        assert_ne!(event_id(&other), id);
    }
}
