//! Conformance stories about leases and fencing: taking, renewing, expiring, taking over and
//! releasing a lease; fencing tokens that only grow; one winner among many concurrent takers;
//! and a write under a stale token refused with the journal unchanged.

use std::sync::Arc;

use crate::conformance::{T0, last_seq, new_run};
use crate::errors::StoreError;
use crate::event::NewEvent;
use crate::lease::{Fence, Lease};
use crate::step::{StepRecord, StepState};
use crate::store::Store;

const TTL: i64 = 3_000;

fn expect_some(lease: Option<Lease>, what: &str) -> Lease {
    lease.unwrap_or_else(|| panic!("{what}: expected the lease, got None"))
}

/// A lease is taken when free, renewed by its holder with the same token, refused to others
/// while live, taken over after its expiry with a greater token, lost for the old holder (renew
/// fails), released at once for the next taker, and listed by prefix.
pub async fn leases(store: &dyn Store) -> Result<(), StoreError> {
    let name = "conf-lease:alpha";
    let a = expect_some(
        store.acquire_lease(name, "replica-a", T0, TTL).await?,
        "free",
    );
    assert_eq!((a.name.as_str(), a.owner.as_str()), (name, "replica-a"));
    assert_eq!(a.expires_at_ms, T0 + TTL);
    assert!(a.is_held(T0) && !a.is_held(T0 + TTL));

    assert_eq!(
        store.acquire_lease(name, "replica-b", T0 + 10, TTL).await?,
        None,
        "a live lease is not given to another owner"
    );
    let again = expect_some(
        store.acquire_lease(name, "replica-a", T0 + 20, TTL).await?,
        "the holder acquiring again",
    );
    assert_eq!(again.token, a.token, "the holder keeps its token");
    assert_eq!(again.expires_at_ms, T0 + 20 + TTL);
    let renewed = expect_some(
        store.renew_lease(&again, T0 + 1_000, TTL).await?,
        "renewing",
    );
    assert_eq!(renewed.token, a.token);
    assert_eq!(renewed.expires_at_ms, T0 + 1_000 + TTL);
    assert_eq!(
        store
            .acquire_lease(name, "replica-b", T0 + 1_000 + TTL - 1, TTL)
            .await?,
        None,
        "renewed: still live one millisecond before the new expiry"
    );

    // The holder stops renewing (it died or was paused); after the expiry another takes over.
    let expired_at = renewed.expires_at_ms;
    let b = expect_some(
        store
            .acquire_lease(name, "replica-b", expired_at, TTL)
            .await?,
        "takeover at the expiry",
    );
    assert_eq!(b.owner, "replica-b");
    assert!(b.token > renewed.token, "a new holder gets a greater token");
    assert_eq!(
        store.renew_lease(&renewed, expired_at + 1, TTL).await?,
        None,
        "the old holder's renewal fails once another took over"
    );
    // Releasing a lost lease changes nothing.
    store.release_lease(&renewed).await?;
    assert_eq!(
        store
            .acquire_lease(name, "replica-c", expired_at + 1, TTL)
            .await?,
        None,
        "releasing a lost lease does not free the new holder's"
    );

    // Released: free at once, and the next holder's token is greater still.
    store.release_lease(&b).await?;
    let listed = store.leases("conf-lease:").await?;
    let stored = listed
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("lease `{name}` is listed by its prefix: {listed:?}"));
    assert!(!stored.is_held(expired_at + 2), "released: {stored:?}");
    assert_eq!(
        store.renew_lease(&b, expired_at + 2, TTL).await?,
        None,
        "a released lease cannot be renewed"
    );
    let c = expect_some(
        store
            .acquire_lease(name, "replica-c", expired_at + 2, TTL)
            .await?,
        "taking a released lease before its expiry",
    );
    assert!(
        c.token > b.token,
        "tokens only grow: {} then {}",
        b.token,
        c.token
    );

    // The same owner coming back after its lease expired is a new holder: new token, so the
    // writes of its own older work under the old token are fenced off.
    let c2 = expect_some(
        store
            .acquire_lease(name, "replica-c", c.expires_at_ms + 5, TTL)
            .await?,
        "the same owner after the expiry",
    );
    assert!(c2.token > c.token);

    // Prefixes select; other names are independent.
    let other = expect_some(
        store
            .acquire_lease("conf-lease:beta", "replica-a", T0, TTL)
            .await?,
        "another name",
    );
    assert_eq!(other.token, 1, "each name counts its own tokens");
    let names: Vec<String> = store
        .leases("conf-lease:")
        .await?
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["conf-lease:alpha", "conf-lease:beta"], "by name");
    assert!(store.leases("conf-lease:zzz").await?.is_empty());

    // Refusals.
    for (name, owner, ttl) in [("", "a", TTL), ("x", "", TTL), ("x", "a", 0)] {
        match store.acquire_lease(name, owner, T0, ttl).await {
            Err(StoreError::Invalid { .. }) => {}
            other => panic!("lease `{name}` for `{owner}` with ttl {ttl}: {other:?}"),
        }
    }
    Ok(())
}

