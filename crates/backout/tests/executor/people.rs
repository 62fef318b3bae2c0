//! People in a run: a manual step waits until someone confirms it (from this or another
//! process), `abort` from another process stops a running step and everything it started, and
//! an aborted run stays ended.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, Status, processes_of_run, processes_of_run_after};

const MANUAL_PLAN: &str = r#"procedure:
  steps:
    - id: before
      run: 'touch "${WORK}/before"'
    - id: approve
      needs: [before]
      manual: { by: ops, instructions: "Check the dashboard, then confirm." }
    - id: after
      needs: [approve]
      run: 'touch "${WORK}/after"'
"#;

/// Who may confirm the manual steps of these plans (the `ops` group of `support::plan`).
const OPS: &str = "ops@example.com";

#[test]
fn a_manual_step_waits_until_confirmed_and_resumed() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", MANUAL_PLAN);
    // The run stops at the manual step and shows its instructions.
    sandbox
        .break_glass(&plan)
        .run()
        .code(7)
        .stderr_has("Check the dashboard");
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    assert_eq!(status.state("before"), "succeeded");
    assert_eq!(status.state("approve"), "waiting_manual");
    assert!(
        !sandbox.exists("after"),
        "a dependant of an unconfirmed manual step ran"
    );
    assert_eq!(status.run_state(), "waiting");

    // Resuming before anyone confirmed keeps waiting.
    sandbox.backout(&["resume", &run]).code(7);
    sandbox
        .cli()
        .args(["--as", OPS, "confirm", &run, "approve"])
        .args(["--note", "dashboard is green"])
        .run()
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert!(sandbox.exists("after"));
    let status = sandbox.status(&run);
    assert_eq!(status.state("approve"), "succeeded");
    let note = status.note("approve");
    assert!(note.contains("dashboard is green"), "{note:?}");
    assert_eq!(status.run_state(), "succeeded");
    // A finished step cannot be confirmed again.
    sandbox
        .backout(&["--as", OPS, "confirm", &run, "approve"])
        .code(5);
}

#[test]
fn a_manual_step_confirmed_from_another_process_unblocks_a_waiting_executor() {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: long
      run: '"${WORK}/mark" start; sleep 3; "${WORK}/mark" end'
    - id: approve
      manual: { by: ops, instructions: "Confirm." }
    - id: after
      needs: [approve]
      run: '"${WORK}/mark" start; "${WORK}/mark" end'
"#,
    );
    let executor = sandbox.break_glass(&plan).arg("--wait").start();
    let run = sandbox.wait_for_run(Duration::from_secs(5));
    sandbox.wait_for(
        &run,
        Duration::from_secs(5),
        "approve waiting while long runs",
        |s: &Status| s.state("approve") == "waiting_manual" && s.state("long") == "running",
    );
    // Confirmed from a second process.
    sandbox
        .backout(&["--as", OPS, "confirm", &run, "approve"])
        .code(0);
    // The waiting executor goes on and finishes the run.
    executor.ended(Duration::from_secs(15)).code(0);
    let times = sandbox.intervals();
    assert!(
        times.contains_key("after"),
        "the dependant of the manual step did not run"
    );
    assert!(
        times["after"].1 < times["long"].1,
        "the dependant waited for an unrelated step: {times:?}"
    );
    let status = sandbox.status(&run);
    assert_eq!(status.run_state(), "succeeded");
}

#[test]
fn abort_from_another_process_stops_a_running_step() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: long
      run: 'sleep 600; touch "${WORK}/finished"'
    - id: after
      needs: [long]
      run: 'touch "${WORK}/after"'
"#,
    );
    let executor = sandbox.break_glass(&plan).start();
    let run = sandbox.wait_for_run(Duration::from_secs(5));
    sandbox.wait_for(
        &run,
        Duration::from_secs(5),
        "long running",
        |s: &Status| s.state("long") == "running",
    );
    assert!(
        !processes_of_run(&run).is_empty(),
        "the step's process should be visible while it runs"
    );

    // While it holds the run, nobody else may resume it.
    sandbox
        .backout(&["resume", &run])
        .code(5)
        .stderr_has("being executed by process");

    let aborted_at = Instant::now();
    sandbox
        .backout(&["abort", &run, "--reason", "wrong release"])
        .code(0);
    executor.ended(Duration::from_secs(10)).code(6);
    assert!(
        aborted_at.elapsed() < Duration::from_secs(5),
        "abort took {:?}",
        aborted_at.elapsed()
    );
    let status = sandbox.status(&run);
    assert_eq!(status.run_state(), "aborted");
    assert_eq!(status.state("long"), "aborted");
    assert!(!sandbox.exists("finished") && !sandbox.exists("after"));
    let left = processes_of_run_after(&run, Duration::from_millis(500));
    assert!(
        left.is_empty(),
        "processes of the aborted run survived: {left:#?}"
    );
}

#[test]
fn an_aborted_waiting_run_stays_ended() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", MANUAL_PLAN);
    sandbox.break_glass(&plan).run().code(7);
    let run = sandbox.only_run();
    sandbox
        .backout(&["abort", &run, "--reason", "not needed"])
        .code(0);
    assert_eq!(sandbox.status(&run).run_state(), "aborted");
    sandbox.backout(&["status", &run]).code(6);
    sandbox
        .backout(&["resume", &run])
        .code(5)
        .stderr_has("already ended");
    sandbox
        .backout(&["--as", OPS, "confirm", &run, "approve"])
        .code(5);
    assert!(!sandbox.exists("after"));
}
