//! The authorization rules on the reference plan (`fixtures/plans/valid/checkout.yaml`), with
//! time injected: deciders are `release-managers` (quorum 1), the fallback `ops-oncall` after
//! 15 minutes, `separation_of_duties`, performers `ops-oncall`, a 4h window.

use std::sync::Arc;

use backout_core::ExecError;
use backout_core::release::decide::{self, Choice, Decide};
use backout_core::release::{self, StartRelease};
use backout_sqlite::SqliteStore;
use backout_store::Store;

const T0: i64 = 1_795_700_000_000;
const MINUTE: i64 = 60_000;

fn reference_plan() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/plans/valid/checkout.yaml"),
    )
    .expect("the reference plan")
}

async fn release(store: &dyn Store) -> String {
    release::start(
        store,
        &StartRelease {
            source: &reference_plan(),
            version: None,
            rollback_to: None,
            actor: "alice@example.com",
            at_ms: T0,
        },
    )
    .await
    .expect("start")
    .id
}

async fn approve(
    store: &dyn Store,
    id: &str,
    who: &str,
    at: i64,
) -> Result<decide::Decided, ExecError> {
    decide::decide(
        store,
        &Decide {
            release_id: id,
            actor: who,
            choice: Choice::Approve,
            reason: "error rate above 2%",
            override_window: false,
            now_ms: at,
        },
    )
    .await
}

fn refusal<T>(result: Result<T, ExecError>) -> String {
    match result {
        Err(ExecError::Refused(message)) => message,
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, but it was allowed"),
    }
}

async fn kinds(store: &dyn Store, id: &str) -> Vec<String> {
    store
        .release_events(id, 0, 1000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| format!("{} {}", e.kind, e.actor))
        .collect()
}

#[tokio::test]
async fn the_fallback_decides_only_after_fifteen_minutes_and_escalates_once() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let id = release(store.as_ref()).await;
    release::request(
        store.as_ref(),
        &id,
        "payments failing",
        "erin@example.com",
        T0 + MINUTE,
    )
    .await
    .expect("request");
    let message =
        refusal(approve(store.as_ref(), &id, "mallory@example.com", T0 + 2 * MINUTE).await);
    assert!(
        message.contains("only `release-managers` (carol@example.com, dan@example.com) may")
            && message.contains("or `ops-oncall` (erin@example.com, frank@example.com) once no decision came for 15m"),
        "{message}"
    );
    let message = refusal(approve(store.as_ref(), &id, "erin@example.com", T0 + 15 * MINUTE).await);
    assert!(
        message.contains("in 1m"),
        "14 minutes after the request: {message}"
    );
    let decided = approve(store.as_ref(), &id, "erin@example.com", T0 + 16 * MINUTE)
        .await
        .expect("the fallback may decide after 15m");
    assert!(decided.as_fallback && decided.approved);
    assert_eq!(
        kinds(store.as_ref(), &id).await,
        [
            "release_started alice@example.com",
            "rollback_requested erin@example.com",
            // The request asks the deciders at once (issue 14), in the same commit.
            "decision_requested backout",
            "escalated backout",
            "decision erin@example.com",
        ]
    );
    let message = refusal(
        decide::clear_execution(store.as_ref(), &id, "erin@example.com", T0 + 17 * MINUTE).await,
    );
    assert!(message.contains("separation_of_duties"), "{message}");
    decide::clear_execution(store.as_ref(), &id, "frank@example.com", T0 + 17 * MINUTE)
        .await
        .expect("another performer may start it");
}

#[tokio::test]
async fn a_decider_approves_at_once_and_late_approvals_need_the_override() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let id = release(store.as_ref()).await;
    release::request(
        store.as_ref(),
        &id,
        "emails empty",
        "erin@example.com",
        T0 + MINUTE,
    )
    .await
    .expect("request");
    let message = refusal(
        approve(
            store.as_ref(),
            &id,
            "carol@example.com",
            T0 + 5 * 60 * MINUTE,
        )
        .await,
    );
    assert!(
        message.contains("is closed (its time ran out)") && message.contains("--override-window"),
        "after the 4h window: {message}"
    );
    let decided = approve(store.as_ref(), &id, "carol@example.com", T0 + 2 * MINUTE)
        .await
        .expect("a decider inside the window");
    assert!(decided.approved && !decided.as_fallback);
    let message = refusal(
        decide::clear_execution(store.as_ref(), &id, "carol@example.com", T0 + 3 * MINUTE).await,
    );
    assert!(message.contains("execution.performers"), "{message}");
}

/// `may_decide` (which buttons the web UI shows) agrees with `decide` at every moment.
#[tokio::test]
async fn may_decide_agrees_with_decide() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
    let id = release(store.as_ref()).await;
    let may = |who: &'static str, at: i64| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let loaded = decide::load(store.as_ref(), &id).await.expect("load");
            decide::may_decide(&loaded.plan, &loaded.decisions, who, at)
        }
    };
    // Nothing pending: nobody.
    assert!(!may("carol@example.com", T0).await);
    release::request(
        store.as_ref(),
        &id,
        "payments failing",
        "erin@example.com",
        T0,
    )
    .await
    .expect("request");
    assert!(
        may("carol@example.com", T0 + MINUTE).await,
        "a decider, at once"
    );
    assert!(
        may("CAROL@example.com ", T0 + MINUTE).await,
        "identities ignore case"
    );
    assert!(
        !may("mallory@example.com", T0 + MINUTE).await,
        "a stranger, never"
    );
    assert!(
        !may("erin@example.com", T0 + 14 * MINUTE).await,
        "the fallback, not yet"
    );
    refusal(approve(store.as_ref(), &id, "erin@example.com", T0 + 14 * MINUTE).await);
    assert!(
        may("erin@example.com", T0 + 16 * MINUTE).await,
        "the fallback, after 15m"
    );
    approve(store.as_ref(), &id, "carol@example.com", T0 + 16 * MINUTE)
        .await
        .expect("approve");
    assert!(
        !may("dan@example.com", T0 + 17 * MINUTE).await,
        "already approved"
    );
}
