//! The plan model of `backout`: plan format v1 from YAML text to a validated [`Plan`], with every
//! problem found reported as a located [`Diagnostic`], plus the rendered document, the JSON Schema
//! and the canonical content hash.
//!
//! This crate does no I/O: callers hand it text and get values back. Later stages (the executor,
//! the watchers, the server) only ever see a validated [`Plan`].

pub mod codes;
pub mod condition;
pub mod convert;
pub mod decode;
pub mod diagnostic;
pub mod duration;
pub mod hash;
pub mod lint;
pub mod plan;
pub mod rehearsal_schedule;
pub mod schedule;
pub mod schema;
pub mod skeleton;
pub mod spec;
pub mod template;
pub mod yaml;

pub use condition::Condition;
pub use diagnostic::{Diagnostic, Severity, Span};
pub use duration::Duration;
pub use lint::{Linted, lint};
pub use plan::Plan;
pub mod render;
