//! Rehearsal evidence: the record that one run of a plan, in a test environment, succeeded. It is
//! bound to the plan's canonical content hash (any change to the plan needs a new rehearsal) and
//! keeps what the rehearsal measured: each step's duration and attempts, and which contingency
//! branches ran. Evidence is written once, with its journal event, and never changed.

use serde::{Deserialize, Serialize};

use crate::step::StepState;

/// One step of a rehearsal, as measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvidence {
    pub step_id: String,
    pub state: StepState,
    /// How many times it was started (0 for a skipped step).
    pub attempts: u32,
    /// From start to finish (a manual step: from waiting to its confirmation).
    pub duration_ms: Option<i64>,
    /// The contingency branch the step belongs to, when it is not a procedure step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contingency: Option<String>,
}

/// One run of the forward deployment command of a round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRun {
    pub exit_status: Option<i32>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// A round trip (forward, backout, forward again): each leg succeeded, or there is no evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundTrip {
    /// The forward deployment command as given (`sh -c`).
    pub command: String,
    pub first: ForwardRun,
    pub second: ForwardRun,
}

/// Evidence of a successful rehearsal. The caller chooses the id ([`crate::new_evidence_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub id: String,
    /// The rehearsal run (a run has at most one piece of evidence).
    pub run_id: String,
    /// Canonical content hash of the plan that was rehearsed.
    pub plan_hash: String,
    pub service: String,
    pub environment: String,
    /// Who ran the rehearsal.
    pub actor: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Every step the run recorded, procedure first, in the order recorded.
    pub steps: Vec<StepEvidence>,
    /// Ids of the contingency branches that ran.
    pub contingencies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_trip: Option<RoundTrip>,
    pub recorded_at_ms: i64,
}

impl Evidence {
    /// How long the rehearsal took, start to finish.
    pub fn took_ms(&self) -> i64 {
        (self.finished_at_ms - self.started_at_ms).max(0)
    }
}

/// Which evidence to list; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidenceFilter {
    pub plan_hash: Option<String>,
    pub service: Option<String>,
    pub environment: Option<String>,
}

impl EvidenceFilter {
    /// Whether `evidence` passes the filter (backends may filter in SQL; this is the contract).
    pub fn matches(&self, evidence: &Evidence) -> bool {
        self.plan_hash
            .as_ref()
            .is_none_or(|h| *h == evidence.plan_hash)
            && self.service.as_ref().is_none_or(|s| *s == evidence.service)
            && self
                .environment
                .as_ref()
                .is_none_or(|e| *e == evidence.environment)
    }
}
