//! The operations of `backout` over small traits, with no HTTP and no SQL: evaluating rollback
//! criteria (`criteria`, pure), executing a plan's procedure as a crash-safe DAG (`executor`),
//! the step runners it uses (`runner`), rehearsals, their evidence and the dry run
//! (`rehearsal`), processes (`process`), `${VAR}` resolution and redaction (`env`), and time
//! (`clock`).

pub mod audit;
pub mod clock;
pub mod criteria;
pub mod drill;
pub mod env;
pub mod errors;
pub mod executor;
pub mod notify;
pub mod process;
pub mod rehearsal;
pub mod release;
pub mod runner;
pub mod time;

pub use errors::ExecError;
pub use executor::{Executor, Progress, ProgressEvent, RunOptions, RunSummary, StepTarget};
