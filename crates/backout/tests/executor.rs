//! The executor end to end: `backout run`, `resume`, `status`, `confirm`, `abort` and `report`
//! driven as processes against a real SQLite file, with steps that leave marker files in the
//! test's directory so their effects (and their timing) can be checked.

mod support;

use std::time::{Duration, Instant};

use support::{
    Background, Sandbox, Status, assert_code, processes_of_run, processes_of_run_after, stderr,
    stdout,
};

fn nanos_to_ms(ns: u128) -> f64 {
    ns as f64 / 1e6
}

// ---------------------------------------------------------------- scheduling

#[test]
fn steps_start_only_after_their_needs_are_done() {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let step = |id: &str, needs: &str, sleep: &str| {
        format!(
            "    - id: {id}\n      needs: [{needs}]\n      run: '\"${{WORK}}/mark\" start; sleep {sleep}; \"${{WORK}}/mark\" end'\n"
        )
    };
    let body = format!(
        "procedure:\n  steps:\n{}{}{}{}{}",
        step("a", "", "0.1"),
        step("b", "a", "0.3"),
        step("c", "a", "0.1"),
        step("d", "b, c", "0.1"),
        step("e", "d", "0.05"),
    );
    let plan = sandbox.plan("plan.yaml", &body);
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");

    let times = sandbox.intervals();
    let edges = [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("e", "d")];
    for (step, need) in edges {
        let (start, _) = times[step];
        let (_, end) = times[need];
        assert!(
            start >= end,
            "{step} started {:.1} ms before its need {need} ended",
            nanos_to_ms(end - start)
        );
    }
    // Siblings whose needs are done run side by side: c starts and ends while b sleeps.
    assert!(
        times["c"].0 < times["b"].1 && times["b"].0 < times["c"].1,
        "b and c did not overlap: {times:?}"
    );

    // The journal agrees with the markers.
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    for (step, need) in edges {
        assert!(
            status.ms(step, "started_at_ms") >= status.ms(need, "finished_at_ms"),
            "journal: {step} started before {need} finished"
        );
    }
    assert_eq!(status.run_state(), "succeeded");
}

#[test]
fn max_parallel_bounds_how_many_steps_run_at_once() {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let mut body = String::from("procedure:\n  max_parallel: 2\n  steps:\n");
    for i in 1..=6 {
        body.push_str(&format!(
            "    - id: s{i}\n      run: '\"${{WORK}}/mark\" start; sleep 0.3; \"${{WORK}}/mark\" end'\n"
        ));
    }
    let plan = sandbox.plan("plan.yaml", &body);
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");

    let times = sandbox.intervals();
    assert_eq!(times.len(), 6, "{times:?}");
    let mut edges: Vec<(u128, i32)> = times
        .values()
        .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
        .collect();
    // An end at the same instant as a start counts first: the slot was free.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in &edges {
        now += delta;
        most = most.max(now);
    }
    assert_eq!(
        most, 2,
        "at most 2 steps may overlap, and 2 should: {times:?}"
    );
    let first = times.values().map(|t| t.0).min().expect("a start");
    let last = times.values().map(|t| t.1).max().expect("an end");
    let span = nanos_to_ms(last - first);
    // Three waves of 0.3 s: about 0.9 s; one at a time would be 1.8 s.
    assert!(
        (850.0..1500.0).contains(&span),
        "6 × 0.3 s two at a time took {span:.0} ms"
    );
}

#[test]
fn when_checkpoint_steps_are_skipped_unless_the_checkpoint_was_reached() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: always
      run: 'touch "${WORK}/always"'
    - id: undo-contract
      needs: [always]
      when_checkpoint: contract
      run: 'touch "${WORK}/undone"'
