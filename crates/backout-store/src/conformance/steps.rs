//! Conformance story about step records: initial pending records, full replacement on every
//! write, ordering, and the event written with each change.

use std::collections::BTreeMap;

use crate::conformance::{T0, last_seq, new_run};
use crate::errors::StoreError;
use crate::event::NewEvent;
use crate::step::{StepRecord, StepState};
use crate::store::Store;

/// Step records round-trip every field, are replaced (not merged) by each write, keep the order
/// in which they were first recorded, and each write appends its bound event.
pub async fn steps_round_trip(store: &dyn Store) -> Result<(), StoreError> {
    let run_id = "conf-steps";
    // Deliberately not alphabetical: the order is the plan's, not the ids'.
    store
        .create_run(
            &new_run(run_id, T0, &["zeta", "alpha", "mid"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await?;
    let initial = store.list_steps(run_id).await?;
    let expected: Vec<StepRecord> = ["zeta", "alpha", "mid"]
        .iter()
        .map(|step| StepRecord::pending(run_id, *step, T0))
        .collect();
    assert_eq!(
        initial, expected,
        "steps of a new run are pending, in plan order"
    );

    let running = StepRecord {
        run_id: run_id.to_owned(),
        step_id: "alpha".to_owned(),
        state: StepState::Running,
        attempt: 1,
        started_at_ms: Some(T0 + 100),
        finished_at_ms: None,
        exit_status: None,
        pgid: Some(31337),
        note: Some("started by alice ✓".to_owned()),
        outputs: BTreeMap::from([
            ("version".to_owned(), "1.2.3".to_owned()),
            ("empty".to_owned(), String::new()),
        ]),
        stdout: "line 1\nline 2 ünïcödé\n\ttabbed\r\n".to_owned(),
        stderr: "e".repeat(256 * 1024),
        updated_at_ms: T0 + 100,
    };
    let before = last_seq(store).await?;
    let event = store
        .record_step(
            &running,
            &NewEvent::new("step_started", "executor", T0 + 100),
        )
        .await?;
    assert_eq!(event.seq, before + 1);
    assert_eq!(
        event.run_id.as_deref(),
        Some(run_id),
        "event bound to the run"
    );
    assert_eq!(
        event.step_id.as_deref(),
        Some("alpha"),
        "event bound to the step"
    );
    let steps = store.list_steps(run_id).await?;
    assert_eq!(steps[1], running, "every field round-trips");
    assert_eq!(steps[0], expected[0], "other steps untouched");
    assert_eq!(steps[2], expected[2], "other steps untouched");

    // A later write replaces the whole record: fields it leaves empty become empty.
    let succeeded = StepRecord {
        state: StepState::Succeeded,
        finished_at_ms: Some(T0 + 250),
        exit_status: Some(0),
        pgid: None,
        note: None,
        outputs: BTreeMap::from([("version".to_owned(), "1.2.4".to_owned())]),
        stdout: String::new(),
        stderr: "warning: slow\n".to_owned(),
        updated_at_ms: T0 + 250,
        ..running.clone()
    };
    store
        .record_step(
            &succeeded,
            &NewEvent::new("step_succeeded", "executor", T0 + 250)
                .run(run_id)
                .step("alpha"),
        )
        .await?;
    assert_eq!(
        store.list_steps(run_id).await?[1],
        succeeded,
        "replaced, not merged"
    );

    // Every state, large attempt numbers and negative exit statuses are kept.
    for (index, state) in StepState::ALL.iter().enumerate() {
        let record = StepRecord {
            state: *state,
            attempt: u32::MAX - index as u32,
            exit_status: Some(-9),
            pgid: Some(i32::MAX),
            started_at_ms: Some(T0 + 300),
            finished_at_ms: Some(T0 + 301),
            updated_at_ms: T0 + 301 + index as i64,
            ..StepRecord::pending(run_id, "mid", 0)
        };
        store
            .record_step(
                &record,
                &NewEvent::new(format!("step_{state}"), "executor", T0),
            )
            .await?;
        assert_eq!(store.list_steps(run_id).await?[2], record, "state {state}");
    }

    // A step the run did not start with (a contingency step) is added after the others.
    let extra = StepRecord::pending(run_id, "contingency.restore", T0 + 400);
    store
        .record_step(&extra, &NewEvent::new("step_added", "executor", T0 + 400))
        .await?;
    let ids: Vec<String> = store
        .list_steps(run_id)
        .await?
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(ids, ["zeta", "alpha", "mid", "contingency.restore"]);

    // Each write appended exactly one event for this run.
    let events = store.run_events(run_id, 0, 1000).await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let mut expected_kinds = vec!["run_started", "step_started", "step_succeeded"];
    let state_kinds: Vec<String> = StepState::ALL.iter().map(|s| format!("step_{s}")).collect();
    expected_kinds.extend(state_kinds.iter().map(String::as_str));
    expected_kinds.push("step_added");
    assert_eq!(kinds, expected_kinds);
    Ok(())
}

/// A batch of step records commits together: every record stored, one event each, in order,
/// with consecutive sequence numbers.
pub async fn step_batches(store: &dyn Store) -> Result<(), StoreError> {
    let run_id = "conf-batch";
    store
        .create_run(
            &new_run(run_id, T0, &["a", "b", "c"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await?;
    let before = last_seq(store).await?;
    let done = StepRecord {
        state: StepState::Succeeded,
        ..StepRecord::pending(run_id, "a", T0 + 1)
    };
    let next = |id: &str| StepRecord {
        state: StepState::Running,
        attempt: 1,
        ..StepRecord::pending(run_id, id, T0 + 1)
    };
    let events = store
        .record_steps(&[
            (
                done.clone(),
                NewEvent::new("step_succeeded", "executor", T0 + 1),
            ),
            (next("b"), NewEvent::new("step_started", "executor", T0 + 1)),
            (next("c"), NewEvent::new("step_started", "executor", T0 + 1)),
        ])
        .await?;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [before + 1, before + 2, before + 3],
        "one event per record, in order"
    );
    assert_eq!(
        events
            .iter()
            .map(|e| e.step_id.as_deref())
            .collect::<Vec<_>>(),
        [Some("a"), Some("b"), Some("c")],
        "each event is bound to its record"
    );
    let states: Vec<StepState> = store
        .list_steps(run_id)
        .await?
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(
        states,
        [StepState::Succeeded, StepState::Running, StepState::Running]
    );
    assert!(
        store.record_steps(&[]).await?.is_empty(),
        "an empty batch writes nothing"
    );
    assert_eq!(last_seq(store).await?, before + 3);
    Ok(())
}
