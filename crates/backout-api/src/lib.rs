//! The HTTP API of `backout serve`, as types: every request body, query and JSON answer. The
//! server's handlers answer with them (`axum::Json<T>`), its `/openapi.json` is generated from
//! them ([`ToSchema`](utoipa::ToSchema)), and the remote CLI (`BACKOUT_SERVER`) decodes the same
//! types, so the three cannot drift apart.
//!
//! The types are plain data transfer objects: no I/O, no axum, no store access. Records of the
//! store appear without what the API leaves out (a release's and a run's plan text); the
//! conversions from and back to the store's records live here ([`record`]), those of the core's
//! verdicts in the server and the CLI (this crate does not depend on `backout-core`).
//!
//! Field names and values are the API's contract: the web UI, the CLI and scripts rely on them.
//! Where today's answers are irregular (an `audit/verify` answer has other fields when the chain
//! is broken; `GET /api/v1/releases` and `GET /api/v1/releases/{id}` differ in what they add to
//! the release), the types keep them as they are and say so.

mod names;

pub mod audit;
pub mod error;
pub mod evidence;
pub mod plan;
pub mod record;
pub mod release;
pub mod run;

pub use audit::{AuditHead, AuditVerify, Health, Me};
pub use error::{ErrorBody, ErrorDetail};
pub use evidence::{Evidence, EvidenceList, EvidenceQuery, ForwardRun, RoundTrip, StepEvidence};
pub use plan::{
    AcceptRequest, Accepted, LintAnswer, LocatedDiagnostic, PlanQuery, PlanRequest,
    RegisterRequest, Registered, Severity,
};
pub use record::{Checkpoint, Delivery, DeliveryAttempt, DeliveryList, ExecutorInfo, Release};
pub use release::{
    CheckReport, CheckpointRequest, CriterionReport, CriterionState, CriterionStatus, Decision,
    DecisionChoice, DecisionRequest, ExecuteRequest, Executed, ListQuery, PlanCheckpoints,
    ReleaseList, ReleaseOutcome, ReleaseStatus, ReleaseSummary, RollbackRequest, StartRelease,
    Verdict,
};
pub use run::{
    AbortRequest, JournalEvent, NoteRequest, ResolveOutcome, ResolveRequest, RetryRequest, Run,
    RunWithSteps, SkipRequest, Step, StreamEnd, StreamResync,
};