"#,
    );
    let plan = plan.to_str().expect("utf-8 path");

    let out = sandbox.run(&["run", "--break-glass", "--reason", "test", plan]);
    assert_code(&out, 0, "run without the checkpoint");
    assert!(sandbox.exists("always"));
    assert!(
        !sandbox.exists("undone"),
        "a step of an unreached checkpoint ran"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("undo-contract"), "skipped");
    let note = status.step("undo-contract")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.contains("contract"),
        "the skip note should name the checkpoint: {note:?}"
    );
    assert_eq!(status.run_state(), "succeeded");

    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan,
        "--checkpoint",
        "contract",
    ]);
    assert_code(&out, 0, "run with the checkpoint");
    assert!(
        sandbox.exists("undone"),
        "the step of a reached checkpoint did not run"
    );
    let newest = sandbox.run_ids()[0].clone();
    assert_eq!(sandbox.status(&newest).state("undo-contract"), "succeeded");

    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan,
        "--checkpoint",
        "nonexistent",
    ]);
    assert_code(&out, 2, "run with an undeclared checkpoint");
    assert!(
        stderr(&out).contains("expand, contract"),
        "should name the declared checkpoints: {}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------- one step's life

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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    let took = started.elapsed();
    assert_code(&out, 6, "run with a timed-out step");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM should end the step well before the kill grace: {took:?}"
    );
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    assert_eq!(status.state("hang"), "failed");
    let note = status.step("hang")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    let took = started.elapsed();
    assert_code(&out, 6, "run with a step that ignores SIGTERM");
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    assert_code(&out, 0, "run --format json");
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 6, "run with a failing verify");
    assert!(sandbox.exists("changed"), "the step itself ran");
    assert!(
        !sandbox.exists("after"),
        "a dependant of an unverified step ran"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("change"), "failed");
    let note = status.step("change")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.contains("verify"),
        "the note should say the verify failed: {note:?}"
    );
    assert_eq!(status.run_state(), "failed");
}

// ---------------------------------------------------------------- on_failure

#[test]
fn on_failure_halt_stops_the_dependants_and_fails_the_run() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: broken
      run: "exit 3"
      on_failure: halt
    - id: next
      needs: [broken]
      run: 'touch "${WORK}/next"'
    - id: later
      needs: [next]
      run: 'touch "${WORK}/later"'
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 6, "run with a halting failure");
    assert!(
        !sandbox.exists("next") && !sandbox.exists("later"),
        "dependants of a halted step ran"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("broken"), "failed");
    assert_eq!(status.step("broken")["exit_status"], 3);
    assert_eq!(status.state("next"), "pending");
    assert_eq!(status.run_state(), "failed");
}

#[test]
fn on_failure_continue_lets_the_dependants_run() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: optional
      run: "exit 1"
      on_failure: continue
    - id: next
      needs: [optional]
      run: 'touch "${WORK}/next"'
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run with a tolerated failure");
    assert!(sandbox.exists("next"));
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("optional"), "failed");
    assert_eq!(status.state("next"), "succeeded");
    assert_eq!(status.run_state(), "succeeded");
}

const CONTINGENCY_PLAN: &str = r#"procedure:
  steps:
    - id: primary
      run: '"${WORK}/mark" start; "${WORK}/mark" end; exit 1'
      on_failure: contingency.fallback
    - id: next
      needs: [primary]
      run: '"${WORK}/mark" start; "${WORK}/mark" end'
contingency:
  fallback:
    description: Do it the other way.
    steps:
      - id: other-way
        run: '"${WORK}/mark" start; sleep 0.2; "${WORK}/mark" end; FALLBACK_EXIT'
      - id: other-way-check
        needs: [other-way]
        run: '"${WORK}/mark" start; "${WORK}/mark" end'
"#;

#[test]
fn on_failure_contingency_runs_the_branch_before_the_dependants() {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let plan = sandbox.plan(
        "plan.yaml",
        &CONTINGENCY_PLAN.replace("FALLBACK_EXIT", "true"),
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run with a successful contingency");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("primary"), "failed");
    assert_eq!(status.state("other-way"), "succeeded");
    assert_eq!(status.state("other-way-check"), "succeeded");
    assert_eq!(status.state("next"), "succeeded");
    let times = sandbox.intervals();
    assert!(
        times["other-way"].0 >= times["primary"].1,
        "the branch started before the failure: {times:?}"
    );
    assert!(
        times["next"].0 >= times["other-way-check"].1,
        "a dependant ran before the branch finished: {times:?}"
    );
    assert_eq!(status.run_state(), "succeeded");
}

#[test]
fn a_failing_contingency_branch_fails_the_run() {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let plan = sandbox.plan(
        "plan.yaml",
        &CONTINGENCY_PLAN.replace("FALLBACK_EXIT", "exit 1"),
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 6, "run with a failing contingency");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("other-way"), "failed");
    let times = sandbox.intervals();
    assert!(
        !times.contains_key("next"),
        "a dependant ran after its contingency failed: {times:?}"
    );
    assert!(
        !times.contains_key("other-way-check"),
        "the branch went on after its step failed: {times:?}"
    );
    assert_eq!(status.run_state(), "failed");
}

