//! Conformance stories about run records: creation, updates, listing and missing records.

use crate::conformance::{T0, assert_not_found, last_seq, new_run};
use crate::errors::{Entity, StoreError};
use crate::event::NewEvent;
use crate::run::{ExecutorInfo, Run, RunKind, RunState, RunUpdate};
use crate::step::StepRecord;
use crate::store::Store;

/// A created run reads back with every field, and its creation event is bound to it.
pub async fn runs_round_trip(store: &dyn Store) -> Result<(), StoreError> {
    let before = last_seq(store).await?;

    let mut full = new_run("conf-rt-full", T0, &["a"]);
    full.plan_source.push_str(&"# padding line\n".repeat(4096));
    let event = store
        .create_run(
            &full,
            &NewEvent::new("run_started", "alice", T0).payload(serde_json::json!({"n": 1})),
        )
        .await?;
    assert_eq!(event.seq, before + 1, "creation event is the next seq");
    assert_eq!(
        event.run_id.as_deref(),
        Some("conf-rt-full"),
        "event bound to the run"
    );
    assert_eq!(event.step_id, None);
    assert_eq!(event.kind, "run_started");
    assert_eq!(event.actor, "alice");
    assert_eq!(event.at_ms, T0);
    assert_eq!(event.payload, serde_json::json!({"n": 1}));
    assert_eq!(store.get_run("conf-rt-full").await?, Run::from_new(&full));
    assert_eq!(store.last_event().await?.as_ref(), Some(&event));

    // Optional fields empty, another kind and state.
    let mut sparse = new_run("conf-rt-sparse", T0 + 1, &[]);
    sparse.kind = RunKind::Adhoc;
    sparse.release_id = None;
    sparse.executor = None;
    sparse.checkpoints = Vec::new();
    sparse.plan_source = String::new();
    store
        .create_run(&sparse, &NewEvent::new("run_started", "bob", T0 + 1))
        .await?;
    let stored = store.get_run("conf-rt-sparse").await?;
    assert_eq!(stored, Run::from_new(&sparse));
    assert_eq!(stored.finished_at_ms, None);
    assert!(store.list_steps("conf-rt-sparse").await?.is_empty());

    // A run refused at creation is finished at once.
    for kind in RunKind::ALL {
        let id = format!("conf-rt-refused-{kind}");
        let mut refused = new_run(&id, T0 + 2, &[]);
        refused.kind = *kind;
        refused.state = RunState::Refused;
        store
            .create_run(&refused, &NewEvent::new("run_refused", "carol", T0 + 2))
            .await?;
        let stored = store.get_run(&id).await?;
        assert_eq!(stored.kind, *kind);
        assert_eq!(stored.state, RunState::Refused);
        assert_eq!(stored.finished_at_ms, Some(T0 + 2));
    }
    Ok(())
}

/// State changes update the run as [`Run::apply`] says, each with its event.
pub async fn run_updates(store: &dyn Store) -> Result<(), StoreError> {
    let id = "conf-upd";
    let created = new_run(id, T0, &["a", "b"]);
    store
        .create_run(&created, &NewEvent::new("run_started", "alice", T0))
        .await?;
    let mut expected = Run::from_new(&created);

    let other_host = ExecutorInfo {
        pid: 99,
        hostname: "runner-2.example".to_owned(),
    };
    let updates = [
        (RunState::Waiting, None, T0 + 5),
        (RunState::Running, Some(other_host.clone()), T0 + 6),
        (RunState::Failed, None, T0 + 9),
        // A failed run is resumed after a person resolved a step: no longer finished.
        (RunState::Running, None, T0 + 10),
        (RunState::Succeeded, None, T0 + 20),
    ];
    for (state, executor, at_ms) in updates {
        let update = RunUpdate {
            run_id: id.to_owned(),
            state,
            executor,
            at_ms,
        };
        let before = last_seq(store).await?;
        let event = store
            .update_run(
                &update,
                &NewEvent::new(format!("run_{state}"), "system", at_ms),
            )
            .await?;
        assert_eq!(event.seq, before + 1);
        assert_eq!(event.run_id.as_deref(), Some(id), "event bound to the run");
        assert_eq!(event.kind, format!("run_{state}"));
        expected.apply(&update);
        assert_eq!(
            store.get_run(id).await?,
            expected,
            "after update to {state}"
        );
    }
    let stored = store.get_run(id).await?;
    assert_eq!(
        stored.executor,
        Some(other_host),
        "executor kept when not replaced"
    );
    assert_eq!(stored.finished_at_ms, Some(T0 + 20));
    assert_eq!(stored.created_at_ms, T0, "creation time never changes");
    assert_eq!(
        store.list_steps(id).await?.len(),
        2,
        "run updates leave step records alone"
    );
    Ok(())
}

/// `list_runs` returns the newest runs first (ties by id, descending) and honours its limit.
pub async fn runs_newest_first(store: &dyn Store) -> Result<(), StoreError> {
    // Newer than anything the store already holds, so these are the first rows.
    let base = store
        .list_runs(1)
        .await?
        .first()
        .map_or(T0, |r| r.created_at_ms.max(T0))
        + 1_000;
    let runs = [
        ("conf-list-1", base + 10),
        ("conf-list-3", base + 30),
        ("conf-list-2", base + 20),
        ("conf-list-4a", base + 40),
        ("conf-list-4b", base + 40),
    ];
    for (id, at) in runs {
        store
            .create_run(
                &new_run(id, at, &[]),
                &NewEvent::new("run_started", "alice", at),
            )
            .await?;
    }
    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_runs(5).await?),
        [
            "conf-list-4b",
            "conf-list-4a",
            "conf-list-3",
            "conf-list-2",
            "conf-list-1"
        ]
    );
    assert_eq!(
        ids(store.list_runs(2).await?),
        ["conf-list-4b", "conf-list-4a"]
    );
    assert!(
        store.list_runs(0).await?.is_empty(),
        "limit 0 lists nothing"
    );
    let listed = store.list_runs(1).await?;
    assert_eq!(
        listed.first(),
        Some(&store.get_run("conf-list-4b").await?),
        "listed runs carry every field"
    );
    Ok(())
}

/// Reads and writes of records that do not exist fail with `NotFound` naming the run.
pub async fn missing_records_are_not_found(store: &dyn Store) -> Result<(), StoreError> {
    let missing = "conf-missing-run";
    assert_not_found(store.get_run(missing).await, Entity::Run, missing);
    assert_not_found(store.list_steps(missing).await, Entity::Run, missing);
    assert_not_found(store.run_events(missing, 0, 10).await, Entity::Run, missing);
    let update = RunUpdate {
        run_id: missing.to_owned(),
        state: RunState::Aborted,
        executor: None,
        at_ms: T0,
    };
    assert_not_found(
        store
            .update_run(&update, &NewEvent::new("run_aborted", "alice", T0))
            .await,
        Entity::Run,
        missing,
    );
    assert_not_found(
        store
            .record_step(
                &StepRecord::pending(missing, "a", T0),
                &NewEvent::new("step_pending", "alice", T0),
            )
            .await,
        Entity::Run,
        missing,
    );
    assert_not_found(
        store
            .append_event(&NewEvent::new("note", "alice", T0).run(missing))
            .await,
        Entity::Run,
        missing,
    );
    Ok(())
}
