//! The API's records serialize exactly as the store's records did when the handlers answered
//! with them (less the plan text), and decode back into the same records: moving the answers to
//! typed DTOs changed no field name or value the UI, the CLI and scripts rely on.

use std::collections::BTreeMap;

use backout_api as api;
use backout_store::{
    AttemptOutcome, Checkpoint, Delivery, DeliveryAttempt, DeliveryKind, DeliveryState, Event,
    Evidence, ExecutorInfo, ForwardRun, Release, ReleaseState, RoundTrip, Run, RunKind, RunState,
    StepEvidence, StepRecord, StepState,
};
use serde_json::{Value, json};

fn without(mut value: Value, field: &str) -> Value {
    value.as_object_mut().expect("an object").remove(field);
    value
}

fn release() -> Release {
    Release {
        id: "rel-1".into(),
        plan_hash: "ab".into(),
        plan_source: "people: {}".into(),
        service: "checkout".into(),
        version: "2.0.1".into(),
        rollback_to: "2.0.0".into(),
        environment: "production".into(),
        actor: "dana@example.com".into(),
        state: ReleaseState::Closed,
        opened_at_ms: 1,
        closes_at_ms: None,
        closed_at_ms: Some(9),
        close_reason: Some("window".into()),
        checkpoints: vec![Checkpoint {
            name: "shifted".into(),
            at_ms: 2,
            actor: "dana@example.com".into(),
        }],
    }
}

#[test]
fn a_release_is_the_record_without_its_plan_text() {
    let record = release();
    let dto = api::Release::from(&record);
    let stored = serde_json::to_value(&record).expect("serializes");
    assert_eq!(
        serde_json::to_value(&dto).expect("serializes"),
        without(stored, "plan_source")
    );
    assert_eq!(dto.into_record(record.plan_source.clone()), record);
}

#[test]
fn a_run_and_its_steps_are_the_records() {
    let run = Run {
        id: "run-1".into(),
        plan_hash: "ab".into(),
        plan_source: "people: {}".into(),
        kind: RunKind::Release,
        release_id: Some("rel-1".into()),
        environment: "production".into(),
        actor: "pete@example.com".into(),
        state: RunState::Waiting,
        checkpoints: vec!["shifted".into()],
        executor: Some(ExecutorInfo {
            pid: 42,
            hostname: "box".into(),
        }),
        created_at_ms: 1,
        updated_at_ms: 2,
        finished_at_ms: None,
    };
    let dto = api::Run::from(&run);
    assert_eq!(
        serde_json::to_value(&dto).expect("serializes"),
        without(
            serde_json::to_value(&run).expect("serializes"),
            "plan_source"
        )
    );
    assert_eq!(dto.into_record(run.plan_source.clone()), run);

    let step = StepRecord {
        run_id: "run-1".into(),
        step_id: "drain".into(),
        state: StepState::InDoubt,
        attempt: 2,
        started_at_ms: Some(3),
        finished_at_ms: None,
        exit_status: Some(1),
        pgid: Some(77),
        note: Some("by hand".into()),
        outputs: BTreeMap::from([("url".to_string(), "x".to_string())]),
        stdout: "out".into(),
        stderr: "err".into(),
        updated_at_ms: 4,
    };
    let dto = api::Step::from(&step);
    assert_eq!(
        serde_json::to_value(&dto).expect("serializes"),
        serde_json::to_value(&step).expect("serializes")
    );
    assert_eq!(StepRecord::from(dto), step);
}

#[test]
fn deliveries_evidence_and_events_are_the_records() {
    let delivery = Delivery {
        id: 3,
        event_seq: 9,
        release_id: Some("rel-1".into()),
        run_id: None,
        channel: "ops".into(),
        kind: DeliveryKind::Slack,
        notify_event: "rollback_started".into(),
        state: DeliveryState::Failed,
        created_at_ms: 1,
        next_attempt_at_ms: None,
        claimed_by: Some("serve".into()),
        claimed_until_ms: Some(5),
        attempts: vec![DeliveryAttempt {
            at_ms: 2,
            outcome: AttemptOutcome::GaveUp,
            detail: "410".into(),
            by: "serve".into(),
        }],
        last_error: Some("410".into()),
        delivered_at_ms: None,
        updated_at_ms: 3,
    };
    let dto = api::Delivery::from(&delivery);
    assert_eq!(
        serde_json::to_value(&dto).expect("serializes"),
        serde_json::to_value(&delivery).expect("serializes")
    );
    assert_eq!(Delivery::from(dto), delivery);

    let forward = ForwardRun {
        exit_status: Some(0),
        started_at_ms: 1,
        finished_at_ms: 2,
    };
    let evidence = Evidence {
        id: "evi-1".into(),
        run_id: "run-1".into(),
        plan_hash: "ab".into(),
        service: "checkout".into(),
        environment: "staging".into(),
        actor: "pete@example.com".into(),
        started_at_ms: 1_000,
        finished_at_ms: 4_000,
        steps: vec![StepEvidence {
            step_id: "drain".into(),
            state: StepState::Succeeded,
            attempts: 1,
            duration_ms: Some(3_000),
            contingency: None,
        }],
        contingencies: Vec::new(),
        round_trip: Some(RoundTrip {
            command: "deploy".into(),
            first: forward.clone(),
            second: forward,
        }),
        recorded_at_ms: 5_000,
    };
    let dto = api::Evidence::from(&evidence);
    let mut expected = serde_json::to_value(&evidence).expect("serializes");
    expected["took_ms"] = json!(3_000);
    assert_eq!(serde_json::to_value(&dto).expect("serializes"), expected);
    assert_eq!(Evidence::from(dto), evidence);

    let event = Event {
        seq: 7,
        at_ms: 1,
        kind: "step_succeeded".into(),
        run_id: Some("run-1".into()),
        step_id: Some("drain".into()),
        release_id: None,
        actor: "backout:serve".into(),
        payload: json!({ "attempt": 1 }),
        prev_hash: "00".into(),
        hash: "11".into(),
    };
    assert_eq!(
        serde_json::to_value(api::JournalEvent::from(&event)).expect("serializes"),
        serde_json::to_value(&event).expect("serializes")
    );
}

#[test]
fn an_error_body_leaves_out_absent_details() {
    let body = api::ErrorBody {
        error: api::ErrorDetail {
            code: "not_found".into(),
            message: "no release `x`".into(),
            details: None,
        },
    };
    assert_eq!(
        serde_json::to_value(&body).expect("serializes"),
        json!({ "error": { "code": "not_found", "message": "no release `x`" } })
    );
}

#[test]
fn the_names_of_outcomes_and_severities_are_their_json() {
    use api::{ReleaseOutcome as O, Severity as S};
    for outcome in [
        O::Open,
        O::RollingBack,
        O::RolledBack,
        O::RollbackUnverified,
        O::RollbackFailed,
        O::Succeeded,
        O::Closed,
    ] {
        assert_eq!(json!(outcome), json!(outcome.as_str()));
    }
    for severity in [S::Error, S::Warning, S::Note] {
        assert_eq!(json!(severity), json!(severity.as_str()));
    }
}