#[test]
fn a_failing_precondition_refuses_the_run_and_nothing_runs() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  preconditions:
    - id: fine
      run: 'touch "${WORK}/checked"'
    - id: p
      run: "false"
  steps:
    - id: change
      run: 'touch "${WORK}/changed"'
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 5, "run with a failing precondition");
    assert!(
        stderr(&out).contains("precondition p"),
        "should name the precondition: {}",
        stderr(&out)
    );
    assert!(
        !sandbox.exists("changed"),
        "a step ran although a precondition failed"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.run_state(), "refused");
    assert!(
        status.steps().iter().all(|s| s["state"] == "pending"),
        "{:#}",
        status.0
    );
}

// ---------------------------------------------------------------- values reaching steps

#[test]
fn outputs_reach_later_steps_as_environment_variables() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: read-rev
      run: "echo 'rev-42; touch pwned'"
      outputs: { rev: stdout }
    - id: use-rev
      needs: [read-rev]
      run: 'test "$BACKOUT_OUTPUT_READ_REV_REV" = "rev-42; touch pwned" && touch "${WORK}/used"'
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");
    assert!(
        sandbox.exists("used"),
        "the output did not arrive as BACKOUT_OUTPUT_READ_REV_REV"
    );
    assert!(!sandbox.exists("pwned"), "an output became code");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(
        status.step("read-rev")["outputs"]["rev"],
        "rev-42; touch pwned"
    );
}

#[test]
fn steps_see_the_release_and_the_run_id() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: env
      run: 'env | grep "^BACKOUT_" | sort > "${WORK}/env"'
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");
    let run = sandbox.only_run();
    let env = sandbox.read("env");
    for line in [
        "BACKOUT_RELEASE_VERSION=2.0.0",
        "BACKOUT_ROLLBACK_TO=1.9.0",
        &format!("BACKOUT_RUN_ID={run}"),
        "BACKOUT_STEP_ID=env",
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in:\n{env}");
    }
}

#[test]
fn secrets_are_resolved_for_the_step_and_redacted_from_what_is_kept() {
    let secret = "hunter2-very-secret";
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: call
      env: { TOKEN: "${MY_SECRET}" }
      run: 'echo "token=$TOKEN"; echo "err $TOKEN" >&2; printf %s "$TOKEN" > "${WORK}/token"'
"#,
    );
    let out = sandbox
        .command()
        .args([
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
        ])
        .env("MY_SECRET", secret)
        .output()
        .expect("runs");
    assert_code(&out, 0, "run");
    assert_eq!(
        sandbox.read("token"),
        secret,
        "the step should get the real value"
    );
    assert!(
        !stdout(&out).contains(secret) && !stderr(&out).contains(secret),
        "the secret reached the terminal"
    );

    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    let step = status.step("call");
    assert_eq!(step["stdout"], "token=${MY_SECRET}\n");
    assert_eq!(step["stderr"], "err ${MY_SECRET}\n");
    let report = sandbox.run(&["report", &run]);
    assert!(!stdout(&report).contains(secret));
    assert!(!status.0.to_string().contains(secret));
    // Nothing in the store's files (database, WAL) holds it either.
    for entry in std::fs::read_dir(sandbox.path()).expect("list sandbox") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with("backout.db") {
            let bytes = std::fs::read(&path).expect("read store file");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} contains the secret"
            );
        }
    }
}

#[test]
fn exec_steps_pass_their_arguments_without_a_shell() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: args
      exec: ["printf", "<%s>", "two words", "$HOME", "; touch pwned", "`id`"]
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(
        status.step("args")["stdout"],
        "<two words><$HOME><; touch pwned><`id`>"
    );
    assert!(!sandbox.exists("pwned"));
}

// ---------------------------------------------------------------- people

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

