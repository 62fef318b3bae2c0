//! What every handler shares: the store, the background rollbacks, the live tails of runs, the
//! verdicts the watcher last saw, and the shutdown signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use backout_core::criteria::Verdict;
use backout_store::Store;
use tokio::sync::watch;

use crate::events::Hub;
use crate::rollbacks::Rollbacks;

/// Cheap to clone: everything is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub rollbacks: Rollbacks,
    pub hub: Hub,
    /// The verdict of each release the watcher watches, as of its latest round.
    pub verdicts: Arc<Mutex<HashMap<String, Verdict>>>,
    /// Becomes `true` when the server shuts down: live streams end, background work stops.
    pub stopping: watch::Receiver<bool>,
    /// The journal's last `seq` from the store's change feed, when there is one (cached
    /// answers are dropped as soon as it moves: [`crate::cache`]).
    pub journal: Option<watch::Receiver<u64>>,
    /// Releases open only for accepted plans (`serve --require-accepted`).
    pub require_accepted: bool,
    /// Where people open the web UI: notices link its pages (`serve --public-url`).
    pub public_url: Option<String>,
    /// This server speaks TLS itself (`serve --tls-cert/--tls-key`): its cookies are `Secure`.
    pub tls: bool,
}

impl AppState {
    /// `feed` wakes the live tails when the journal grows ([`backout_store::Feed::subscribe`]);
    /// without it they poll the store every 200 ms.
    pub fn new(
        store: Arc<dyn Store>,
        stopping: watch::Receiver<bool>,
        feed: Option<watch::Receiver<u64>>,
    ) -> AppState {
        AppState {
            rollbacks: Rollbacks::new(store.clone()),
            journal: feed.clone(),
            hub: Hub::new(store.clone(), stopping.clone(), feed),
            store,
            verdicts: Arc::new(Mutex::new(HashMap::new())),
            stopping,
            require_accepted: false,
            public_url: None,
            tls: false,
        }
    }

    /// The verdicts by release, as the watcher last saw them.
    pub fn verdicts(&self) -> HashMap<String, Verdict> {
        self.verdicts.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Completes when `stopping` turns true (or its sender is gone).
pub async fn stopped(mut stopping: watch::Receiver<bool>) {
    while !*stopping.borrow_and_update() {
        if stopping.changed().await.is_err() {
            return;
        }
    }
}
