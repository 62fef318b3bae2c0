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

/// The `GROUP BY state` count queries every backend runs (plain SQL both dialects read), in
/// the order [`Counts::tally`] takes their rows: runs, deliveries, releases.
pub const STATE_QUERIES: [&str; 3] = [
    "SELECT state, COUNT(*) FROM runs GROUP BY state",
    "SELECT state, COUNT(*) FROM deliveries GROUP BY state",
    "SELECT state, COUNT(*) FROM releases GROUP BY state",
];

impl Counts {
    /// The counts from the rows of [`STATE_QUERIES`], in their order; `closed_by_reason` is
    /// left for the backend's dialect-specific prefix counts.
    pub fn tally(groups: [Vec<(String, i64)>; 3]) -> Counts {
        let [runs, deliveries, releases] = groups;
        let mut counts = Counts::default();
        counts
            .runs
            .extend(runs.into_iter().map(|(s, n)| (s, n.unsigned_abs())));
        counts
            .deliveries
            .extend(deliveries.into_iter().map(|(s, n)| (s, n.unsigned_abs())));
        for (state, n) in releases {
            match state.as_str() {
                "open" => counts.open_releases = n.unsigned_abs(),
                _ => counts.closed_releases += n.unsigned_abs(),
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_folds_states_and_splits_releases_into_open_and_closed() {
        let counts = Counts::tally([
            vec![("running".into(), 2), ("failed".into(), 1)],
            vec![("pending".into(), 3)],
            vec![("open".into(), 4), ("closed".into(), 5)],
        ]);
        assert_eq!(counts.runs.get("running"), Some(&2));
        assert_eq!(counts.runs.get("failed"), Some(&1));
        assert_eq!(counts.deliveries.get("pending"), Some(&3));
        assert_eq!((counts.open_releases, counts.closed_releases), (4, 5));
        assert!(counts.closed_by_reason.is_empty());
    }
}
