//! Conformance story about releases: creation, reading back, checkpoints in order, closing at a
//! point of no return, and the refusals around them.

use crate::conformance::{T0, last_seq};
use crate::errors::{Entity, StoreError};
use crate::event::NewEvent;
use crate::release::{Checkpoint, NewRelease, Release, ReleaseState};
use crate::store::Store;

fn new_release(id: &str) -> NewRelease {
    NewRelease {
        id: id.to_owned(),
        plan_hash: "hash-1".to_owned(),
        plan_source: "version: 1\n".to_owned(),
        service: "checkout".to_owned(),
        version: "2.14.0".to_owned(),
        rollback_to: "2.13.4".to_owned(),
        environment: "production".to_owned(),
        actor: "alice".to_owned(),
        opened_at_ms: T0,
        closes_at_ms: Some(T0 + 4 * 3_600_000),
    }
}

/// Releases round-trip, list newest first, record checkpoints in order, close at a point of no
/// return in the same transaction, and refuse duplicates, unknown ids and changes when closed.
pub async fn releases(store: &dyn Store) -> Result<(), StoreError> {
    let first = new_release("rel-conf-1");
    let event = store
        .create_release(&first, &NewEvent::new("release_started", "alice", T0))
        .await?;
    assert_eq!(
        event.release_id.as_deref(),
        Some("rel-conf-1"),
        "the event is bound to the release"
    );
    assert_eq!(
        store.get_release("rel-conf-1").await?,
        Release::from_new(&first)
    );
    let mut second = new_release("rel-conf-2");
    second.opened_at_ms = T0 + 10;
    second.closes_at_ms = None;
    store
        .create_release(&second, &NewEvent::new("release_started", "bob", T0 + 10))
        .await?;
    let ids: Vec<String> = store
        .list_releases(10)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids[..2],
        ["rel-conf-2".to_owned(), "rel-conf-1".to_owned()],
        "newest first"
    );
    match store
        .create_release(&first, &NewEvent::new("release_started", "mallory", T0))
        .await
    {
        Err(StoreError::Conflict {
            entity: Entity::Release,
            ..
        }) => {}
        other => panic!("expected Conflict for a duplicate release, got {other:?}"),
    }

    let checkpoint = |name: &str, at: i64| Checkpoint {
        name: name.to_owned(),
        at_ms: at,
        actor: "deploy-bot".to_owned(),
    };
    store
        .record_checkpoint(
            "rel-conf-1",
            &checkpoint("expand", T0 + 100),
            None,
            &NewEvent::new("checkpoint", "deploy-bot", T0 + 100),
        )
        .await?;
    match store
        .record_checkpoint(
            "rel-conf-1",
            &checkpoint("expand", T0 + 150),
            None,
            &NewEvent::new("checkpoint", "deploy-bot", T0 + 150),
        )
        .await
    {
        Err(StoreError::Conflict {
            entity: Entity::Checkpoint,
            ..
        }) => {}
        other => panic!("expected Conflict for a checkpoint reached twice, got {other:?}"),
    }
    let before = last_seq(store).await?;
    store
        .record_checkpoint(
            "rel-conf-1",
            &checkpoint("contract", T0 + 200),
            Some("point of no return `contract` reached"),
            &NewEvent::new("checkpoint", "deploy-bot", T0 + 200),
        )
        .await?;
    assert_eq!(
        last_seq(store).await?,
        before + 1,
        "a failed duplicate appended nothing; the close did"
    );
    let release = store.get_release("rel-conf-1").await?;
    assert_eq!(
        release.checkpoints,
        vec![
            checkpoint("expand", T0 + 100),
            checkpoint("contract", T0 + 200)
        ]
    );
    assert_eq!(release.state, ReleaseState::Closed);
    assert_eq!(release.closed_at_ms, Some(T0 + 200));
    assert_eq!(
        release.close_reason.as_deref(),
        Some("point of no return `contract` reached")
    );
    assert!(release.window_closed(T0 + 201));
    assert!(release.reached("expand") && !release.reached("traffic"));
    assert!(
        store
            .record_checkpoint(
                "rel-conf-1",
                &checkpoint("late", T0 + 300),
                None,
                &NewEvent::new("checkpoint", "x", T0 + 300)
            )
            .await
            .is_err(),
        "a closed release takes no checkpoints"
    );

    store
        .close_release(
            "rel-conf-2",
            T0 + 500,
            "success: checks held",
            &NewEvent::new("window_closed", "watcher", T0 + 500),
        )
        .await?;
    let second = store.get_release("rel-conf-2").await?;
    assert_eq!(
        (second.state, second.closed_at_ms),
        (ReleaseState::Closed, Some(T0 + 500))
    );
    let kinds: Vec<String> = store
        .release_events("rel-conf-1", 0, 100)
        .await?
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["release_started", "checkpoint", "checkpoint"],
        "a release's events, in order"
    );
    let picked: Vec<(String, i64)> = store
        .release_events_of_kinds("rel-conf-1", 0, &["checkpoint", "no-such-kind"], 10)
        .await?
        .into_iter()
        .map(|e| (e.kind, e.at_ms))
        .collect();
    assert_eq!(
        picked,
        [
            ("checkpoint".to_string(), T0 + 100),
            ("checkpoint".to_string(), T0 + 200)
        ],
        "only the kinds asked for, of this release, in order"
    );
    assert_eq!(
        store
            .release_events_of_kinds("rel-conf-1", 0, &["checkpoint"], 1)
            .await?
            .len(),
        1,
        "at most `limit`"
    );
    assert!(
        store
            .release_events_of_kinds("rel-conf-missing", 0, &["checkpoint"], 10)
            .await
            .is_err(),
        "an unknown release is an error, as for release_events"
    );
    let newest = store
        .last_release_event("rel-conf-1", "checkpoint")
        .await?
        .expect("the release has checkpoint events");
    assert_eq!(
        (newest.kind.as_str(), newest.at_ms),
        ("checkpoint", T0 + 200),
        "the newest event of a kind, not the first"
    );
    assert!(
        store
            .last_release_event("rel-conf-1", "verdict")
            .await?
            .is_none(),
        "no event of that kind: none"
    );
    assert!(
        store
            .last_release_event("rel-conf-2", "checkpoint")
            .await?
            .is_none(),
        "another release's events are not this one's"
    );
    assert!(
        store
            .last_release_event("rel-conf-missing", "checkpoint")
            .await
            .is_err(),
        "an unknown release is an error, as for release_events"
    );
    assert!(
        store
            .release_events("rel-conf-missing", 0, 10)
            .await
            .is_err()
    );
    match store.get_release("rel-conf-missing").await {
        Err(StoreError::NotFound {
            entity: Entity::Release,
            ..
        }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}

/// What a watcher of many releases needs: the open releases with their checkpoints, a batch of
/// events committed all or nothing, and a tail of the journal filtered by kind.
pub async fn watcher_reads(store: &dyn Store) -> Result<(), StoreError> {
    let mut open = new_release("rel-conf-open");
    open.opened_at_ms = T0 + 1_000;
    store
        .create_release(
            &open,
            &NewEvent::new("release_started", "alice", T0 + 1_000),
        )
        .await?;
    store
        .record_checkpoint(
            "rel-conf-open",
            &Checkpoint {
                name: "expand".to_owned(),
                at_ms: T0 + 1_100,
                actor: "bot".to_owned(),
            },
            None,
            &NewEvent::new("checkpoint_reached", "bot", T0 + 1_100),
        )
        .await?;
    let mut closed = new_release("rel-conf-shut");
    closed.opened_at_ms = T0 + 1_200;
    store
        .create_release(
            &closed,
            &NewEvent::new("release_started", "alice", T0 + 1_200),
        )
        .await?;
    store
        .close_release(
            "rel-conf-shut",
            T0 + 1_300,
            "closed on time",
            &NewEvent::new("window_closed", "watcher", T0 + 1_300),
        )
        .await?;
    let before = last_seq(store).await?;
    match store
        .close_release(
            "rel-conf-shut",
            T0 + 1_400,
            "again",
            &NewEvent::new("window_closed", "watcher", T0 + 1_400),
        )
        .await
    {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("expected Invalid for closing a closed window, got {other:?}"),
    }
    assert_eq!(
        last_seq(store).await?,
        before,
        "a refused close appends nothing"
    );
    let listed = store.open_releases().await?;
    let mine = listed
        .iter()
        .find(|r| r.id == "rel-conf-open")
        .expect("an open release is listed");
    assert_eq!(mine.checkpoints.len(), 1, "with its checkpoints");
    assert!(
        listed.iter().all(|r| r.state == ReleaseState::Open),
        "closed releases are not listed"
    );

    let before = last_seq(store).await?;
    let batch: Vec<NewEvent> = (0..3)
        .map(|i| {
            NewEvent::new("measurement", "watcher", T0 + 2_000 + i)
                .payload(serde_json::json!({ "i": i }))
                .release("rel-conf-open")
        })
        .collect();
    let sealed = store.append_events(&batch).await?;
    assert_eq!(
        sealed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![before + 1, before + 2, before + 3],
        "a batch is appended in order"
    );
    assert!(store.append_events(&[]).await?.is_empty());
    let bad = vec![
        NewEvent::new("measurement", "watcher", T0 + 3_000).release("rel-conf-open"),
        NewEvent::new("step_started", "watcher", T0 + 3_000).run("run-conf-missing"),
    ];
    assert!(
        store.append_events(&bad).await.is_err(),
        "an event naming a missing run fails the batch"
    );
    assert_eq!(
        last_seq(store).await?,
        before + 3,
        "a failed batch appends nothing"
    );

    let tail = store
        .events_of_kinds(
            before.saturating_sub(10),
            &["checkpoint_reached", "window_closed"],
            100,
        )
        .await?;
    assert!(
        tail.iter()
            .all(|e| e.kind == "checkpoint_reached" || e.kind == "window_closed"),
        "only the asked kinds"
    );
    assert!(
        tail.iter()
            .any(|e| e.release_id.as_deref() == Some("rel-conf-shut")),
        "the close of the other release is in the tail"
    );
    assert!(
        store
            .events_of_kinds(before, &["measurement"], 2)
            .await?
            .len()
            == 2,
        "limit applies"
    );
    Ok(())
}
