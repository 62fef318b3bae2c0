//! The reference plans and every valid fixture lint without errors, and without warnings but
//! the worst case (B039) that checkout and search-flag knowingly carry.

use std::path::Path;

#[test]
fn valid_fixtures_lint_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/plans/valid exists") {
        let path = entry.expect("readable dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("readable fixture");
        let linted = backout_model::lint(&source);
        assert!(
            linted
                .diagnostics
                .iter()
                .all(|d| d.code == backout_model::codes::WORST_OVER_BUDGET),
            "{}: {:#?}",
            path.display(),
            linted.diagnostics
        );
        assert!(linted.plan.is_some(), "{} produced no plan", path.display());
        seen += 1;
    }
    assert!(
        seen >= 3,
        "expected the three reference plans, found {seen}"
    );
}
