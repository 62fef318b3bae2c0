//! Conformance story about rehearsal evidence: it is recorded with its event in one transaction,
//! only for a rehearsal that succeeded, once per run, reads back exactly, and lists newest first
//! under each filter.

use serde_json::json;

use crate::conformance::{T0, assert_not_found, last_seq, new_run};
use crate::errors::{Entity, StoreError};
use crate::event::NewEvent;
use crate::evidence::{Evidence, EvidenceFilter, ForwardRun, RoundTrip, StepEvidence};
use crate::run::{RunKind, RunState, RunUpdate};
use crate::step::StepState;
use crate::store::Store;

fn evidence(id: &str, run_id: &str, hash: &str, environment: &str, finished: i64) -> Evidence {
    Evidence {
        id: id.to_owned(),
        run_id: run_id.to_owned(),
        plan_hash: hash.to_owned(),
        service: "checkout-conf".to_owned(),
        environment: environment.to_owned(),
        actor: "erin".to_owned(),
        started_at_ms: finished - 860_000,
        finished_at_ms: finished,
        steps: vec![
            StepEvidence {
                step_id: "drain".to_owned(),
                state: StepState::Succeeded,
                attempts: 2,
                duration_ms: Some(120_000),
                contingency: None,
            },
            StepEvidence {
                step_id: "restore".to_owned(),
                state: StepState::Succeeded,
                attempts: 1,
                duration_ms: Some(30_000),
                contingency: Some("restore-db".to_owned()),
            },
        ],
        contingencies: vec!["restore-db".to_owned()],
        round_trip: None,
        recorded_at_ms: finished + 5,
    }
}

/// Creates a rehearsal run and leaves it in `state`.
async fn rehearsal(store: &dyn Store, id: &str, state: RunState) -> Result<(), StoreError> {
    let mut run = new_run(id, T0, &["drain"]);
    run.kind = RunKind::Rehearsal;
    run.release_id = None;
    store
        .create_run(&run, &NewEvent::new("run_started", "erin", T0))
        .await?;
    store
        .update_run(
            &RunUpdate {
                run_id: id.to_owned(),
                state,
                executor: None,
                at_ms: T0 + 860_000,
            },
            &NewEvent::new("run_finished", "erin", T0 + 860_000),
        )
        .await?;
    Ok(())
}

/// Evidence round-trips with its event bound to the run; a second piece for the same run, a
/// duplicate id, a run that failed or is not a rehearsal, and an unknown run are refused and
/// append nothing; lists are newest first and filter by hash, service and environment.
pub async fn evidence_story(store: &dyn Store) -> Result<(), StoreError> {
    rehearsal(store, "run-evd-1", RunState::Succeeded).await?;
    rehearsal(store, "run-evd-2", RunState::Succeeded).await?;
    rehearsal(store, "run-evd-failed", RunState::Failed).await?;

    let mut first = evidence("evd-conf-1", "run-evd-1", "hash-a", "staging", T0 + 1_000);
    first.round_trip = Some(RoundTrip {
        command: "deploy.sh 2.14.0".to_owned(),
        first: ForwardRun {
            exit_status: Some(0),
            started_at_ms: T0,
            finished_at_ms: T0 + 10,
        },
        second: ForwardRun {
            exit_status: Some(0),
            started_at_ms: T0 + 900,
            finished_at_ms: T0 + 950,
        },
    });
    let event = store
        .record_evidence(
            &first,
            &NewEvent::new("evidence_recorded", "erin", T0 + 1_005)
                .payload(json!({ "evidence_id": "evd-conf-1" })),
        )
        .await?;
    assert_eq!(event.kind, "evidence_recorded");
    assert_eq!(
        event.run_id.as_deref(),
        Some("run-evd-1"),
        "the event is bound to the rehearsal run"
    );
    assert_eq!(store.get_evidence("evd-conf-1").await?, first);
    assert_eq!(
        store.evidence_of_run("run-evd-1").await?.as_ref(),
        Some(&first)
    );
    assert_eq!(store.evidence_of_run("run-evd-2").await?, None);

    let before = last_seq(store).await?;
    let again = evidence(
        "evd-conf-other",
        "run-evd-1",
        "hash-a",
        "staging",
        T0 + 2_000,
    );
    match store
        .record_evidence(&again, &NewEvent::new("evidence_recorded", "erin", T0))
        .await
    {
        Err(StoreError::Conflict {
            entity: Entity::Evidence,
            ..
        }) => {}
        other => panic!("expected Conflict for a second piece of evidence of a run, got {other:?}"),
    }
    let same_id = evidence("evd-conf-1", "run-evd-2", "hash-a", "staging", T0 + 2_000);
    assert!(matches!(
        store
            .record_evidence(&same_id, &NewEvent::new("evidence_recorded", "erin", T0))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let failed = evidence("evd-conf-f", "run-evd-failed", "hash-a", "staging", T0);
    assert!(
        matches!(
            store
                .record_evidence(&failed, &NewEvent::new("evidence_recorded", "erin", T0))
                .await,
            Err(StoreError::Invalid { .. })
        ),
        "a failed rehearsal is never evidence"
    );
    let missing = evidence("evd-conf-m", "run-evd-missing", "hash-a", "staging", T0);
    assert_not_found(
        store
            .record_evidence(&missing, &NewEvent::new("evidence_recorded", "erin", T0))
            .await,
        Entity::Run,
        "run-evd-missing",
    );
    assert_eq!(
        last_seq(store).await?,
        before,
        "refused evidence appends nothing"
    );
    assert_not_found(
        store.get_evidence("evd-conf-m").await,
        Entity::Evidence,
        "evd-conf-m",
    );

    let second = evidence("evd-conf-2", "run-evd-2", "hash-b", "qa", T0 + 3_000);
    store
        .record_evidence(
            &second,
            &NewEvent::new("evidence_recorded", "erin", T0 + 3_005),
        )
        .await?;
    let ids = |list: Vec<Evidence>| -> Vec<String> { list.into_iter().map(|e| e.id).collect() };
    let service = EvidenceFilter {
        service: Some("checkout-conf".to_owned()),
        ..EvidenceFilter::default()
    };
    assert_eq!(
        ids(store.list_evidence(&service, 10).await?),
        ["evd-conf-2", "evd-conf-1"],
        "newest first"
    );
    assert_eq!(ids(store.list_evidence(&service, 1).await?), ["evd-conf-2"]);
    let by_hash = EvidenceFilter {
        plan_hash: Some("hash-a".to_owned()),
        ..service.clone()
    };
    assert_eq!(
        ids(store.list_evidence(&by_hash, 10).await?),
        ["evd-conf-1"]
    );
    let by_env = EvidenceFilter {
        environment: Some("qa".to_owned()),
        ..service.clone()
    };
    assert_eq!(ids(store.list_evidence(&by_env, 10).await?), ["evd-conf-2"]);
    for found in store.list_evidence(&service, 10).await? {
        assert!(service.matches(&found));
    }
    Ok(())
}
