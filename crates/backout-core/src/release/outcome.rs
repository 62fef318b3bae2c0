//! Where a release stands as a whole (open, rolling back, rolled back, …), replayed with its
//! decisions (`Decisions::rollback`) or read from a closed release's record.

use backout_store::Release;

use super::decide::Decisions;

/// Where a release stands as a whole: watched, rolling back, or how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The window is open and the criteria are watched; no rollback started.
    Open,
    /// A rollback (the procedure or a workaround) runs, or its `verify_after` is measured.
    RollingBack,
    /// The rollback finished and `verify_after` held.
    RolledBack,
    /// The rollback finished but `verify_after` did not hold.
    RollbackUnverified,
    /// The rollback's run failed or was aborted: retry, skip or a workaround are the ways on.
    RollbackFailed,
    /// The window closed early as a success (`success_when`).
    Succeeded,
    /// The window closed (on time or at the point of no return) with no rollback.
    Closed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::RollingBack => "rolling_back",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackUnverified => "rollback_unverified",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Succeeded => "succeeded",
            Outcome::Closed => "closed",
        }
    }

    /// Nothing more happens to the release by itself: it is no longer measured.
    pub fn is_concluded(self) -> bool {
        !matches!(
            self,
            Outcome::Open | Outcome::RollingBack | Outcome::RollbackFailed
        )
    }

    /// The outcome of `release` given its replayed decisions.
    pub fn of(release: &Release, decisions: &Decisions) -> Outcome {
        match decisions.rollback {
            Some(rollback) => rollback,
            None => Outcome::of_record(release),
        }
    }

    /// The outcome a release's record alone tells: exact for a closed release (its close
    /// reason says how it ended); an open one may also be rolling back or have a failed
    /// rollback, which only its journal tells ([`Outcome::of`]).
    pub fn of_record(release: &Release) -> Outcome {
        let reason = release.close_reason.as_deref().unwrap_or_default();
        match release.state {
            backout_store::ReleaseState::Open => Outcome::Open,
            backout_store::ReleaseState::Closed => Outcome::CLOSED_BY_REASON
                .iter()
                .find(|(prefix, _)| reason.starts_with(prefix))
                .map_or(Outcome::Closed, |(_, outcome)| *outcome),
        }
    }

    /// How a closed release's reason begins, by the outcome it tells; any other closed
    /// release is [`Outcome::Closed`]. `verify::conclude_release` closes with "rolled back: …"
    /// / "rollback unverified: …", the watcher with "success…". `/metrics` counts closed
    /// releases by these prefixes in the store.
    pub const CLOSED_BY_REASON: [(&'static str, Outcome); 3] = [
        ("rolled back", Outcome::RolledBack),
        ("rollback unverified", Outcome::RollbackUnverified),
        ("success", Outcome::Succeeded),
    ];

    pub const ALL: [Outcome; 7] = [
        Outcome::Open,
        Outcome::RollingBack,
        Outcome::RolledBack,
        Outcome::RollbackUnverified,
        Outcome::RollbackFailed,
        Outcome::Succeeded,
        Outcome::Closed,
    ];
}
