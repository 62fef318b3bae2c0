//! Rehearsals end to end, driving the built binary against real SQLite files: evidence only for a
//! successful real rehearsal (with the environment's overrides applied), bound to the content
//! hash (an edited command untests the plan, reformatting does not), recorded also when a
//! resume finishes the rehearsal; the round trip; dry runs that walk contingency branches and
//! store nothing; and what lint, render, start and report make of the evidence.

mod support;

use serde_json::Value;
use support::{Ran, Sandbox};

/// A procedure with a contingency branch and a rehearsal environment with an override.
const BODY: &str = r#"procedure:
  steps:
    - id: revert
      run: 'echo "$STAGE_MARK" > "${WORK}/revert.$BACKOUT_ENVIRONMENT"'
      expected: 10s
      idempotent: true
    - { id: fix, needs: [revert], run: "true", expected: 10s, idempotent: true, on_failure: contingency.restore }
contingency:
  restore:
    description: put the backup back
    steps:
      - { id: restore-backup, run: "true", expected: 5s, idempotent: true }
testing:
  rehearse_in: staging
  max_age: 30d
  overrides:
    staging:
      env: { STAGE_MARK: from-staging }
"#;

fn json(out: &Ran) -> Value {
    out.json()
}

fn evidence(sandbox: &Sandbox, plan: &str) -> Vec<Value> {
    let out = sandbox
        .backout(&["evidence", "list", plan, "--format", "json"])
        .code(0);
    json(&out).as_array().expect("a list").clone()
}

fn hash(sandbox: &Sandbox, plan: &str) -> String {
    let out = sandbox.backout(&["lint", "--hash", "--format", "json", plan]);
    json(&out)["files"][0]["hash"]
        .as_str()
        .expect("a hash")
        .to_string()
}

fn codes(out: &Ran) -> Vec<String> {
    json(out)
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["code"].as_str().expect("code").to_string())
        .collect()
}

#[test]
fn a_successful_rehearsal_is_evidence_of_exactly_this_content() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);

    // Plain lint never reads the store; --evidence warns, --require-tested refuses.
    let out = sandbox
        .backout(&["lint", "plan.yaml", "--format", "json"])
        .code(0);
    assert!(codes(&out).is_empty(), "{}", out.stdout());
    // Lint --evidence of an untested plan warns.
    let out = sandbox
        .backout(&["lint", "plan.yaml", "--evidence", "--format", "json"])
        .code(0);
    assert_eq!(codes(&out), ["B084"]);
    // Lint --require-tested of an untested plan.
    let out = sandbox
        .backout(&["lint", "plan.yaml", "--require-tested"])
        .code(2);
    assert!(out.stdout().contains("error[B084]"), "{}", out.stdout());
    assert!(out.stdout().contains("backout rehearse PLAN --env staging"));

    let out = sandbox.backout(&["rehearse", "plan.yaml"]).code(0);
    assert!(out.stderr().contains("evidence evd-"), "{}", out.stderr());
    assert_eq!(
        sandbox.read("revert.staging").trim(),
        "from-staging",
        "the rehearsal ran in staging with testing.overrides.staging applied"
    );

    let list = evidence(&sandbox, "plan.yaml");
    assert_eq!(list.len(), 1, "{list:#?}");
    let e = &list[0];
    assert_eq!(e["environment"], "staging");
    assert_eq!(e["current"], true);
    assert_eq!(e["plan_hash"], hash(&sandbox, "plan.yaml"));
    assert_eq!(e["contingencies"], serde_json::json!([]));
    let run = e["run_id"].as_str().expect("run id");
    assert_eq!(sandbox.status(run).0["run"]["kind"], "rehearsal");

    let out = sandbox
        .backout(&[
            "evidence",
            "show",
            e["id"].as_str().expect("id"),
            "--format",
            "json",
        ])
        .code(0);
    let shown = json(&out);
    let steps = shown["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["step_id"], "revert");
    assert_eq!(steps[0]["attempts"], 1);
    assert!(steps[0]["duration_ms"].as_i64().is_some());
    let out = sandbox.backout(&["evidence", "show", e["id"].as_str().expect("id")]);
    assert!(
        out.stdout()
            .contains("a successful rehearsal of svc in staging"),
        "{}",
        out.stdout()
    );

    // Lint --require-tested of the rehearsed plan.
    sandbox
        .backout(&["lint", "plan.yaml", "--require-tested"])
        .code(0);

    let out = sandbox.backout(&["render", "plan.yaml"]).code(0);
    let doc = out.stdout();
    assert!(
        doc.contains("**Tested: yes** — rehearsed in staging on "),
        "{doc}"
    );
    assert!(
        doc.contains("successful rehearsal of this version of the plan"),
        "Q7 measured: {doc}"
    );
    let offline = sandbox
        .backout(&["render", "plan.yaml", "--offline"])
        .stdout();
    assert!(
        offline.contains("**Tested: no**"),
        "--offline reads no evidence"
    );

    let out = sandbox
        .backout(&["evidence", "export", "plan.yaml"])
        .code(0);
    let export = json(&out);
    assert_eq!(export["tested"], true);
    assert_eq!(export["evidence"].as_array().expect("evidence").len(), 1);

    // Report --durations.
    let out = sandbox
        .backout(&["report", "plan.yaml", "--durations", "--format", "json"])
        .code(0);
    let report = json(&out);
    assert_eq!(report["steps"][0]["step"], "revert");
    assert_eq!(report["steps"][0]["rehearsals"]["samples"], 1);
    assert_eq!(report["procedure"]["rehearsals"]["samples"], 1);
    let text = sandbox
        .backout(&["report", "plan.yaml", "--durations"])
        .stdout();
    assert!(text.contains("| revert | 10s | 1 |"), "{text}");

    // The evidence and its event are in the hash-chained journal.
    let events = sandbox.backout(&["report", run]).stdout();
    assert!(events.contains("evidence_recorded"), "{events}");
}

