//! Single crash scenarios: the executor is SIGKILLed at a chosen moment (mid-step, in a
//! contingency branch, between attempts, while a person is awaited) and `resume` carries on.

use std::time::Duration;

use crate::support::{Sandbox, processes_of_run, processes_of_run_after, wait_until};

/// Starts `backout run` of `plan` (with `extra` arguments) in the background, waits until
/// `ready` holds (`what` names it), kills the executor with SIGKILL there, and returns the run.
fn crash_when(
    sandbox: &Sandbox,
    plan: &std::path::Path,
    extra: &[&str],
    what: &str,
    ready: impl Fn(&Sandbox) -> bool,
) -> String {
    let executor = sandbox.break_glass(plan).args(extra).start();
    wait_until(Duration::from_secs(5), what, || ready(sandbox));
    executor.kill_9();
    sandbox.only_run()
}

#[test]
fn resume_kills_what_the_crashed_executor_left_running() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: migrate
      run: 'touch "${WORK}/migrating"; sleep 600 & sleep 600; touch "${WORK}/migrated"'
    - id: after
      needs: [migrate]
      run: 'touch "${WORK}/after"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the step to start", |s| {
        s.exists("migrating")
    });
    assert_eq!(sandbox.status(&run).state("migrate"), "running");
    let orphans = processes_of_run(&run);
    assert!(
        orphans.len() >= 2,
        "the step's shell and sleeps outlive a killed executor: {orphans:?}"
    );

    // Resume with a non-idempotent step that was running: it asks a person.
    sandbox.backout(&["resume", &run]).code(7);
    let left = processes_of_run_after(&run, Duration::from_millis(500));
    assert!(
        left.is_empty(),
        "resume left the crashed run's processes alive: {left:#?}"
    );
    let status = sandbox.status(&run);
    assert_eq!(status.state("migrate"), "in_doubt");
    let note = status.note("migrate");
    assert!(
        note.contains("backout resolve"),
        "the note should say how to resolve: {note:?}"
    );
    assert!(
        !sandbox.exists("after"),
        "a dependant of an in-doubt step ran"
    );

    // Resolving it runs nothing again (it is done) and lets the dependants go.
    sandbox
        .backout(&[
            "resolve",
            &run,
            "migrate",
            "done",
            "--note",
            "checked by hand",
        ])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert!(sandbox.exists("after") && !sandbox.exists("migrated"));
    assert_eq!(sandbox.status(&run).run_state(), "succeeded");
}

#[test]
fn an_idempotent_step_that_was_running_runs_again_on_resume() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: flip
      idempotent: true
      run: 'echo "attempt $BACKOUT_ATTEMPT" >> "${WORK}/attempts"; test "$BACKOUT_ATTEMPT" -gt 1 || sleep 600'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the step to start", |s| {
        s.exists("attempts")
    });
    sandbox.backout(&["resume", &run]).code(0);
    assert_eq!(sandbox.read("attempts"), "attempt 1\nattempt 2\n");
    let status = sandbox.status(&run);
    assert_eq!(status.state("flip"), "succeeded");
    assert_eq!(status.attempt("flip"), 2);
    assert!(processes_of_run_after(&run, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_crash_inside_a_contingency_branch_resumes_the_branch() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: primary
      run: "exit 1"
      on_failure: contingency.fallback
    - id: next
      needs: [primary]
      run: 'echo next >> "${WORK}/effects.log"'
contingency:
  fallback:
    description: Do it the other way.
    steps:
      - id: other-way
        run: 'echo other-way >> "${WORK}/effects.log"; sleep 600'
      - id: other-way-check
        needs: [other-way]
        run: 'echo other-way-check >> "${WORK}/effects.log"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the branch to start", |s| {
        s.read("effects.log").contains("other-way")
    });

    // Resume with a branch step in doubt.
    sandbox.backout(&["resume", &run]).code(7);
    assert_eq!(sandbox.status(&run).state("other-way"), "in_doubt");
    sandbox
        .backout(&["resolve", &run, "other-way", "done"])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert_eq!(
        sandbox.read("effects.log"),
        "other-way\nother-way-check\nnext\n"
    );
    let status = sandbox.status(&run);
    assert_eq!(status.state("primary"), "failed");
    assert_eq!(status.run_state(), "succeeded");
    assert!(processes_of_run_after(&run, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_crash_between_attempts_keeps_the_remaining_retries() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: flaky
      run: 'n=$(cat "${WORK}/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${WORK}/count"; test $n -ge 2'
      retries: 2
      retry_delay: 3s
"#,
    );
    // The first attempt failed and is recorded (pending, with the retry in its note) while the
    // executor sleeps its retry_delay: it is killed there.
    let run = crash_when(&sandbox, &plan, &[], "the retry to wait", |s| {
        s.run_ids().first().is_some_and(|run| {
            s.status(run).find("flaky").is_some_and(|r| {
                r["state"] == "pending"
                    && r["note"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("attempt 1 failed"))
            })
        })
    });
    assert_eq!(sandbox.read("count").trim(), "1");

    let ran = sandbox.backout(&["resume", &run]);
    let status = sandbox.status(&run);
    // Resume with two retries left.
    ran.code(0);
    assert_eq!(status.state("flaky"), "succeeded", "{:#}", status.0);
    assert_eq!(status.attempt("flaky"), 2);
    assert_eq!(sandbox.read("count").trim(), "2");
}

#[test]
fn a_crash_while_waiting_for_a_person_keeps_the_manual_step_waiting() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: approve
      manual: { by: ops, instructions: "Confirm." }
    - id: after
      needs: [approve]
      run: 'touch "${WORK}/after"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &["--wait"], "approve waiting", |s| {
        s.run_ids()
            .first()
            .is_some_and(|run| s.status(run).state("approve") == "waiting_manual")
    });

    // A manual step is a person's job, not a process: nothing is in doubt after the crash.
    sandbox.backout(&["resume", &run]).code(7);
    assert_eq!(sandbox.status(&run).state("approve"), "waiting_manual");
    sandbox
        .backout(&["--as", "ops@example.com", "confirm", &run, "approve"])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert!(sandbox.exists("after"));
}