/// Many tasks racing for one free lease: exactly one wins.
pub async fn concurrent_lease_takers(store: Arc<dyn Store>) -> Result<(), StoreError> {
    const TAKERS: usize = 16;
    let name = "conf-lease:race";
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..TAKERS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .acquire_lease(name, &format!("racer-{n}"), T0, 60_000)
                .await
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let taken = joined.unwrap_or_else(|e| panic!("a lease taker panicked: {e}"))?;
        winners.extend(taken);
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let stored = store.leases(name).await?;
    assert_eq!(stored, winners, "the stored lease is the winner's");
    Ok(())
}

/// A write under a lease goes through while its token is current; once another replica took
/// the lease over, every kind of write under the old token is refused with `Fenced` and the
/// journal and the records are unchanged.
pub async fn fenced_writes(store: &dyn Store) -> Result<(), StoreError> {
    let name = "conf-lease:run";
    let run_id = "run-conf-fenced";
    let old = expect_some(
        store.acquire_lease(name, "replica-a", T0, TTL).await?,
        "free",
    );
    let fence = Some(old.fence());
    let created = store
        .create_run(
            &new_run(run_id, T0, &["drain"]),
            &NewEvent::new("run_started", "backout:serve", T0).fenced(fence.clone()),
        )
        .await?;
    assert_eq!(created.kind, "run_started");
    let mut running = StepRecord::pending(run_id, "drain", T0 + 1);
    running.state = StepState::Running;
    running.attempt = 1;
    store
        .record_step(
            &running,
            &NewEvent::new("step_started", "backout:serve", T0 + 1).fenced(fence.clone()),
        )
        .await?;

    // Paused past the expiry; another replica takes the run over.
    let new = expect_some(
        store
            .acquire_lease(name, "replica-b", old.expires_at_ms, TTL)
            .await?,
        "takeover",
    );
    let seq = last_seq(store).await?;
    let steps = store.list_steps(run_id).await?;
    let mut done = running.clone();
    done.state = StepState::Succeeded;
    done.finished_at_ms = Some(T0 + 5_000);
    let stale = NewEvent::new("step_succeeded", "backout:serve", T0 + 5_000)
        .run(run_id)
        .fenced(fence.clone());
    let refusals = [
        store.record_step(&done, &stale).await.map(|_| ()),
        store
            .record_steps(&[(done.clone(), stale.clone())])
            .await
            .map(|_| ()),
        store.append_event(&stale).await.map(|_| ()),
        // A batch is all or nothing: one stale fence refuses the fresh events with it.
        store
            .append_events(&[
                NewEvent::new("note", "backout:serve", T0 + 5_000)
                    .run(run_id)
                    .fenced(Some(new.fence())),
                stale.clone(),
            ])
            .await
            .map(|_| ()),
        // A fence naming a lease that never existed is refused too.
        store
            .append_event(&stale.clone().fenced(Some(Fence {
                lease: "conf-lease:never".into(),
                token: 1,
            })))
            .await
            .map(|_| ()),
    ];
    for (n, refused) in refusals.into_iter().enumerate() {
        match refused {
            Err(StoreError::Fenced { lease, .. }) => {
                assert!(lease.starts_with("conf-lease:"), "names the lease: {lease}");
            }
            other => panic!("stale write {n} was not fenced: {other:?}"),
        }
    }
    let message = StoreError::fenced(&old.fence()).to_string();
    assert!(
        message.contains("another replica") && message.contains(name),
        "the message says what happened: {message}"
    );
    assert_eq!(last_seq(store).await?, seq, "fenced writes append nothing");
    assert_eq!(
        store.list_steps(run_id).await?,
        steps,
        "fenced writes change no record"
    );

    // The new holder writes under its own token.
    store
        .record_step(
            &done,
            &NewEvent::new("step_succeeded", "backout:serve", T0 + 5_001).fenced(Some(new.fence())),
        )
        .await?;
    assert_eq!(last_seq(store).await?, seq + 1);
    Ok(())
}