#[test]
fn editing_a_command_untests_the_plan_and_reformatting_does_not() {
    let sandbox = Sandbox::new();
    let path = sandbox.plan("plan.yaml", BODY);
    sandbox
        .backout(&["rehearse", "plan.yaml", "--env", "staging"])
        .code(0);
    let text = std::fs::read_to_string(&path).expect("plan");

    let reformatted = format!(
        "# reviewed by the change board\n{}",
        text.replace("max_age: 30d", "max_age:    30d    # a month")
            .replace("expected: 10s\n", "expected: \"10s\"\n")
    );
    sandbox.write("plan.yaml", &reformatted);
    // A reformatted plan is still tested.
    sandbox
        .backout(&["lint", "plan.yaml", "--require-tested"])
        .code(0);

    sandbox.write(
        "plan.yaml",
        &text.replace(
            r#"> "${WORK}/revert.$BACKOUT_ENVIRONMENT""#,
            r#">> "${WORK}/revert.$BACKOUT_ENVIRONMENT""#,
        ),
    );
    // An edited command untests the plan.
    let out = sandbox
        .backout(&["lint", "plan.yaml", "--require-tested", "--format", "json"])
        .code(2);
    assert_eq!(codes(&out), ["B084"]);
    let doc = sandbox.backout(&["render", "plan.yaml"]).stdout();
    assert!(
        doc.contains("no successful rehearsal of this version of the plan is on record"),
        "{doc}"
    );
    let list = evidence(&sandbox, "plan.yaml");
    assert_eq!(
        list[0]["current"], false,
        "the evidence is of another version"
    );

    // Start warns.
    let out = sandbox.backout(&["start", "plan.yaml"]).code(0);
    assert!(out.stderr().contains("UNTESTED PLAN"), "{}", out.stderr());
    // Start --require-tested refuses.
    let out = sandbox
        .backout(&["start", "plan.yaml", "--require-tested"])
        .code(5);
    assert!(
        out.stderr().contains("no successful rehearsal"),
        "{}",
        out.stderr()
    );

    // Rehearsing the new version makes it tested again; start is quiet.
    // Rehearse again.
    sandbox.backout(&["rehearse", "plan.yaml"]).code(0);
    // Start of a tested plan.
    let out = sandbox
        .backout(&["start", "plan.yaml", "--require-tested"])
        .code(0);
    assert!(!out.stderr().contains("UNTESTED"), "{}", out.stderr());
}

#[test]
fn failed_rehearsals_and_dry_runs_are_never_evidence() {
    let sandbox = Sandbox::new();
    let failing = BODY
        .replace(
            r#"run: "true", expected: 10s, idempotent: true, on_failure"#,
            r#"run: "exit 3", expected: 10s, idempotent: true, on_failure"#,
        )
        .replace(
            r#"{ id: restore-backup, run: "true""#,
            r#"{ id: restore-backup, run: "exit 4""#,
        );
    sandbox.plan("plan.yaml", &failing);
    // A failing rehearsal.
    let out = sandbox.backout(&["rehearse", "plan.yaml"]).code(6);
    assert!(out.stderr().contains("no evidence"), "{}", out.stderr());
    assert!(evidence(&sandbox, "plan.yaml").is_empty());
    let runs = sandbox.run_ids();
    std::fs::remove_file(sandbox.file("revert.staging")).expect("the real rehearsal ran revert");

    // A dry run runs nothing, so nothing fails.
    let out = sandbox
        .backout(&["rehearse", "plan.yaml", "--dry-run"])
        .code(0);
    assert!(
        out.stdout()
            .contains("nothing runs, nothing is stored, never evidence")
    );
    assert_eq!(sandbox.run_ids(), runs, "a dry run stores no run");
    assert!(evidence(&sandbox, "plan.yaml").is_empty());
    assert!(!sandbox.exists("revert.staging"), "a dry run runs no step");
}

