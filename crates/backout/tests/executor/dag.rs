//! What runs when: a step starts only after its needs, no more than `max_parallel` at once,
//! steps of an unreached checkpoint are skipped, a failure halts, continues or runs its
//! contingency branch, and a failing precondition refuses the whole run.

use crate::nanos_to_ms;
use crate::support::Sandbox;

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
    sandbox.break_glass(&plan).run().code(0);

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
    sandbox.break_glass(&plan).run().code(0);

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

    sandbox.break_glass(&plan).run().code(0);
    assert!(sandbox.exists("always"));
    assert!(
        !sandbox.exists("undone"),
        "a step of an unreached checkpoint ran"
    );
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("undo-contract"), "skipped");
    let note = status.note("undo-contract");
    assert!(
        note.contains("contract"),
        "the skip note should name the checkpoint: {note:?}"
    );
    assert_eq!(status.run_state(), "succeeded");

    sandbox
        .break_glass(&plan)
        .args(["--checkpoint", "contract"])
        .run()
        .code(0);
    assert!(
        sandbox.exists("undone"),
        "the step of a reached checkpoint did not run"
    );
    let newest = sandbox.run_ids()[0].clone();
    assert_eq!(sandbox.status(&newest).state("undo-contract"), "succeeded");

    // An undeclared checkpoint is a usage error that names the declared ones.
    sandbox
        .break_glass(&plan)
        .args(["--checkpoint", "nonexistent"])
        .run()
        .code(2)
        .stderr_has("expand, contract");
}

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
    sandbox.break_glass(&plan).run().code(6);
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
    sandbox.break_glass(&plan).run().code(0);
    assert!(sandbox.exists("next"));
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(status.state("optional"), "failed");
    assert_eq!(status.state("next"), "succeeded");
    assert_eq!(status.run_state(), "succeeded");
}

/// `primary` fails into the `fallback` branch, whose first step ends with `FALLBACK_EXIT`.
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

/// A sandbox with `mark` and the contingency plan whose branch ends with `fallback_exit`.
fn contingency(fallback_exit: &str) -> (Sandbox, std::path::PathBuf) {
    let sandbox = Sandbox::new();
    sandbox.install_mark();
    let plan = sandbox.plan(
        "plan.yaml",
        &CONTINGENCY_PLAN.replace("FALLBACK_EXIT", fallback_exit),
    );
    (sandbox, plan)
}

#[test]
fn on_failure_contingency_runs_the_branch_before_the_dependants() {
    let (sandbox, plan) = contingency("true");
    sandbox.break_glass(&plan).run().code(0);
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
    let (sandbox, plan) = contingency("exit 1");
    sandbox.break_glass(&plan).run().code(6);
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
    sandbox
        .break_glass(&plan)
        .run()
        .code(5)
        .stderr_has("precondition p");
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
