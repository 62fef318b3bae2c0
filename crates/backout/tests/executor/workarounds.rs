//! A workaround runs instead of the procedure (an unknown one is refused, naming the known
//! ones), and `report` shows what was expected against what happened, with the timeline.

use crate::support::Sandbox;

const WORKAROUND_PLAN: &str = r#"procedure:
  steps:
    - id: full
      run: 'touch "${WORK}/full"'
workarounds:
  - id: flag-off
    description: Turn the feature flag off.
    steps:
      - id: flip
        run: 'touch "${WORK}/flipped"'
      - id: check-flip
        needs: [flip]
        run: 'test -e "${WORK}/flipped" && touch "${WORK}/checked"'
  - id: drain
    description: Drain the traffic.
    steps:
      - id: drain-it
        run: 'touch "${WORK}/drained"'
"#;

#[test]
fn a_workaround_runs_instead_of_the_procedure() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", WORKAROUND_PLAN);
    sandbox
        .break_glass(&plan)
        .args(["--workaround", "flag-off"])
        .run()
        .code(0);
    assert!(sandbox.exists("flipped") && sandbox.exists("checked"));
    assert!(!sandbox.exists("full"), "the procedure ran too");
    assert!(!sandbox.exists("drained"), "another workaround ran");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.0["run"]["kind"], "workaround");
    let ids: Vec<&str> = status
        .steps()
        .iter()
        .map(|s| s["step_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        ids.contains(&"flip") && ids.contains(&"check-flip"),
        "{ids:?}"
    );
    assert_eq!(status.run_state(), "succeeded");
}

#[test]
fn an_unknown_workaround_is_refused_naming_the_known_ones() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", WORKAROUND_PLAN);
    sandbox
        .break_glass(&plan)
        .args(["--workaround", "reboot"])
        .run()
        .code(5)
        .stderr_has("reboot")
        .stderr_has("flag-off")
        .stderr_has("drain");
    assert!(!sandbox.exists("full") && !sandbox.exists("flipped") && !sandbox.exists("drained"));
}

#[test]
fn report_shows_expected_against_actual_and_the_timeline() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: first
      run: "sleep 0.1"
      expected: 2s
    - id: second
      needs: [first]
      run: "exit 1"
      on_failure: continue
      expected: 1m30s
"#,
    );
    sandbox.break_glass(&plan).run().code(0);
    let run = sandbox.only_run();
    let report = sandbox
        .backout(&["report", &run])
        .code(0)
        .stdout_has(&format!("# Run {run}"))
        .stdout_has("expected vs actual")
        .stdout();
    let row = |step: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {step} |")))
            .unwrap_or_else(|| panic!("no row for {step}:\n{report}"))
            .to_string()
    };
    let first = row("first");
    assert!(
        first.contains("| succeeded | 1 |") && first.contains("| 2s |"),
        "{first}"
    );
    let second = row("second");
    assert!(
        second.contains("| failed | 1 |") && second.contains("| 1m30s |"),
        "{second}"
    );
    let timeline = report
        .split("## Timeline")
        .nth(1)
        .unwrap_or_else(|| panic!("no timeline:\n{report}"));
    let kinds: Vec<&str> = timeline
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    // A run in the release's environment outside a release is break glass, loud in the story.
    let order = [
        "run_started",
        "break_glass",
        "step_started",
        "step_succeeded",
        "step_started",
        "step_failed",
        "run_succeeded",
    ];
    assert_eq!(kinds, order, "timeline:\n{timeline}");
}
