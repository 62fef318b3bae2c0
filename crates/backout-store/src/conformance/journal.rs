//! Conformance stories about the event journal: ordering, paging, the hash chain, atomicity of
//! failed writes, concurrent appends and detection of tampering.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::chain::{ChainBreak, ChainBreakKind, GENESIS_HASH, verify_chain};
use crate::conformance::{T0, Tampering, last_seq, new_run, rich_payload};
use crate::errors::{Entity, StoreError};
use crate::event::{Event, NewEvent};
use crate::run::RunUpdate;
use crate::step::{StepRecord, StepState};
use crate::store::{Store, verify_store};

/// Every event in the store, in seq order.
async fn all_events(store: &dyn Store) -> Result<Vec<Event>, StoreError> {
    store.events(0, u32::MAX).await
}

/// Events read back are the events returned by the writes, in seq order 1, 2, 3, … without gaps;
/// paging by `after_seq` and `limit` and filtering by run work.
pub async fn events_are_ordered_and_gap_free(store: &dyn Store) -> Result<(), StoreError> {
    let before = last_seq(store).await?;
    let run_id = "conf-events";
    let other_run = "conf-events-other";
    let mut written = Vec::new();
    written.push(
        store
            .create_run(
                &new_run(run_id, T0, &["a"]),
                &NewEvent::new("run_started", "alice", T0).payload(rich_payload(0)),
            )
            .await?,
    );
    store
        .create_run(
            &new_run(other_run, T0, &[]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await?;
    written.push(
        store
            .append_event(
                &NewEvent::new("checkpoint", "deployer", T0 + 1)
                    .release("rel-9")
                    .payload(rich_payload(1)),
            )
            .await?,
    );
    written.push(
        store
            .append_event(
                &NewEvent::new("note", "alice", T0 + 2)
                    .run(run_id)
                    .step("a")
                    .release("rel-9"),
            )
            .await?,
    );
    store
        .append_event(&NewEvent::new("note", "bob", T0 + 3).run(other_run))
        .await?;
    written.push(
        store
            .record_step(
                &StepRecord {
                    state: StepState::Running,
                    attempt: 1,
                    ..StepRecord::pending(run_id, "a", T0 + 4)
                },
                &NewEvent::new("step_started", "executor", T0 + 4).payload(rich_payload(4)),
            )
            .await?,
    );
    written.push(
        store
            .append_event(&NewEvent::new("system_note", "system", T0 + 5))
            .await?,
    );

    let all = all_events(store).await?;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    let gap_free: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, gap_free, "journal seqs are 1..=n without gaps");
    assert_eq!(all.len() as u64, before + 7, "seven events were appended");
    for event in &written {
        let stored = &all[(event.seq - 1) as usize];
        assert_eq!(stored, event, "event read back equals event returned");
    }
    assert_eq!(store.last_event().await?.as_ref(), all.last());
    let checkpoint = &all[(written[1].seq - 1) as usize];
    assert_eq!(checkpoint.payload, rich_payload(1), "payload round-trips");
    assert_eq!(checkpoint.release_id.as_deref(), Some("rel-9"));
    assert_eq!(checkpoint.run_id, None);
    assert_eq!(checkpoint.step_id, None);

    // Paging through the whole journal.
    let page = store.events(before, 2).await?;
    assert_eq!(page, all[before as usize..before as usize + 2]);
    let page = store.events(before + 2, 3).await?;
    assert_eq!(page, all[before as usize + 2..before as usize + 5]);
    assert!(store.events(before + 7, 10).await?.is_empty());
    assert!(
        store.events(0, 0).await?.is_empty(),
        "limit 0 returns nothing"
    );

    // Only this run's events, and tailing after a seq.
    let of_run = store.run_events(run_id, 0, 100).await?;
    assert_eq!(
        of_run,
        [written[0].clone(), written[2].clone(), written[3].clone()]
    );
    let tail = store.run_events(run_id, written[0].seq, 100).await?;
    assert_eq!(tail, [written[2].clone(), written[3].clone()]);
    let limited = store.run_events(run_id, 0, 1).await?;
    assert_eq!(limited, [written[0].clone()]);
    assert!(
        store
            .run_events(run_id, written[3].seq, 100)
            .await?
            .is_empty()
    );
    Ok(())
}

/// The stored journal is one hash chain from [`GENESIS_HASH`], verifiable in pages.
pub async fn chain_verifies(store: &dyn Store) -> Result<(), StoreError> {
    if last_seq(store).await? < 3 {
        for n in 0..3 {
            store
                .append_event(
                    &NewEvent::new("filler", "system", T0 + n).payload(rich_payload(n as u64)),
                )
                .await?;
        }
    }
    let all = all_events(store).await?;
    assert_eq!(
        all[0].prev_hash, GENESIS_HASH,
        "first event links to genesis"
    );
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "seq {} links to its predecessor",
            pair[1].seq
        );
    }
    for event in &all {
        assert_eq!(
            event.hash,
            event.computed_hash(),
            "hash of seq {}",
            event.seq
        );
    }
    let summary = match verify_chain(&all) {
        Ok(summary) => summary,
        Err(broken) => panic!("intact journal does not verify: {broken}"),
    };
    assert_eq!(summary.checked, all.len() as u64);
    let head = summary.head.clone().expect("non-empty journal has a head");
    assert_eq!(head.seq, all.len() as u64);
    // Page sizes that do and do not divide the journal length.
    for page_size in [1, 2, 3, 1000] {
        let paged = verify_store(store, page_size).await?;
        assert_eq!(
            paged,
            Ok(summary.clone()),
            "verify_store with pages of {page_size}"
        );
    }
    Ok(())
}