#[test]
fn a_manual_step_waits_until_confirmed_and_resumed() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", MANUAL_PLAN);
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 7, "run reaching a manual step");
    assert!(
        stderr(&out).contains("Check the dashboard"),
        "the instructions should be shown: {}",
        stderr(&out)
    );
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
    assert_code(&sandbox.run(&["resume", &run]), 7, "resume before confirm");
    assert_code(
        &sandbox.run(&[
            "--as",
            "ops@example.com",
            "confirm",
            &run,
            "approve",
            "--note",
            "dashboard is green",
        ]),
        0,
        "confirm",
    );
    assert_code(&sandbox.run(&["resume", &run]), 0, "resume after confirm");
    assert!(sandbox.exists("after"));
    let status = sandbox.status(&run);
    assert_eq!(status.state("approve"), "succeeded");
    let note = status.step("approve")["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(note.contains("dashboard is green"), "{note:?}");
    assert_eq!(status.run_state(), "succeeded");
    // A finished step cannot be confirmed again.
    assert_code(
        &sandbox.run(&["--as", "ops@example.com", "confirm", &run, "approve"]),
        5,
        "confirm of a finished run",
    );
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
    let executor = Background::start(
        &sandbox,
        &[
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
            "--wait",
        ],
    );
    let run = sandbox.wait_for_run(Duration::from_secs(5));
    sandbox.wait_for(
        &run,
        Duration::from_secs(5),
        "approve waiting while long runs",
        |s: &Status| s.state("approve") == "waiting_manual" && s.state("long") == "running",
    );
    assert_code(
        &sandbox.run(&["--as", "ops@example.com", "confirm", &run, "approve"]),
        0,
        "confirm from a second process",
    );
    let out = executor.finish(Duration::from_secs(15));
    assert_code(&out, 0, "the waiting executor");
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
    let executor = Background::start(
        &sandbox,
        &[
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
        ],
    );
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
    let out = sandbox.run(&["resume", &run]);
    assert_code(&out, 5, "resume of a run held by a live executor");
    assert!(
        stderr(&out).contains("being executed by process"),
        "{}",
        stderr(&out)
    );

    let aborted_at = Instant::now();
    assert_code(
        &sandbox.run(&["abort", &run, "--reason", "wrong release"]),
        0,
        "abort",
    );
    let out = executor.finish(Duration::from_secs(10));
    assert_code(&out, 6, "the aborted executor");
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
    assert_code(
        &sandbox.run(&[
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
        ]),
        7,
        "run",
    );
    let run = sandbox.only_run();
    assert_code(
        &sandbox.run(&["abort", &run, "--reason", "not needed"]),
        0,
        "abort",
    );
    assert_eq!(sandbox.status(&run).run_state(), "aborted");
    assert_code(
        &sandbox.run(&["status", &run]),
        6,
        "status of an aborted run",
    );
    let out = sandbox.run(&["resume", &run]);
    assert_code(&out, 5, "resume of an aborted run");
    assert!(stderr(&out).contains("already ended"), "{}", stderr(&out));
    assert_code(
        &sandbox.run(&["--as", "ops@example.com", "confirm", &run, "approve"]),
        5,
        "confirm in an aborted run",
    );
    assert!(!sandbox.exists("after"));
}

// ---------------------------------------------------------------- workarounds and reports

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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
        "--workaround",
        "flag-off",
    ]);
    assert_code(&out, 0, "workaround run");
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
        "--workaround",
        "reboot",
    ]);
    assert_code(&out, 5, "unknown workaround");
    let err = stderr(&out);
    assert!(
        err.contains("reboot") && err.contains("flag-off") && err.contains("drain"),
        "{err}"
    );
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "run");
    let run = sandbox.only_run();
    let out = sandbox.run(&["report", &run]);
    assert_code(&out, 0, "report");
    let report = stdout(&out);
    assert!(report.contains(&format!("# Run {run}")), "{report}");
    assert!(report.contains("expected vs actual"), "{report}");
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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "the wait ends when the criterion passes");
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    let settle = status.step("settle");
    assert!(
        settle["note"]
            .as_str()
            .unwrap_or("")
            .starts_with("ready passes after"),
        "{settle}"
    );

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
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 6, "never ready");
    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    let settle = status.step("settle");
    assert!(
        settle["note"]
            .as_str()
            .unwrap_or("")
            .starts_with("timed out waiting until ready passes"),
        "{settle}"
    );
    let checked = status.step("checked");
    assert!(
        checked["note"]
            .as_str()
            .unwrap_or("")
            .contains("verify failed: ready does not pass"),
        "{checked}"
    );
}
