//! [`Counts`]: how many records there are by state, counted by the store's own queries (never
//! by reading the records), so what `/metrics` costs does not grow with the records' size.

use std::collections::BTreeMap;

/// Runs, deliveries and releases by state, and closed releases by how their close reason
/// begins (the caller's prefixes: the store does not interpret reasons).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Runs by state name (`running`, `succeeded`, …); states with none are absent.
    pub runs: BTreeMap<String, u64>,
    /// Deliveries by state name (`pending`, `delivered`, `failed`); states with none are absent.
    pub deliveries: BTreeMap<String, u64>,
    /// Releases whose window is recorded open.
    pub open_releases: u64,
    /// Releases recorded closed, whatever their reason.
    pub closed_releases: u64,
    /// For each prefix given to [`crate::Store::counts`], in order: the closed releases whose
    /// close reason starts with it.
    pub closed_by_reason: Vec<u64>,
}
