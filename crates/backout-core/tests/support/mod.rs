//! Helpers shared by the integration tests of backout-core (and, by path, of other crates).

pub mod monitoring;
