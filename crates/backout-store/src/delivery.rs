//! The notification outbox: deliveries of a lifecycle event to the plan's channels.
//!
//! A delivery is written in the same transaction as the journal event it announces (given with
//! the event as [`NewDelivery`]s, see [`crate::NewEvent::deliveries`]), so a crash can never
//! lose a notification whose event was committed, nor announce one that was not. A dispatcher
//! then claims due deliveries for a while (a lease, so two processes on one store do not send
//! the same delivery at once, and a crashed one's claims expire), sends them, and records every
//! attempt with what comes next: a retry at some time, delivered, or given up.
//!
//! The store only keeps these rows; it neither sends anything nor decides the backoff.

use serde::{Deserialize, Serialize};

text_enum! {
    /// The kind of channel a delivery goes to (the plan's `communication.channels.<name>`).
    pub enum DeliveryKind ("channel kind") {
        Webhook = "webhook",
        Slack = "slack",
        Email = "email",
        Command = "command",
    }
}

text_enum! {
    /// Where a delivery stands.
    pub enum DeliveryState ("delivery state") {
        /// Not delivered yet: due at `next_attempt_at_ms`.
        Pending = "pending",
        Delivered = "delivered",
        /// Given up: a failure retrying cannot fix, or too many attempts, or too old.
        Failed = "failed",
    }
}

text_enum! {
    /// How one attempt ended.
    pub enum AttemptOutcome ("attempt outcome") {
        Delivered = "delivered",
        /// Failed; another attempt is scheduled.
        Retry = "retry",
        /// Failed, and no attempt follows.
        GaveUp = "gave_up",
    }
}

/// A delivery to write with its event: one channel of the plan, for one lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDelivery {
    /// The plan's channel name (`communication.channels.<name>`).
    pub channel: String,
    pub kind: DeliveryKind,
    /// The lifecycle event it announces, e.g. `rollback_required` (or `message` for the text
    /// of a `notify` step).
    pub notify_event: String,
}

impl NewDelivery {
    pub fn new(
        channel: impl Into<String>,
        kind: DeliveryKind,
        notify_event: impl Into<String>,
    ) -> NewDelivery {
        NewDelivery {
            channel: channel.into(),
            kind,
            notify_event: notify_event.into(),
        }
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub at_ms: i64,
    pub outcome: AttemptOutcome,
    /// What the receiver said ("HTTP 200", "250 queued as 4F2A") or why it failed.
    pub detail: String,
    /// The claimant (dispatcher) that made it.
    pub by: String,
}

/// An attempt to record; its outcome follows from the [`DeliveryNext`] recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    pub at_ms: i64,
    /// The claimant that made the attempt (as given to [`crate::Store::claim_deliveries`]).
    pub by: String,
    pub detail: String,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    /// It failed; try again at `at_ms`.
    Retry {
        at_ms: i64,
    },
    Delivered,
    /// It failed and will not be tried again.
    GaveUp,
}

