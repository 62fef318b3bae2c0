//! One step's life: a timeout kills it (and what it started), SIGKILL follows an ignored
//! SIGTERM, progress can be read as JSON, a failing step is retried, a failing verify fails it,
//! and a step can wait for (or verify by) a criterion.

use std::time::{Duration, Instant};

use crate::support::{Sandbox, processes_of_run_after};

#[test]
fn a_timeout_kills_the_step_and_everything_it_started() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: hang
      run: "sleep 1000 & sleep 1000"
      timeout: 1s
"#,
    );
    let started = Instant::now();
    sandbox.break_glass(&plan).run().code(6);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM should end the step well before the kill grace: {took:?}"
    );
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    assert_eq!(status.state("hang"), "failed");
    let note = status.note("hang");
    assert!(note.contains("timed out"), "{note:?}");
    let left = processes_of_run_after(&run, Duration::from_millis(500));
    assert!(
        left.is_empty(),
        "processes of run {run} survived the timeout: {left:#?}"
    );
}

#[test]
fn a_step_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: stubborn
      run: "trap '' TERM; sleep 1000 & sleep 1000"
      timeout: 1s
"#,
    );
    let started = Instant::now();
    sandbox.break_glass(&plan).run().code(6);
    let took = started.elapsed();
    // 1 s timeout + 5 s grace, then SIGKILL.
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(12)).contains(&took),
        "SIGKILL should follow SIGTERM after the grace period: {took:?}"
    );
    let run = sandbox.only_run();
    assert_eq!(sandbox.status(&run).state("stubborn"), "failed");
    let left = processes_of_run_after(&run, Duration::from_millis(500));
    assert!(left.is_empty(), "processes survived SIGKILL: {left:#?}");
}

#[test]
fn json_progress_prints_one_event_per_line() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: one
      run: "true"
    - id: two
      needs: [one]
      run: "true"
"#,
    );
    let events = sandbox
        .break_glass(&plan)
        .args(["--format", "json"])
        .run()
        .code(0)
        .json_lines();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "step_started",
            "step_finished",
            "step_started",
            "step_finished",
            "run_finished"
        ]
    );
    let run = sandbox.only_run();
    assert_eq!(events[0]["run_id"], run.as_str());
    assert_eq!(events[5]["state"], "succeeded");
}

#[test]
fn a_failing_step_is_retried_and_its_attempts_are_recorded() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: flaky
      run: 'n=$(cat "${WORK}/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${WORK}/count"; echo "attempt $BACKOUT_ATTEMPT" >> "${WORK}/attempts"; test $n -ge 3'
      retries: 3
      retry_delay: 0s
"#,
    );
    sandbox.break_glass(&plan).run().code(0);
    assert_eq!(
        sandbox.read("count").trim(),
        "3",
        "fails twice, succeeds on the third"
    );
    assert_eq!(
        sandbox.read("attempts"),
        "attempt 1\nattempt 2\nattempt 3\n"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("flaky"), "succeeded");
    assert_eq!(status.attempt("flaky"), 3);
}

#[test]
fn a_failing_verify_fails_the_step() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: change
      run: 'touch "${WORK}/changed"'
      verify: { command: "false" }
    - id: after
      needs: [change]
      run: 'touch "${WORK}/after"'
"#,
    );
    sandbox.break_glass(&plan).run().code(6);
    assert!(sandbox.exists("changed"), "the step itself ran");
    assert!(
        !sandbox.exists("after"),
        "a dependant of an unverified step ran"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("change"), "failed");
    let note = status.note("change");
    assert!(
        note.contains("verify"),
        "the note should say the verify failed: {note:?}"
    );
    assert_eq!(status.run_state(), "failed");
}

/// The `note` of `step` in the only run of `sandbox`.
fn note_of(sandbox: &Sandbox, step: &str) -> String {
    let status = sandbox.status(&sandbox.only_run());
    let record = status.step(step);
    record["note"]
        .as_str()
        .unwrap_or_else(|| panic!("no note: {record}"))
        .to_string()
}

/// `wait: { until }` measures the criterion at its cadence until it passes (or times out), and
/// `verify: { criterion }` measures it once; a failing verify fails the step.
#[test]
fn steps_wait_for_and_verify_by_criteria() {
    let sandbox = Sandbox::new();
    let body = r#"criteria:
  rollback_when:
    - { id: ready, command: "test -f \"${WORK}/ready\"", every: 100ms }
procedure:
  steps:
    - { id: make-ready, run: "sleep 0.3; touch \"${WORK}/ready\"" }
    - { id: settle, wait: { until: ready, timeout: 5s } }
    - { id: checked, needs: [settle], run: "true", verify: { criterion: ready } }
"#;
    let plan = sandbox.plan("plan.yaml", body);
    // The wait ends when the criterion passes.
    sandbox.break_glass(&plan).run().code(0);
    let settle = note_of(&sandbox, "settle");
    assert!(settle.starts_with("ready passes after"), "{settle}");

    let sandbox = Sandbox::new();
    let body = r#"criteria:
  rollback_when:
    - { id: ready, command: "test -f \"${WORK}/ready\"", every: 100ms }
procedure:
  steps:
    - { id: settle, wait: { until: ready, timeout: 400ms } }
    - { id: checked, run: "true", verify: { criterion: ready } }
"#;
    let plan = sandbox.plan("plan.yaml", body);
    // Never ready.
    sandbox.break_glass(&plan).run().code(6);
    let settle = note_of(&sandbox, "settle");
    assert!(
        settle.starts_with("timed out waiting until ready passes"),
        "{settle}"
    );
    let checked = note_of(&sandbox, "checked");
    assert!(
        checked.contains("verify failed: ready does not pass"),
        "{checked}"
    );
}
