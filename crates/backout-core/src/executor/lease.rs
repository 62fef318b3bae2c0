//! Holding a run's lease while executing it, for executors that share runs with other
//! replicas (`backout serve` on one database): the lease `run:<id>` is taken before the first
//! write, renewed by a heartbeat, and every write of the run carries its fence, so a replica
//! that lost the lease (paused, cut off) can write nothing once another took the run over.

use std::sync::Arc;
use std::time::Duration;

use backout_store::{Fence, Lease, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// How an executor shares runs with other replicas through leases.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// This replica's id (e.g. `host:pid:random`), the owner of the leases it takes.
    pub owner: String,
    /// How long a lease lives without a renewal; the heartbeat renews it every third of this.
    pub ttl: Duration,
}

impl LeaseSettings {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

/// The lease name of a run's execution.
pub fn run_lease_name(run_id: &str) -> String {
    format!("run:{run_id}")
}

/// A run's lease while its executor works on it; the heartbeat stops when this is dropped.
pub(super) struct Held {
    store: Arc<dyn Store>,
    lease: Lease,
    /// Turns `true` when the heartbeat found the lease lost.
    pub lost: watch::Receiver<bool>,
    heartbeat: JoinHandle<()>,
}

impl Held {
    /// Takes `run:<run_id>` and starts its heartbeat; `None` when another replica holds it.
    pub async fn take(
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        settings: &LeaseSettings,
        run_id: &str,
    ) -> Result<Option<Held>, StoreError> {
        let ttl_ms = settings.ttl_ms();
        let name = run_lease_name(run_id);
        // Held by this very owner: another executor of this process works on the run, and
        // taking the lease again would give this one the same token (a renewal).
        let now = clock.now_ms();
        let ours =
            store.leases(&name).await?.into_iter().any(|lease| {
                lease.name == name && lease.owner == settings.owner && lease.is_held(now)
            });
        if ours {
            return Ok(None);
        }
        let Some(lease) = store
            .acquire_lease(&name, &settings.owner, clock.now_ms(), ttl_ms)
            .await?
        else {
            return Ok(None);
        };
        let (lost_send, lost) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(
            store.clone(),
            clock.clone(),
            lease.clone(),
            settings.ttl,
            lost_send,
        ));
        Ok(Some(Held {
            store: store.clone(),
            lease,
            lost,
            heartbeat,
        }))
    }

    pub fn fence(&self) -> Fence {
        self.lease.fence()
    }

    /// Gives the lease up (the run ended or waits for nobody here), so another replica need
    /// not wait for the expiry. A lease that was lost meanwhile is left as it is.
    pub async fn release(self) {
        self.heartbeat.abort();
        // A release that fails leaves the lease to expire on its own: only slower, never unsafe.
        let _ = self.store.release_lease(&self.lease).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Renews `lease` every third of `ttl`. Reports it lost when the store says another replica
/// took it, or when it could not be renewed before its expiry (the store was unreachable:
/// another replica may take it from then on).
async fn heartbeat(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    mut lease: Lease,
    ttl: Duration,
    lost: watch::Sender<bool>,
) {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
    let every = (ttl / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let now = clock.now_ms();
        match store.renew_lease(&lease, now, ttl_ms).await {
            Ok(Some(renewed)) => lease = renewed,
            Ok(None) => {
                lost.send_replace(true);
                return;
            }
            Err(_) if clock.now_ms() >= lease.expires_at_ms => {
                lost.send_replace(true);
                return;
            }
            // Not reached the expiry yet: the next beat tries again.
            Err(_) => {}
        }
    }
}
