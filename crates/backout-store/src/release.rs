//! Release records: one deployment guarded by a plan. A release keeps the plan text and hash it
//! was started with (later edits of the file cannot change what guards it), its window, and the
//! checkpoints the forward deployment reported.

use serde::{Deserialize, Serialize};

text_enum! {
    /// Whether the release's rollback window is open.
    pub enum ReleaseState ("release state") {
        Open = "open",
        /// Closed on time, at the point of no return, or early as a success.
        Closed = "closed",
    }
}

/// A milestone the forward deployment reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub name: String,
    pub at_ms: i64,
    pub actor: String,
}

/// A release to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRelease {
    pub id: String,
    pub plan_hash: String,
    pub plan_source: String,
    pub service: String,
    /// The version deployed (from `start --version`).
    pub version: String,
    pub rollback_to: String,
    pub environment: String,
    pub actor: String,
    /// When the window opened (`opens: deploy`: the deploy time).
    pub opened_at_ms: i64,
    /// When the window closes on time; `None` when the plan has no window.
    pub closes_at_ms: Option<i64>,
}

/// A stored release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub plan_hash: String,
    pub plan_source: String,
    pub service: String,
    pub version: String,
    pub rollback_to: String,
    pub environment: String,
    pub actor: String,
    pub state: ReleaseState,
    pub opened_at_ms: i64,
    pub closes_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub close_reason: Option<String>,
    /// In the order they were reached.
    pub checkpoints: Vec<Checkpoint>,
}

impl Release {
    /// The stored form of a new release.
    pub fn from_new(new: &NewRelease) -> Release {
        Release {
            id: new.id.clone(),
            plan_hash: new.plan_hash.clone(),
            plan_source: new.plan_source.clone(),
            service: new.service.clone(),
            version: new.version.clone(),
            rollback_to: new.rollback_to.clone(),
            environment: new.environment.clone(),
            actor: new.actor.clone(),
            state: ReleaseState::Open,
            opened_at_ms: new.opened_at_ms,
            closes_at_ms: new.closes_at_ms,
            closed_at_ms: None,
            close_reason: None,
            checkpoints: Vec::new(),
        }
    }

    /// Whether the window is closed at `now_ms`: closed explicitly, or past its closing time.
    pub fn window_closed(&self, now_ms: i64) -> bool {
        self.state == ReleaseState::Closed || self.closes_at_ms.is_some_and(|t| now_ms >= t)
    }

    pub fn reached(&self, checkpoint: &str) -> bool {
        self.checkpoints.iter().any(|c| c.name == checkpoint)
    }
}
