//! Routing: which plan channels hear of a journal event. Pure: a plan and an event in, the
//! deliveries to write with the event out (the store commits them in the event's transaction).

use backout_model::Plan;
use backout_model::plan::{ChannelKind, Event, StepKind};
use backout_store::{DeliveryKind, NewDelivery, NewEvent};

/// The `notify_event` of the deliveries of a `notify` step's message (event `message`): the
/// step's channels and those `communication.notify.message` names hear it, and
/// `communication.templates.message` may shape its text.
pub const MESSAGE: &str = "message";

/// The lifecycle event (plan `communication.notify.<event>`) a journal event announces, if any.
///
/// A `verdict` event announces `rollback_required`, `inconclusive`, `degrading` or `success` (a
/// `healthy` or `closed` verdict announces nothing; the tracker journals a verdict only when
/// it changes, so `degrading` is announced once per episode); run events announce `started`, `completed` and
/// `failed`; step events `manual_step_waiting` and `step_failed` (the final failure, not a
/// failed attempt that is retried).
pub fn lifecycle_event(kind: &str, payload: &serde_json::Value) -> Option<Event> {
    Some(match kind {
        // A person's request is announced at once (no watcher needed); the verdict it causes
        // is not announced again.
        "rollback_requested" => Event::RollbackRequired,
        "verdict" => match payload.get("verdict")?.as_str()? {
            "rollback_required" if only_requested(payload) => return None,
            "rollback_required" => Event::RollbackRequired,
            "inconclusive" => Event::Inconclusive,
            "degrading" => Event::Degrading,
            "success" => Event::Success,
            _ => return None,
        },
        "decision_requested" => Event::DecisionRequested,
        "decision" => Event::Decision,
        "escalated" => Event::Escalated,
        "run_started" => Event::Started,
        "manual_step_waiting" | "manual_step_reminded" => Event::ManualStepWaiting,
        "manual_step_escalated" => Event::Escalated,
        "step_failed" | "step_failed_waiting" => Event::StepFailed,
        "run_succeeded" => Event::Completed,
        "run_failed" => Event::Failed,
        "rolled_back" => Event::RolledBack,
        "break_glass" => Event::BreakGlass,
        // The procedure ran but `verify_after` did not hold.
        "rollback_unverified" => Event::RollbackUnverified,
        "window_closing" => Event::WindowClosing,
        "window_closed" => Event::WindowClosed,
        "rehearsal_failed" => Event::RehearsalFailed,
        "evidence_expiring" => Event::EvidenceExpiring,
        _ => return None,
    })
}

/// A `rollback_required` verdict whose only cause is a person's request (already announced by
/// the `rollback_requested` event).
fn only_requested(payload: &serde_json::Value) -> bool {
    let evidence = &payload["evidence"];
    evidence["requested"] == true
        && evidence["criteria"]
            .as_array()
            .is_none_or(|c| c.iter().all(|c| c["status"] != "tripped"))
}

/// The deliveries `event` causes under `plan`: one per channel the plan's
/// `communication.notify.<event>` names, and one per channel of a `notify` step when the event
/// is that step's success. None when communication is `not_applicable`.
pub fn route(plan: &Plan, event: &NewEvent) -> Vec<NewDelivery> {
    let Some(communication) = plan.communication.given() else {
        return Vec::new();
    };
    let routes = |lifecycle: Event| {
        communication
            .notify
            .iter()
            .find(|(e, _)| *e == lifecycle)
            .map_or(&[][..], |(_, names)| names.as_slice())
    };
    let (names, notify_event): (Vec<&String>, &str) =
        if let Some(lifecycle) = lifecycle_event(&event.kind, &event.payload) {
            (routes(lifecycle).iter().collect(), lifecycle.as_str())
        } else if event.kind == "step_succeeded"
            && let Some(StepKind::Notify { channels, .. }) = event
                .step_id
                .as_deref()
                .and_then(|id| plan.all_steps().find(|s| s.id == id))
                .map(|s| &s.kind)
        {
            // The step's own channels, then whoever follows every message.
            (
                channels.iter().chain(routes(Event::Message)).collect(),
                MESSAGE,
            )
        } else {
            return Vec::new();
        };
    let mut deliveries: Vec<NewDelivery> = Vec::with_capacity(names.len());
    for name in names {
        // Lint guarantees every name is a declared channel; a name listed twice is sent once.
        let Some(channel) = communication.channels.iter().find(|c| &c.name == name) else {
            continue;
        };
        if deliveries.iter().any(|d| &d.channel == name) {
            continue;
        }
        deliveries.push(NewDelivery::new(
            name.clone(),
            delivery_kind(&channel.kind),
            notify_event,
        ));
    }
    deliveries
}

