//! Crash safety end to end: the executor is killed with SIGKILL at seeded random moments and the
//! run is resumed (and perhaps killed again) until it finishes, with in-doubt steps resolved the
//! way an honest operator would: by looking at what the step actually did.
//!
//! The promise checked (DESIGN.md, "Execution semantics"): a finished step never runs again, a
//! non-idempotent step that was running runs again only when a person says it did not happen,
//! the journal stays consistent, the SQLite file stays sound, and no process of the run outlives
//! it.
//!
//! `trials`: the seeded random kills; `scenarios`: one crash each, at a chosen moment.

#[path = "../support/mod.rs"]
mod support;

mod scenarios;
mod trials;