/// Writes that fail append no event and change no record, and leave no gap in `seq`.
pub async fn failed_writes_append_nothing(store: &dyn Store) -> Result<(), StoreError> {
    let run_id = "conf-atomic";
    let original = new_run(run_id, T0, &["a"]);
    store
        .create_run(&original, &NewEvent::new("run_started", "alice", T0))
        .await?;
    let head = store.last_event().await?;
    let stored_run = store.get_run(run_id).await?;
    let stored_steps = store.list_steps(run_id).await?;

    // Duplicate run id.
    let mut duplicate = new_run(run_id, T0 + 1, &["b"]);
    duplicate.plan_hash = "other-hash".to_owned();
    match store
        .create_run(&duplicate, &NewEvent::new("run_started", "mallory", T0 + 1))
        .await
    {
        Err(StoreError::Conflict { entity, id }) => {
            assert_eq!(entity, Entity::Run);
            assert_eq!(id, run_id);
        }
        other => panic!("expected Conflict for a duplicate run, got {other:?}"),
    }

    // Unknown run for a step, a run update and an event.
    let missing = "conf-atomic-missing";
    assert!(
        store
            .record_step(
                &StepRecord::pending(missing, "a", T0),
                &NewEvent::new("step_started", "executor", T0),
            )
            .await
            .is_err()
    );
    assert!(
        store
            .update_run(
                &RunUpdate {
                    run_id: missing.to_owned(),
                    state: crate::RunState::Failed,
                    executor: None,
                    at_ms: T0,
                },
                &NewEvent::new("run_failed", "executor", T0),
            )
            .await
            .is_err()
    );
    assert!(
        store
            .append_event(&NewEvent::new("note", "alice", T0).run(missing))
            .await
            .is_err()
    );

    // A batch with one bad record writes none of it: the good step before it stays as it was.
    let good = StepRecord {
        state: StepState::Succeeded,
        ..StepRecord::pending(run_id, "a", T0 + 1)
    };
    assert!(
        store
            .record_steps(&[
                (good, NewEvent::new("step_succeeded", "executor", T0 + 1)),
                (
                    StepRecord::pending(missing, "a", T0 + 1),
                    NewEvent::new("step_started", "executor", T0 + 1)
                ),
            ])
            .await
            .is_err()
    );

    // An event that names another run or step than the record written with it.
    let changed = StepRecord {
        state: StepState::Failed,
        ..StepRecord::pending(run_id, "a", T0 + 2)
    };
    for event in [
        NewEvent::new("step_failed", "executor", T0 + 2).run("conf-steps"),
        NewEvent::new("step_failed", "executor", T0 + 2).step("b"),
    ] {
        match store.record_step(&changed, &event).await {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("expected Invalid for a mismatched event, got {other:?}"),
        }
    }
    match store
        .update_run(
            &RunUpdate {
                run_id: run_id.to_owned(),
                state: crate::RunState::Aborted,
                executor: None,
                at_ms: T0 + 3,
            },
            &NewEvent::new("run_aborted", "alice", T0 + 3).run("conf-steps"),
        )
        .await
    {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("expected Invalid for a mismatched event, got {other:?}"),
    }

    assert_eq!(
        store.last_event().await?,
        head,
        "failed writes appended nothing"
    );
    assert_eq!(store.get_run(run_id).await?, stored_run, "run unchanged");
    assert_eq!(
        store.list_steps(run_id).await?,
        stored_steps,
        "steps unchanged"
    );
    assert_not_found_run(store.get_run(missing).await, missing);

    // The next successful append follows directly: failures consumed no seq.
    let next = store
        .append_event(&NewEvent::new("note", "alice", T0 + 4))
        .await?;
    assert_eq!(
        next.seq,
        head.as_ref().map_or(0, |e| e.seq) + 1,
        "no gap after failures"
    );
    assert_eq!(
        next.prev_hash,
        head.map_or(GENESIS_HASH.to_owned(), |e| e.hash)
    );
    Ok(())
}