impl DeliveryNext {
    pub fn outcome(self) -> AttemptOutcome {
        match self {
            DeliveryNext::Retry { .. } => AttemptOutcome::Retry,
            DeliveryNext::Delivered => AttemptOutcome::Delivered,
            DeliveryNext::GaveUp => AttemptOutcome::GaveUp,
        }
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Assigned by the store, increasing in the order deliveries were written.
    pub id: u64,
    /// The journal event it announces.
    pub event_seq: u64,
    /// The event's release, or the release of the event's run.
    pub release_id: Option<String>,
    pub run_id: Option<String>,
    pub channel: String,
    pub kind: DeliveryKind,
    pub notify_event: String,
    pub state: DeliveryState,
    /// The event's time.
    pub created_at_ms: i64,
    /// When it is due; `None` once delivered or given up.
    pub next_attempt_at_ms: Option<i64>,
    /// Who claimed it last and until when (an expired claim is no claim).
    pub claimed_by: Option<String>,
    pub claimed_until_ms: Option<i64>,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    /// The detail of the latest failed attempt that counted (see [`Delivery::apply`]).
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

impl Delivery {
    /// Applies an attempt the way every backend must:
    /// - the attempt is always appended (every attempt is on record, duplicates included);
    /// - `Delivered` always wins: a delivery that got through is delivered, whoever sent it;
    /// - a retry or a give-up changes a pending delivery only when `attempt.by` still holds its
    ///   claim (or nobody does): after a claim expired and another dispatcher took it over, the
    ///   late one's failure must not reschedule or fail what the other is handling.
    pub fn apply(&mut self, attempt: &NewAttempt, next: DeliveryNext) {
        let claim_is_theirs = self
            .claimed_by
            .as_deref()
            .is_none_or(|holder| holder == attempt.by);
        self.attempts.push(DeliveryAttempt {
            at_ms: attempt.at_ms,
            outcome: next.outcome(),
            detail: attempt.detail.clone(),
            by: attempt.by.clone(),
        });
        self.updated_at_ms = attempt.at_ms;
        match next {
            DeliveryNext::Delivered => {
                if self.state != DeliveryState::Delivered {
                    self.state = DeliveryState::Delivered;
                    self.delivered_at_ms = Some(attempt.at_ms);
                }
                self.next_attempt_at_ms = None;
                self.claimed_by = None;
                self.claimed_until_ms = None;
            }
            _ if self.state != DeliveryState::Pending || !claim_is_theirs => {}
            DeliveryNext::Retry { at_ms } => {
                self.last_error = Some(attempt.detail.clone());
                self.next_attempt_at_ms = Some(at_ms);
                self.claimed_by = None;
                self.claimed_until_ms = None;
            }
            DeliveryNext::GaveUp => {
                self.last_error = Some(attempt.detail.clone());
                self.state = DeliveryState::Failed;
                self.next_attempt_at_ms = None;
                self.claimed_by = None;
                self.claimed_until_ms = None;
            }
        }
    }

    /// Whether a dispatcher may claim it at `now_ms`: pending, due, and not claimed by anyone
    /// whose claim still runs.
    pub fn claimable(&self, now_ms: i64) -> bool {
        self.state == DeliveryState::Pending
            && self.next_attempt_at_ms.is_some_and(|t| t <= now_ms)
            && self.claimed_until_ms.is_none_or(|t| t <= now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Delivery {
        Delivery {
            id: 1,
            event_seq: 7,
            release_id: Some("rel-1".into()),
            run_id: None,
            channel: "ops".into(),
            kind: DeliveryKind::Webhook,
            notify_event: "rollback_required".into(),
            state: DeliveryState::Pending,
            created_at_ms: 100,
            next_attempt_at_ms: Some(100),
            claimed_by: Some("a".into()),
            claimed_until_ms: Some(1_000),
            attempts: Vec::new(),
            last_error: None,
            delivered_at_ms: None,
            updated_at_ms: 100,
        }
    }

    fn attempt(by: &str, at_ms: i64, detail: &str) -> NewAttempt {
        NewAttempt {
            at_ms,
            by: by.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_retry_by_the_claimant_reschedules_and_releases_the_claim() {
        let mut d = pending();
        d.apply(
            &attempt("a", 200, "HTTP 503"),
            DeliveryNext::Retry { at_ms: 1_200 },
        );
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.next_attempt_at_ms, Some(1_200));
        assert_eq!(d.claimed_by, None);
        assert_eq!(d.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(d.attempts[0].outcome, AttemptOutcome::Retry);
        assert!(!d.claimable(1_199));
        assert!(d.claimable(1_200));
    }

    #[test]
    fn a_late_failure_does_not_touch_a_claim_taken_over() {
        let mut d = pending();
        d.claimed_by = Some("b".into());
        d.apply(&attempt("a", 200, "timed out"), DeliveryNext::GaveUp);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.claimed_by.as_deref(), Some("b"));
        assert_eq!(d.attempts.len(), 1, "the attempt is still on record");
        d.apply(&attempt("a", 300, "HTTP 200"), DeliveryNext::Delivered);
        assert_eq!(d.state, DeliveryState::Delivered, "delivered always wins");
        assert_eq!(d.delivered_at_ms, Some(300));
        d.apply(&attempt("b", 400, "HTTP 200"), DeliveryNext::Delivered);
        assert_eq!(d.delivered_at_ms, Some(300), "the first delivery counts");
        assert_eq!(d.attempts.len(), 3);
    }

    #[test]
    fn names_round_trip() {
        for kind in DeliveryKind::ALL {
            assert_eq!(kind.as_str().parse::<DeliveryKind>(), Ok(*kind));
        }
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>(), Ok(*state));
        }
        for outcome in AttemptOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AttemptOutcome>(), Ok(*outcome));
        }
    }
}
