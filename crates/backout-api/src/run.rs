//! Runs over the API: a run and its steps, what people do to them (confirm, resolve, skip,
//! retry, abort), and the messages of a run's live event stream.

use std::collections::BTreeMap;

use backout_store::{RunKind, RunState, StepState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::record::ExecutorInfo;

/// A run, without its plan text ([`RunWithSteps::plan_source`] carries it beside the run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Run {
    /// `run-…`
    pub id: String,
    pub plan_hash: String,
    #[schema(schema_with = crate::names::run_kind)]
    pub kind: RunKind,
    pub release_id: Option<String>,
    pub environment: String,
    pub actor: String,
    #[schema(schema_with = crate::names::run_state)]
    pub state: RunState,
    /// The checkpoints of the release when the run started.
    pub checkpoints: Vec<String>,
    pub executor: Option<ExecutorInfo>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl From<&backout_store::Run> for Run {
    fn from(r: &backout_store::Run) -> Run {
        Run {
            id: r.id.clone(),
            plan_hash: r.plan_hash.clone(),
            kind: r.kind,
            release_id: r.release_id.clone(),
            environment: r.environment.clone(),
            actor: r.actor.clone(),
            state: r.state,
            checkpoints: r.checkpoints.clone(),
            executor: r.executor.as_ref().map(|e| ExecutorInfo {
                pid: e.pid,
                hostname: e.hostname.clone(),
            }),
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

impl Run {
    /// The store's record, with the plan text the API gives beside the run.
    pub fn into_record(self, plan_source: String) -> backout_store::Run {
        backout_store::Run {
            id: self.id,
            plan_hash: self.plan_hash,
            plan_source,
            kind: self.kind,
            release_id: self.release_id,
            environment: self.environment,
            actor: self.actor,
            state: self.state,
            checkpoints: self.checkpoints,
            executor: self.executor.map(|e| backout_store::ExecutorInfo {
                pid: e.pid,
                hostname: e.hostname,
            }),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            finished_at_ms: self.finished_at_ms,
        }
    }
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub run_id: String,
    pub step_id: String,
    #[schema(schema_with = crate::names::step_state)]
    pub state: StepState,
    /// 0 before the first start, then 1, 2, … for each (re)try.
    pub attempt: u32,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub exit_status: Option<i32>,
    /// Process group of the running attempt.
    pub pgid: Option<i32>,
    /// A skip reason, who confirmed a manual step, how an in-doubt step was resolved.
    pub note: Option<String>,
    /// Named values captured from stdout (`outputs:` in the plan).
    pub outputs: BTreeMap<String, String>,
    /// Captured output, capped and redacted.
    pub stdout: String,
    pub stderr: String,
    pub updated_at_ms: i64,
}

impl From<&backout_store::StepRecord> for Step {
    fn from(s: &backout_store::StepRecord) -> Step {
        Step {
            run_id: s.run_id.clone(),
            step_id: s.step_id.clone(),
            state: s.state,
            attempt: s.attempt,
            started_at_ms: s.started_at_ms,
            finished_at_ms: s.finished_at_ms,
            exit_status: s.exit_status,
            pgid: s.pgid,
            note: s.note.clone(),
            outputs: s.outputs.clone(),
            stdout: s.stdout.clone(),
            stderr: s.stderr.clone(),
            updated_at_ms: s.updated_at_ms,
        }
    }
}

impl From<Step> for backout_store::StepRecord {
    fn from(s: Step) -> backout_store::StepRecord {
        backout_store::StepRecord {
            run_id: s.run_id,
            step_id: s.step_id,
            state: s.state,
            attempt: s.attempt,
            started_at_ms: s.started_at_ms,
            finished_at_ms: s.finished_at_ms,
            exit_status: s.exit_status,
            pgid: s.pgid,
            note: s.note,
            outputs: s.outputs,
            stdout: s.stdout,
            stderr: s.stderr,
            updated_at_ms: s.updated_at_ms,
        }
    }
}

/// `GET /api/v1/runs/{id}` and the step and run operations: the run and its steps, as
/// `backout status RUN --format json`, with the plan text beside the run (a client prints each
/// step's `expected` from it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunWithSteps {
    pub run: Run,
    pub steps: Vec<Step>,
    pub plan_source: String,
    /// A running run whose executor stopped heartbeating: since when, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_gone: Option<String>,
}

/// `POST …/steps/{step}/confirm` (the body may be left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How an in-doubt step is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolveOutcome {
    /// It took effect.
    Done,
    Failed,
    /// Run it again.
    Retry,
}

/// `POST …/steps/{step}/resolve`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub outcome: ResolveOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /api/v1/runs/{id}/abort` (the body may be left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// Default: "no reason given".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/runs/{id}/retry` (the body may be left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The steps to retry (default: every failed one).
    #[serde(default)]
    pub steps: Vec<String>,
}

/// `POST …/steps/{step}/skip`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipRequest {
    pub reason: String,
}

/// The data of a `journal` message of a run's event stream (its SSE id is `seq`): one event of
/// the hash-chained journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JournalEvent {
    pub seq: u64,
    pub at_ms: i64,
    /// `run_started`, `step_succeeded`, …
    pub kind: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub release_id: Option<String>,
    pub actor: String,
    /// What the kind of event records.
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The data of the `end` message: the run ended in this state; the stream closes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamEnd {
    pub run_id: String,
    #[schema(schema_with = crate::names::run_state)]
    pub state: RunState,
}

/// The data of a `resync` message: the client fell behind; what it missed follows from the
/// store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamResync {
    /// `lagged`
    pub reason: String,
    pub skipped: u64,
    /// The last `seq` sent before.
    pub after: u64,
}

impl From<&backout_store::Event> for JournalEvent {
    fn from(e: &backout_store::Event) -> JournalEvent {
        JournalEvent {
            seq: e.seq,
            at_ms: e.at_ms,
            kind: e.kind.clone(),
            run_id: e.run_id.clone(),
            step_id: e.step_id.clone(),
            release_id: e.release_id.clone(),
            actor: e.actor.clone(),
            payload: e.payload.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}
