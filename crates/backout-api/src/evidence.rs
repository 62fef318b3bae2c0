//! Rehearsal evidence over the API (`backout evidence list --format json`).

use backout_store::StepState;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/evidence?…`: filters, all optional.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EvidenceQuery {
    #[serde(default)]
    pub plan_hash: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    /// Default 100, at most 10 000.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /api/v1/evidence`: newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceList {
    pub evidence: Vec<Evidence>,
}

/// Evidence of one successful rehearsal, bound to the plan's content hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    pub id: String,
    /// The rehearsal run.
    pub run_id: String,
    pub plan_hash: String,
    pub service: String,
    pub environment: String,
    pub actor: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub steps: Vec<StepEvidence>,
    /// Ids of the contingency branches that ran.
    pub contingencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trip: Option<RoundTrip>,
    pub recorded_at_ms: i64,
    /// `finished_at_ms - started_at_ms` (computed by the server; not part of the record).
    pub took_ms: i64,
}

/// One step of a rehearsal, as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepEvidence {
    pub step_id: String,
    #[schema(schema_with = crate::names::step_state)]
    pub state: StepState,
    pub attempts: u32,
    pub duration_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contingency: Option<String>,
}

/// A round trip: forward, backout, forward again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundTrip {
    pub command: String,
    pub first: ForwardRun,
    pub second: ForwardRun,
}

/// One run of the forward deployment command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForwardRun {
    pub exit_status: Option<i32>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

impl From<&backout_store::Evidence> for Evidence {
    fn from(e: &backout_store::Evidence) -> Evidence {
        let forward = |f: &backout_store::ForwardRun| ForwardRun {
            exit_status: f.exit_status,
            started_at_ms: f.started_at_ms,
            finished_at_ms: f.finished_at_ms,
        };
        Evidence {
            id: e.id.clone(),
            run_id: e.run_id.clone(),
            plan_hash: e.plan_hash.clone(),
            service: e.service.clone(),
            environment: e.environment.clone(),
            actor: e.actor.clone(),
            started_at_ms: e.started_at_ms,
            finished_at_ms: e.finished_at_ms,
            steps: e
                .steps
                .iter()
                .map(|s| StepEvidence {
                    step_id: s.step_id.clone(),
                    state: s.state,
                    attempts: s.attempts,
                    duration_ms: s.duration_ms,
                    contingency: s.contingency.clone(),
                })
                .collect(),
            contingencies: e.contingencies.clone(),
            round_trip: e.round_trip.as_ref().map(|r| RoundTrip {
                command: r.command.clone(),
                first: forward(&r.first),
                second: forward(&r.second),
            }),
            recorded_at_ms: e.recorded_at_ms,
            took_ms: e.took_ms(),
        }
    }
}

impl From<Evidence> for backout_store::Evidence {
    fn from(e: Evidence) -> backout_store::Evidence {
        let forward = |f: ForwardRun| backout_store::ForwardRun {
            exit_status: f.exit_status,
            started_at_ms: f.started_at_ms,
            finished_at_ms: f.finished_at_ms,
        };
        backout_store::Evidence {
            id: e.id,
            run_id: e.run_id,
            plan_hash: e.plan_hash,
            service: e.service,
            environment: e.environment,
            actor: e.actor,
            started_at_ms: e.started_at_ms,
            finished_at_ms: e.finished_at_ms,
            steps: e
                .steps
                .into_iter()
                .map(|s| backout_store::StepEvidence {
                    step_id: s.step_id,
                    state: s.state,
                    attempts: s.attempts,
                    duration_ms: s.duration_ms,
                    contingency: s.contingency,
                })
                .collect(),
            contingencies: e.contingencies,
            round_trip: e.round_trip.map(|r| backout_store::RoundTrip {
                command: r.command,
                first: forward(r.first),
                second: forward(r.second),
            }),
            recorded_at_ms: e.recorded_at_ms,
        }
    }
}
