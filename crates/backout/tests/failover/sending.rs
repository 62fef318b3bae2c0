//! The replica sending a notification is killed while the receiver hangs: the other sends it,
//! once its claim expired, with the same idempotency key.

use std::time::{Duration, Instant};

use backout_store::Store;

use crate::setup::*;
use crate::support::server::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_sending_loses_no_notification() {
    let setup = Setup::new().await;
    let receiver = webhook(true);
    let client = client();
    let tuning = [
        ("BACKOUT_DELIVERY_TIMEOUT", "3s"),
        ("BACKOUT_DELIVERY_LEASE", "6s"),
    ];
    let mut replicas = [setup.replica(&tuning), setup.replica(&tuning)];
    let logs = || logs_of(&replicas);
    let rel = setup
        .requested(&client, &replicas[1], &plan(&receiver.url, 1))
        .await;
    let start = Instant::now();
    while seen_by(&receiver).is_empty() {
        assert!(start.elapsed() < PATIENCE, "nothing was sent:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deliveries = setup
        .store
        .list_deliveries(Some(&rel), 10)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    let claimant = deliveries[0]
        .claimed_by
        .clone()
        .unwrap_or_else(|| panic!("a delivery being sent is claimed: {deliveries:#?}"));
    let claimed_until = deliveries[0].claimed_until_ms.expect("claimed until");
    let index = index_of(&replicas, &claimant);
    replicas[index].kill_9();
    let logs = || replicas[1 - index].log();

    let delivered = setup.all_delivered(&logs).await;
    assert_eq!(delivered, 1);
    let delivery = setup
        .store
        .get_delivery(deliveries[0].id)
        .await
        .expect("delivery");
    let attempts = &delivery.attempts;
    assert_eq!(
        attempts.len(),
        1,
        "the killed attempt recorded nothing: {delivery:#?}"
    );
    assert!(
        attempts[0].at_ms >= claimed_until,
        "sent again only after the dead replica's claim expired: {delivery:#?}"
    );
    assert_ne!(attempts[0].by, claimant, "{delivery:#?}");
    // Nothing more is sent later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen_by(&receiver);
    assert_eq!(seen.len(), 2, "sent again after the kill, once: {seen:#?}");
    assert_eq!(seen[0].key, seen[1].key, "with the same idempotency key");
    assert_eq!(seen[1].event, "rollback_required");
    assert!(seen[1].at > seen[0].at);
}
