//! The executor end to end: `backout run`, `resume`, `status`, `confirm`, `abort` and `report`
//! driven as processes against a real SQLite file, with steps that leave marker files in the
//! test's directory so their effects (and their timing) can be checked.
//!
//! One file a topic, one story a test: `dag` (what runs when: needs, parallelism, checkpoints,
//! failures and contingency branches, preconditions), `step_life` (one step's timeout, retries,
//! verify and waits), `values` (what reaches a step and what is kept of it), `people` (manual
//! steps, abort), `workarounds` (workarounds and the report).

#[path = "../support/mod.rs"]
mod support;

mod dag;
mod people;
mod step_life;
mod values;
mod workarounds;

/// Nanoseconds (of the `mark` script's clock) as milliseconds, for messages.
fn nanos_to_ms(ns: u128) -> f64 {
    ns as f64 / 1e6
}