/// `event` with the deliveries [`route`] gives it (replacing any it had).
pub fn routed(plan: &Plan, event: NewEvent) -> NewEvent {
    let deliveries = route(plan, &event);
    event.deliveries(deliveries)
}

pub fn delivery_kind(kind: &ChannelKind) -> DeliveryKind {
    match kind {
        ChannelKind::Webhook(_) => DeliveryKind::Webhook,
        ChannelKind::Slack(_) => DeliveryKind::Slack,
        ChannelKind::Email(_) => DeliveryKind::Email,
        ChannelKind::Command(_) => DeliveryKind::Command,
        // Both are JSON POSTs to an HTTP endpoint; the stores know the four transport kinds,
        // and the dispatcher reads the channel's own kind from the plan when it sends.
        ChannelKind::PagerDuty { .. } | ChannelKind::Teams(_) => DeliveryKind::Webhook,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PLAN: &str = include_str!("../../../../fixtures/plans/valid/checkout.yaml");

    fn plan() -> Plan {
        backout_model::lint(PLAN)
            .plan
            .expect("the reference plan lints")
    }

    fn channels(deliveries: &[NewDelivery]) -> Vec<(&str, DeliveryKind, &str)> {
        deliveries
            .iter()
            .map(|d| (d.channel.as_str(), d.kind, d.notify_event.as_str()))
            .collect()
    }

    #[test]
    fn verdicts_route_by_their_value() {
        let plan = plan();
        let verdict =
            |v: &str| NewEvent::new("verdict", "backout:watch", 1).payload(json!({ "verdict": v }));
        assert_eq!(
            channels(&route(&plan, &verdict("rollback_required"))),
            [
                ("ops", DeliveryKind::Slack, "rollback_required"),
                ("pager", DeliveryKind::Command, "rollback_required"),
            ]
        );
        assert_eq!(
            channels(&route(&plan, &verdict("success"))),
            [("ops", DeliveryKind::Slack, "success")]
        );
        assert!(route(&plan, &verdict("healthy")).is_empty());
        assert_eq!(
            lifecycle_event("verdict", &json!({ "verdict": "degrading" })),
            Some(Event::Degrading),
            "degrading is routable"
        );
        assert!(route(&plan, &verdict("closed")).is_empty());
    }

    #[test]
    fn run_events_route_to_their_lifecycle_event() {
        let plan = plan();
        let started = routed(&plan, NewEvent::new("run_started", "alice", 1).run("run-1"));
        assert_eq!(
            channels(&started.deliveries),
            [
                ("ops", DeliveryKind::Slack, "started"),
                ("status-page", DeliveryKind::Webhook, "started"),
            ]
        );
        let failed = route(&plan, &NewEvent::new("run_failed", "alice", 1));
        assert_eq!(failed.len(), 3);
        assert!(failed.iter().all(|d| d.notify_event == "failed"));
        for quiet in [
            "step_started",
            "step_attempt_failed",
            "measurement",
            "run_waiting",
        ] {
            assert!(
                route(&plan, &NewEvent::new(quiet, "alice", 1)).is_empty(),
                "{quiet}"
            );
        }
    }

    #[test]
    fn not_applicable_communication_routes_nothing() {
        let mut plan = plan();
        plan.communication = backout_model::plan::Answer::NotApplicable("no one to tell".into());
        let event =
            NewEvent::new("verdict", "w", 1).payload(json!({ "verdict": "rollback_required" }));
        assert!(route(&plan, &event).is_empty());
    }

    #[test]
    fn a_notify_step_success_goes_to_its_channels() {
        let plan = plan();
        let Some(step) = plan
            .all_steps()
            .find(|s| matches!(s.kind, StepKind::Notify { .. }))
        else {
            panic!("the reference plan has a notify step");
        };
        let StepKind::Notify {
            channels: names, ..
        } = &step.kind
        else {
            unreachable!()
        };
        let event = NewEvent::new("step_succeeded", "alice", 1)
            .run("run-1")
            .step(&step.id);
        let routed = route(&plan, &event);
        assert_eq!(
            routed
                .iter()
                .map(|d| d.channel.as_str())
                .collect::<Vec<_>>(),
            names.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(routed.iter().all(|d| d.notify_event == MESSAGE));
        let failed = NewEvent::new("step_started", "alice", 1).step(&step.id);
        assert!(route(&plan, &failed).is_empty());
    }
}
