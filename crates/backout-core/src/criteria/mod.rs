//! Rollback criteria: turning what a source observed into a criterion's state, and the states of
//! all criteria into the release verdict. Pure functions over values (measurements in, state out);
//! the sources that observe and the watcher that schedules them are separate edges.
//! `backtest` replays the same evaluation over a criterion's history.

pub mod backtest;
pub mod evaluate;
pub mod sources;
pub mod suggest;

pub use evaluate::{
    CriterionState, CriterionStatus, Measured, Observation, Series, Verdict, classify, verdict,
};

#[cfg(test)]
mod baseline_tests;
