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
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, stopping: watch::Receiver<bool>) -> AppState {
        AppState {
            rollbacks: Rollbacks::new(store.clone()),
            hub: Hub::new(store.clone(), stopping.clone()),
            store,
            verdicts: Arc::new(Mutex::new(HashMap::new())),
            stopping,
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
