//! `decide` and `execute` end to end: who may decide, quorum of distinct approvers, fallback
//! deciders after `fallback.after` (with an `escalated` event), deny, separation of duties,
//! performers, and the window override.

mod support;

use std::process::Output;

use support::Sandbox;

const BODY: &str = r#"people:
  release-managers: [carol@example.com, dan@example.com]
  ops-oncall: [erin@example.com, frank@example.com, dan@example.com]
window: { closes_after: 1h, after_close: "fix forward with a hotfix release" }
authorization:
  deciders: release-managers
  quorum: 2
  fallback: { after: 1s, deciders: ops-oncall }
  separation_of_duties: true
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: undo, run: "echo rolled back >> \"${WORK}/undone\"", expected: 1s }
"#;

fn start(sandbox: &Sandbox, extra: &[&str]) -> String {
    let plan = sandbox.plan("plan.yaml", BODY);
    let mut args = vec!["start", plan.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let out = sandbox.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn as_(sandbox: &Sandbox, who: &str, args: &[&str]) -> Output {
    sandbox
        .command()
        .env("BACKOUT_USER", who)
        .args(args)
        .output()
        .expect("backout runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(5), "{}", text(out));
    assert!(
        text(out).contains(needle),
        "expected {needle:?} in: {}",
        text(out)
    );
}

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    text(out)
}

#[test]
fn only_deciders_decide_a_quorum_of_distinct_approvers_then_a_performer_executes() {
    let sandbox = Sandbox::new();
    let rel = start(&sandbox, &[]);
    let approve = ["decide", &rel, "approve", "--reason", "errors at 4%"];
    refused(
        &as_(&sandbox, "carol@example.com", &approve),
        "nothing to decide",
    );
    ok(&as_(
        &sandbox,
        "erin@example.com",
        &["request", &rel, "--reason", "checkout emails are empty"],
    ));
    refused(
        &as_(&sandbox, "mallory@example.com", &approve),
        "only `release-managers` (carol@example.com, dan@example.com) may",
    );
    refused(
        &as_(&sandbox, "erin@example.com", &approve),
        "may decide only after 1s without a decision",
    );
    let first = ok(&as_(&sandbox, "Carol@Example.com", &approve));
    assert!(first.contains("1 of 2 approvals, 1 more needed"), "{first}");
    let status = ok(&sandbox.run(&["status", &rel]));
    assert!(
        status.contains("for `release-managers`: 1 of 2 approval(s); `ops-oncall` may decide too"),
        "{status}"
    );
    refused(
        &as_(&sandbox, "carol@example.com", &approve),
        "needs distinct approvers",
    );
    refused(
        &as_(&sandbox, "erin@example.com", &["execute", &rel]),
        "not approved: 1 of 2 approval(s)",
    );
    let second = ok(&as_(&sandbox, "dan@example.com", &approve));
    assert!(second.contains("APPROVED"), "{second}");
    refused(
        &as_(&sandbox, "carol@example.com", &["execute", &rel]),
        "only `ops-oncall` (erin@example.com, frank@example.com, dan@example.com) may",
    );
    refused(
        &as_(&sandbox, "dan@example.com", &["execute", &rel]),
        "separation_of_duties",
    );
    assert!(
        !sandbox.exists("undone"),
        "nothing ran before a performer started it"
    );
    let run = as_(&sandbox, "erin@example.com", &["execute", &rel]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(sandbox.read("undone"), "rolled back\n");
    let status = ok(&sandbox.run(&["status", &rel]));
    assert!(
        status.contains("by Carol@Example.com, dan@example.com; executed"),
        "{status}"
    );
    refused(
        &as_(&sandbox, "frank@example.com", &["execute", &rel]),
        "already started",
    );
    assert_eq!(sandbox.read("undone"), "rolled back\n", "ran once");
}

#[test]
fn the_fallback_group_decides_after_the_delay_and_the_decision_escalates() {
    let sandbox = Sandbox::new();
    let rel = start(&sandbox, &[]);
    ok(&as_(
        &sandbox,
        "erin@example.com",
        &["request", &rel, "--reason", "payments failing"],
    ));
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let approve = ["decide", &rel, "approve", "--reason", "nobody answered"];
    let out = ok(&as_(&sandbox, "erin@example.com", &approve));
    assert!(
        out.contains("as a fallback decider (the decision escalated)"),
        "{out}"
    );
    let out = ok(&as_(&sandbox, "frank@example.com", &approve));
    assert!(out.contains("APPROVED"), "{out}");
    let report = sandbox.run(&["report", &rel, "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    let kinds: Vec<&str> = value["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "release_started",
            "rollback_requested",
            // `request` asks the deciders at once (issue 14).
            "decision_requested",
            "escalated",
            "decision",
            "decision"
        ],
        "one escalation, before the first fallback decision"
    );
}

#[test]
fn a_deny_answers_the_request_and_execution_stays_refused() {
    let sandbox = Sandbox::new();
    let rel = start(&sandbox, &[]);
    ok(&as_(
        &sandbox,
        "erin@example.com",
        &["request", &rel, "--reason", "looks odd"],
    ));
    ok(&as_(
        &sandbox,
        "carol@example.com",
        &[
            "decide",
            &rel,
            "deny",
            "--reason",
            "known blip, fixed forward",
        ],
    ));
    refused(
        &as_(&sandbox, "erin@example.com", &["execute", &rel]),
        "the last decision was a deny by carol@example.com: known blip, fixed forward",
    );
    refused(
        &as_(
            &sandbox,
            "dan@example.com",
            &["decide", &rel, "approve", "--reason", "x"],
        ),
        "nothing to decide",
    );
    let status = sandbox.run(&["status", &rel, "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(value["verdict"], "healthy", "the request was answered");
}

#[test]
fn after_the_window_closed_only_the_full_quorum_overriding_it_can_roll_back() {
    let sandbox = Sandbox::new();
    // Deployed two hours ago; the window was one hour.
    let two_hours_ago = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            - 7_200;
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{now}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let rel = start(&sandbox, &["--at", &two_hours_ago]);
    refused(
        &as_(
            &sandbox,
            "erin@example.com",
            &["request", &rel, "--reason", "x"],
        ),
        "fix forward with a hotfix release",
    );
    refused(
        &as_(
            &sandbox,
            "carol@example.com",
            &["decide", &rel, "approve", "--reason", "data loss"],
        ),
        "2 deciders must each approve with --override-window",
    );
    let overriding = [
        "decide",
        &rel,
        "approve",
        "--override-window",
        "--reason",
        "data loss otherwise",
    ];
    let out = ok(&as_(&sandbox, "carol@example.com", &overriding));
    assert!(out.contains("WINDOW OVERRIDDEN"), "{out}");
    refused(
        &as_(&sandbox, "erin@example.com", &["execute", &rel]),
        "not approved",
    );
    ok(&as_(&sandbox, "dan@example.com", &overriding));
    let run = as_(&sandbox, "erin@example.com", &["execute", &rel]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(text(&run).contains("WINDOW OVERRIDDEN"), "{}", text(&run));
    assert_eq!(sandbox.read("undone"), "rolled back\n");
}

#[test]
fn an_approver_may_not_confirm_the_manual_steps_of_the_rollback() {
    let sandbox = Sandbox::new();
    let body = BODY.replace(
        "    - { id: undo, run: \"echo rolled back >> \\\"${WORK}/undone\\\"\", expected: 1s }",
        "    - { id: check, manual: { by: ops-oncall, instructions: \"look\" } }",
    );
    assert_ne!(body, BODY);
    let plan = sandbox.plan("manual.yaml", &body);
    let out = sandbox.run(&["start", plan.to_str().expect("utf-8")]);
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ok(&as_(
        &sandbox,
        "erin@example.com",
        &["request", &rel, "--reason", "x"],
    ));
    for who in ["carol@example.com", "dan@example.com"] {
        ok(&as_(
            &sandbox,
            who,
            &["decide", &rel, "approve", "--reason", "y"],
        ));
    }
    let run = as_(
        &sandbox,
        "erin@example.com",
        &["execute", &rel, "--format", "json"],
    );
    assert_eq!(
        run.status.code(),
        Some(7),
        "waits for a person: {}",
        text(&run)
    );
    let run_id = text(&run)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| w.starts_with("run-"))
        .expect("a run id in the output")
        .to_string();
    refused(
        &as_(&sandbox, "dan@example.com", &["confirm", &run_id, "check"]),
        "may not also confirm step",
    );
    ok(&as_(
        &sandbox,
        "frank@example.com",
        &["confirm", &run_id, "check"],
    ));
}

const LOOP: &str = r#"people:
  release-managers: [carol@example.com, dan@example.com]
  ops-oncall: [erin@example.com]
criteria:
  rollback_when:
    - { id: errors, command: "cat \"${WORK}/errors\"", fails_if: "> 5", every: 200ms, AUTO }
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 2 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: undo, run: "echo rolled back >> \"${WORK}/undone\"; echo FIXED > \"${WORK}/errors\"", expected: 1s }
  verify_after: { checks: [errors], hold: 400ms }
"#;

fn loop_plan(sandbox: &Sandbox, automatic: bool, fixed: &str) -> String {
    let body = LOOP
        .replace(
            ", AUTO }",
            if automatic {
                ", authorize: automatic }"
            } else {
                " }"
            },
        )
        .replace("FIXED", fixed);
    let plan = sandbox.plan("loop.yaml", &body);
    let out = sandbox.run(&["start", plan.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn story(sandbox: &Sandbox, rel: &str) -> Vec<String> {
    let report = sandbox.run(&["report", rel, "--format", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    value["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn watch_execute_runs_an_automatic_rollback_and_verifies_it() {
    let sandbox = Sandbox::new();
    sandbox.write("errors", "9\n");
    let rel = loop_plan(&sandbox, true, "0");
    let out = as_(&sandbox, "erin@example.com", &["watch", &rel, "--execute"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sandbox.read("undone"), "rolled back\n");
    assert!(
        text(&out).contains("rolled back and verified"),
        "{}",
        text(&out)
    );
    let story = story(&sandbox, &rel);
    for expected in [
        "decision backout:automatic",
        "execution_started backout:automatic",
        "execution_finished backout:automatic",
        "verification_started backout:automatic",
        "rolled_back backout:automatic",
    ] {
        assert!(
            story.iter().any(|s| s == expected),
            "{expected} in {story:?}"
        );
    }
    assert!(
        !story.iter().any(|s| s.starts_with("decision_requested")),
        "nobody was asked: {story:?}"
    );
}

#[test]
fn watch_execute_waits_for_the_deciders_then_runs_and_a_failed_verification_exits_6() {
    let sandbox = Sandbox::new();
    sandbox.write("errors", "9\n");
    // The rollback does not fix the errors: verification must fail.
    let rel = loop_plan(&sandbox, false, "9");
    let watch = sandbox
        .command()
        .env("BACKOUT_USER", "erin@example.com")
        .args(["watch", &rel, "--execute"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("watch starts");
    let started = std::time::Instant::now();
    while !story(&sandbox, &rel)
        .iter()
        .any(|s| s.starts_with("decision_requested"))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "deciders never asked"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !sandbox.exists("undone"),
        "nothing runs before the approval"
    );
    for who in ["carol@example.com", "dan@example.com"] {
        ok(&as_(
            &sandbox,
            who,
            &["decide", &rel, "approve", "--reason", "errors"],
        ));
    }
    let out = watch.wait_with_output().expect("watch ends");
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("did not verify: errors tripped after the rollback"),
        "{}",
        text(&out)
    );
    assert_eq!(sandbox.read("undone"), "rolled back\n");
    let story = story(&sandbox, &rel);
    assert!(
        story
            .iter()
            .any(|s| s == "execution_started erin@example.com"),
        "{story:?}"
    );
    assert!(
        story
            .iter()
            .any(|s| s == "rollback_unverified erin@example.com"),
        "{story:?}"
    );
}