fn assert_not_found_run<T: std::fmt::Debug>(result: Result<T, StoreError>, id: &str) {
    crate::conformance::assert_not_found(result, Entity::Run, id);
}

/// Tasks appending at the same time (step changes and plain events) get unique, gap-free seqs
/// and leave one valid chain; each step ends with its task's last write.
pub async fn concurrent_appends(store: Arc<dyn Store>) -> Result<(), StoreError> {
    const TASKS: usize = 8;
    const WRITES: u32 = 12;
    let run_id = "conf-concurrent";
    let steps: Vec<String> = (0..TASKS).map(|i| format!("s{i}")).collect();
    let step_refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    store
        .create_run(
            &new_run(run_id, T0, &step_refs),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await?;
    let before = last_seq(store.as_ref()).await?;

    let mut tasks = tokio::task::JoinSet::new();
    for (task, step) in steps.iter().cloned().enumerate() {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut events = Vec::new();
            for write in 1..=WRITES {
                let at = T0 + i64::from(write);
                let event = if write % 2 == 0 {
                    let record = StepRecord {
                        state: StepState::Running,
                        attempt: write,
                        ..StepRecord::pending(run_id, step.clone(), at)
                    };
                    let event = NewEvent::new("step_attempt", format!("task-{task}"), at)
                        .payload(serde_json::json!({"task": task, "write": write}));
                    store.record_step(&record, &event).await?
                } else {
                    let event = NewEvent::new("note", format!("task-{task}"), at)
                        .run(run_id)
                        .payload(serde_json::json!({"task": task, "write": write}));
                    store.append_event(&event).await?
                };
                events.push(event);
            }
            Ok::<_, StoreError>(events)
        });
    }
    let mut returned = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let events = match joined {
            Ok(result) => result?,
            Err(join_error) => panic!("append task panicked: {join_error}"),
        };
        // Within one task, later writes get later seqs.
        assert!(
            events.windows(2).all(|w| w[0].seq < w[1].seq),
            "per-task order"
        );
        returned.extend(events);
    }

    let total = TASKS as u64 * u64::from(WRITES);
    let seqs: BTreeSet<u64> = returned.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len() as u64, total, "every append got its own seq");
    let expected: BTreeSet<u64> = (before + 1..=before + total).collect();
    assert_eq!(seqs, expected, "concurrent appends are gap-free");

    returned.sort_by_key(|e| e.seq);
    let stored = store.events(before, u32::MAX).await?;
    assert_eq!(stored, returned, "stored events are the ones returned");
    if let Err(broken) = verify_chain(&all_events(store.as_ref()).await?) {
        panic!("chain broken by concurrent appends: {broken}");
    }
    for record in store.list_steps(run_id).await? {
        assert_eq!(
            record.attempt, WRITES,
            "{} ends with its last write",
            record.step_id
        );
    }
    Ok(())
}

/// Editing or deleting a stored event behind the store's back is reported at exactly that
/// event's seq. `tamper` must perform the [`Tampering`] directly on the backend's storage.
pub async fn tampering_is_detected<F>(store: &dyn Store, mut tamper: F) -> Result<(), StoreError>
where
    F: AsyncFnMut(Tampering),
{
    let before = last_seq(store).await?;
    for n in 1..=6 {
        store
            .append_event(&NewEvent::new("note", "alice", T0 + n).payload(rich_payload(n as u64)))
            .await?;
    }
    if let Err(broken) = verify_chain(&all_events(store).await?) {
        panic!("intact journal does not verify: {broken}");
    }

    let deleted = before + 5;
    tamper(Tampering::Delete { seq: deleted }).await;
    assert_eq!(
        verify_chain(&all_events(store).await?),
        Err(ChainBreak {
            seq: deleted + 1,
            kind: ChainBreakKind::Gap { expected: deleted },
        }),
        "a deleted event is reported at the seq after it"
    );

    let edited = before + 2;
    tamper(Tampering::EditPayload { seq: edited }).await;
    let events = all_events(store).await?;
    assert_eq!(
        events[(edited - 1) as usize].payload,
        serde_json::json!({"tampered": true})
    );
    assert_eq!(
        verify_chain(&events),
        Err(ChainBreak {
            seq: edited,
            kind: ChainBreakKind::HashMismatch,
        }),
        "the first tampered event is reported at its seq"
    );
    assert_eq!(
        verify_store(store, 2).await?,
        Err(ChainBreak {
            seq: edited,
            kind: ChainBreakKind::HashMismatch,
        })
    );
    if let Err(broken) = verify_chain(&events[..(edited - 1) as usize]) {
        panic!("events before the tampered one still verify, got {broken}");
    }
    Ok(())
}
