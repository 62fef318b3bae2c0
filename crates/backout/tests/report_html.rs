//! `backout report RUN --format html`: a real run (a step that fails once and is retried, a
//! step that fails into a contingency branch) drawn as a Gantt chart of expected against actual.

mod support;

use support::{Sandbox, assert_code, stdout};

const PLAN: &str = r#"procedure:
  steps:
    - id: drain
      expected: 1s
      run: 'sleep 0.2'
    - id: flaky-switch
      needs: [drain]
      expected: 1s
      run: 'n=$(cat "${WORK}/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${WORK}/count"; sleep 0.1; test $n -ge 2'
      retries: 2
      retry_delay: 0s
    - id: primary-restore
      needs: [drain]
      expected: 2s
      run: 'exit 1'
      on_failure: contingency.fallback
    - id: verify
      needs: [flaky-switch, primary-restore]
      expected: 1s
      run: 'true'
contingency:
  fallback:
    description: Restore from the replica instead.
    steps:
      - id: replica-restore
        expected: 1s
        run: 'sleep 0.3'
expected_duration: 10s
"#;

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn report_html_draws_expected_against_actual_with_retries_contingency_and_critical_path() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", PLAN);
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "the run with a retry and a contingency");
    let run = sandbox.only_run();

    let out = sandbox.run(&["report", &run, "--format", "html"]);
    assert_code(&out, 0, "report --format html");
    let html = stdout(&out);
    if let Ok(dir) = std::env::var("BACKOUT_GANTT_OUT") {
        std::fs::write(format!("{dir}/report.html"), &html).expect("write the page");
    }
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        !html.contains("<script"),
        "the page is self-contained: {html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no remote assets"
    );
    assert_eq!(count(&html, "<svg"), 1, "one chart: {html}");

    // One row per step, each with an expected bar and at least one actual bar.
    for step in [
        "drain",
        "flaky-switch",
        "primary-restore",
        "replica-restore",
        "verify",
    ] {
        let at = html
            .find(&format!(r#"data-step="{step}""#))
            .unwrap_or_else(|| panic!("no row for {step}: {html}"));
        let row = &html[at..at + html[at..].find("</g>").expect("row ends")];
        assert_eq!(count(row, r#"class="expected""#), 1, "{step}: {row}");
        assert!(count(row, r#"class="actual"#) >= 1, "{step}: {row}");
    }
    assert_eq!(count(&html, r#"<g class="row"#), 5, "{html}");

    // The retried step shows two attempts, the first marked as retried.
    let flaky = &html[html
        .find(r#"retried" data-step="flaky-switch""#)
        .expect("flaky row")..];
    let flaky = &flaky[..flaky.find("</g>").expect("row ends")];
    assert_eq!(
        count(flaky, r#"class="actual attempt-retried""#),
        1,
        "{flaky}"
    );
    assert_eq!(count(flaky, r#"class="retry-mark""#), 1, "{flaky}");
    assert!(flaky.contains("2 attempts"), "{flaky}");

    // The contingency step is marked as one, the failed primary as failed.
    assert!(
        html.contains(r#"contingency" data-step="replica-restore""#),
        "{html}"
    );
    assert!(html.contains("contingency fallback"), "{html}");
    assert!(html.contains("failed in "), "{html}");

    // The critical path (drain → primary-restore → verify: 1s + 2s + 1s) is marked, and only it.
    for step in ["drain", "primary-restore", "verify"] {
        assert!(
            html.contains(&format!(r#"class="row critical" data-step="{step}""#)),
            "{step} is not marked critical: {html}"
        );
    }
    assert!(!html.contains(r#"critical retried" data-step="flaky-switch""#));
    assert_eq!(count(&html, r#"class="critical-mark""#), 3, "{html}");
    assert!(html.contains("critical path drain → primary-restore → verify"));
    // The promise is drawn.
    assert!(html.contains(r#"class="limit""#), "{html}");
}

#[test]
fn report_html_is_for_runs_only() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&["report", "rel-nothing", "--format", "html"]);
    assert_code(&out, 2, "html for a release");
    assert!(support::stderr(&out).contains("draws one run"));
}
