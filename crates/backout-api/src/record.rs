//! The store's records as the API shows them, and the conversions both ways: a release without
//! its plan text, its checkpoints, who executes a run, the notifications of a release.

use backout_store::{AttemptOutcome, DeliveryKind, DeliveryState, ReleaseState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A release, without the plan text it was started with (`GET /api/v1/releases/{id}/plan`
/// gives that).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    /// `rel-…`
    pub id: String,
    /// Canonical content hash of the plan (SHA-256, hex).
    pub plan_hash: String,
    pub service: String,
    pub version: String,
    pub rollback_to: String,
    pub environment: String,
    /// Who started it.
    pub actor: String,
    #[schema(schema_with = crate::names::release_state)]
    pub state: ReleaseState,
    pub opened_at_ms: i64,
    /// When the rollback window closes, if it closes at a time.
    pub closes_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub close_reason: Option<String>,
    /// The checkpoints reported so far, in order.
    pub checkpoints: Vec<Checkpoint>,
}

/// A checkpoint reported for a release (`backout checkpoint`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Checkpoint {
    pub name: String,
    pub at_ms: i64,
    pub actor: String,
}

impl From<&backout_store::Release> for Release {
    fn from(r: &backout_store::Release) -> Release {
        Release {
            id: r.id.clone(),
            plan_hash: r.plan_hash.clone(),
            service: r.service.clone(),
            version: r.version.clone(),
            rollback_to: r.rollback_to.clone(),
            environment: r.environment.clone(),
            actor: r.actor.clone(),
            state: r.state,
            opened_at_ms: r.opened_at_ms,
            closes_at_ms: r.closes_at_ms,
            closed_at_ms: r.closed_at_ms,
            close_reason: r.close_reason.clone(),
            checkpoints: r
                .checkpoints
                .iter()
                .map(|c| Checkpoint {
                    name: c.name.clone(),
                    at_ms: c.at_ms,
                    actor: c.actor.clone(),
                })
                .collect(),
        }
    }
}

impl Release {
    /// The store's record, with the plan text the API left out (empty when the caller has none:
    /// the CLI's printers do not read it).
    pub fn into_record(self, plan_source: String) -> backout_store::Release {
        backout_store::Release {
            id: self.id,
            plan_hash: self.plan_hash,
            plan_source,
            service: self.service,
            version: self.version,
            rollback_to: self.rollback_to,
            environment: self.environment,
            actor: self.actor,
            state: self.state,
            opened_at_ms: self.opened_at_ms,
            closes_at_ms: self.closes_at_ms,
            closed_at_ms: self.closed_at_ms,
            close_reason: self.close_reason,
            checkpoints: self
                .checkpoints
                .into_iter()
                .map(|c| backout_store::Checkpoint {
                    name: c.name,
                    at_ms: c.at_ms,
                    actor: c.actor,
                })
                .collect(),
        }
    }
}

/// The process executing a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutorInfo {
    pub pid: u32,
    pub hostname: String,
}

/// `GET /api/v1/releases/{id}/deliveries`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

/// One notification of a release or its runs, to one channel of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: u64,
    /// The journal event it announces.
    pub event_seq: u64,
    pub release_id: Option<String>,
    pub run_id: Option<String>,
    /// The plan's channel name.
    pub channel: String,
    #[schema(schema_with = crate::names::delivery_kind)]
    pub kind: DeliveryKind,
    /// The plan's notify event (`rollback_started`, …).
    pub notify_event: String,
    #[schema(schema_with = crate::names::delivery_state)]
    pub state: DeliveryState,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_until_ms: Option<i64>,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// One attempt to deliver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    pub at_ms: i64,
    #[schema(schema_with = crate::names::attempt_outcome)]
    pub outcome: AttemptOutcome,
    pub detail: String,
    /// The server or process that tried.
    pub by: String,
}

impl From<&backout_store::Delivery> for Delivery {
    fn from(d: &backout_store::Delivery) -> Delivery {
        Delivery {
            id: d.id,
            event_seq: d.event_seq,
            release_id: d.release_id.clone(),
            run_id: d.run_id.clone(),
            channel: d.channel.clone(),
            kind: d.kind,
            notify_event: d.notify_event.clone(),
            state: d.state,
            created_at_ms: d.created_at_ms,
            next_attempt_at_ms: d.next_attempt_at_ms,
            claimed_by: d.claimed_by.clone(),
            claimed_until_ms: d.claimed_until_ms,
            attempts: d
                .attempts
                .iter()
                .map(|a| DeliveryAttempt {
                    at_ms: a.at_ms,
                    outcome: a.outcome,
                    detail: a.detail.clone(),
                    by: a.by.clone(),
                })
                .collect(),
            last_error: d.last_error.clone(),
            delivered_at_ms: d.delivered_at_ms,
            updated_at_ms: d.updated_at_ms,
        }
    }
}

impl From<Delivery> for backout_store::Delivery {
    fn from(d: Delivery) -> backout_store::Delivery {
        backout_store::Delivery {
            id: d.id,
            event_seq: d.event_seq,
            release_id: d.release_id,
            run_id: d.run_id,
            channel: d.channel,
            kind: d.kind,
            notify_event: d.notify_event,
            state: d.state,
            created_at_ms: d.created_at_ms,
            next_attempt_at_ms: d.next_attempt_at_ms,
            claimed_by: d.claimed_by,
            claimed_until_ms: d.claimed_until_ms,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| backout_store::DeliveryAttempt {
                    at_ms: a.at_ms,
                    outcome: a.outcome,
                    detail: a.detail,
                    by: a.by,
                })
                .collect(),
            last_error: d.last_error,
            delivered_at_ms: d.delivered_at_ms,
            updated_at_ms: d.updated_at_ms,
        }
    }
}