#[test]
fn a_dry_run_with_an_injected_failure_walks_the_contingency_branch() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);
    // The branch recovers.
    let out = sandbox
        .backout(&[
            "rehearse",
            "plan.yaml",
            "--dry-run",
            "--fail",
            "fix",
            "--format",
            "json",
        ])
        .code(0);
    let sim = json(&out);
    assert_eq!(sim["outcome"], "succeeded");
    let steps = sim["steps"].as_array().expect("steps");
    let ids: Vec<&str> = steps
        .iter()
        .map(|s| s["step_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["revert", "fix", "restore-backup"]);
    assert_eq!(steps[1]["state"], "failed");
    assert_eq!(steps[2]["contingency"], "restore");
    assert_eq!(steps[2]["start_ms"], 20_000);
    assert_eq!(sim["total_ms"], 25_000);

    // A failing branch fails the simulated run.
    let out = sandbox
        .backout(&[
            "rehearse",
            "plan.yaml",
            "--dry-run",
            "--fail",
            "fix",
            "--fail",
            "restore-backup",
        ])
        .code(6);
    let text = out.stdout();
    assert!(
        text.contains("✗ restore-backup [contingency restore] failed after 5s"),
        "{text}"
    );
    assert!(text.contains("outcome: failed"), "{text}");

    // An unknown step.
    sandbox
        .backout(&["rehearse", "plan.yaml", "--dry-run", "--fail", "nope"])
        .code(2);

    // --speed plays the timeline back: 25s of plan time at 100× is a quarter second.
    let started = std::time::Instant::now();
    // Played back.
    sandbox
        .backout(&["rehearse", "plan.yaml", "--dry-run", "--speed", "100"])
        .code(0);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert!(sandbox.run_ids().is_empty());
}

#[test]
fn a_rehearsal_finished_by_resume_is_evidence_too() {
    let sandbox = Sandbox::new();
    let body = BODY.replace(
        "    - { id: fix,",
        "    - { id: look, needs: [revert], manual: { by: ops, instructions: \"check the page\" }, expected: 1m }\n    - { id: fix,",
    );
    sandbox.plan("plan.yaml", &body);
    // The rehearsal waits for the manual step.
    let out = sandbox.backout(&["rehearse", "plan.yaml"]).code(7);
    assert!(
        out.stderr().contains("not evidence yet"),
        "{}",
        out.stderr()
    );
    assert!(evidence(&sandbox, "plan.yaml").is_empty());
    let run = sandbox.only_run();
    sandbox
        .backout(&["--as", "ops@example.com", "confirm", &run, "look"])
        .code(0);
    // Resume finishes it.
    let out = sandbox.backout(&["resume", &run]).code(0);
    assert!(out.stderr().contains("evidence evd-"), "{}", out.stderr());
    let list = evidence(&sandbox, "plan.yaml");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["run_id"], run.as_str());
}

#[test]
fn a_round_trip_is_evidence_only_when_the_second_forward_deployment_succeeds() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);
    // Succeeds the first time, fails every time after.
    let forward = r#"n=$(cat "${WORK}/forwards" 2>/dev/null || echo 0); echo $((n+1)) > "${WORK}/forwards"; echo "deploying $BACKOUT_RELEASE_VERSION to $BACKOUT_ENVIRONMENT"; [ "$n" -eq 0 ]"#;
    // The second forward deployment failed.
    let out = sandbox
        .backout(&["rehearse", "plan.yaml", "--roundtrip", forward])
        .code(6);
    assert!(
        out.stderr().contains("round trip failed"),
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains("deploying 2.0.0 to staging"),
        "{}",
        out.stderr()
    );
    assert_eq!(sandbox.read("forwards").trim(), "2");
    assert!(evidence(&sandbox, "plan.yaml").is_empty());

    // A round trip.
    let out = sandbox
        .backout(&["rehearse", "plan.yaml", "--roundtrip", "true"])
        .code(0);
    assert!(
        out.stderr()
            .contains("round trip: forward, backout and forward again all succeeded")
    );
    let list = evidence(&sandbox, "plan.yaml");
    assert_eq!(list[0]["round_trip"], true);
    let shown = json(&sandbox.backout(&[
        "evidence",
        "show",
        list[0]["id"].as_str().expect("id"),
        "--format",
        "json",
    ]));
    assert_eq!(shown["round_trip"]["command"], "true");
    assert_eq!(shown["round_trip"]["second"]["exit_status"], 0);
}
