//! The bad night end to end, with real processes: a crash of the executor must not kill what
//! the procedure deliberately started, orphans are reaped, a failed step is a fork with named
//! ways forward inside the release (retry, skip, a workaround), every act is a performer's and
//! is journaled, and the release ends `rolled_back` only when `verify_after` held.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::{Background, Sandbox, assert_code, processes_marked, text, wait_until};

fn as_(sandbox: &Sandbox, who: &str, args: &[&str]) -> Output {
    sandbox.run_as(who, args)
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn pid_in(sandbox: &Sandbox, name: &str) -> u32 {
    wait_until(Duration::from_secs(5), name, || {
        !sandbox.read(name).trim().is_empty()
    });
    sandbox.read(name).trim().parse().expect("a pid")
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// A release of `body` whose rollback pat requested and dana (the decider) approved.
fn approved(sandbox: &Sandbox, body: &str) -> String {
    let plan = sandbox.plan("plan.yaml", body);
    let out = sandbox.run(&["start", plan.to_str().expect("utf-8 path")]);
    assert_code(&out, 0, "start");
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let asked = as_(
        sandbox,
        "pat@example.com",
        &["request", &rel, "--reason", "r"],
    );
    assert_code(&asked, 0, "request");
    let approve = ["decide", &rel, "approve", "--reason", "r"];
    assert_code(&as_(sandbox, "dana@example.com", &approve), 0, "approve");
    rel
}

/// A step that starts two daemons the way real deploy scripts do: `setsid … &`, and a server
/// that double-forks and leaves its session. Both write their pid and outlive the step.
const DAEMONS: &str = r#"    - id: start-service
      run: |
        setsid sleep 600 </dev/null >/dev/null 2>&1 &
        echo $! > "${WORK}/setsid.pid"
        python3 -c '
        import os, sys, time
        if os.fork(): sys.exit(0)
        os.setsid()
        if os.fork(): os._exit(0)
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2): os.dup2(fd, n)
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(600)
        ' "${WORK}/server.pid"
      expected: 1s
      idempotent: true
"#;

#[test]
fn resume_stops_only_the_step_that_was_running_never_the_daemons_earlier_steps_started() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"procedure:
  steps:
{DAEMONS}    - id: migrate
      needs: [start-service]
      run: 'touch "${{WORK}}/migrating"; sleep 600 & sleep 600'
      expected: 1s
      on_failure: halt
"#
        ),
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
    wait_until(Duration::from_secs(10), "the migration to start", || {
        sandbox.exists("migrating")
    });
    let (setsid, server) = (
        pid_in(&sandbox, "setsid.pid"),
        pid_in(&sandbox, "server.pid"),
    );
    executor.kill_9();
    let run = sandbox.only_run();
    let gone = sandbox.run(&["status", &run]);
    assert!(
        text(&gone).contains("no executor runs it any more")
            && text(&gone).contains(&format!("backout resume {run}")),
        "status names the dead executor and the way on:\n{}",
        text(&gone)
    );
    assert!(
        !processes_marked("BACKOUT_STEP_ID=migrate").is_empty(),
        "the running step outlives its killed executor"
    );

    let out = sandbox.run(&["resume", &run]);
    assert_code(
        &out,
        7,
        "resume with a non-idempotent step that was running",
    );
    wait_until(
        Duration::from_secs(5),
        "the migration's group to go",
        || processes_marked("BACKOUT_STEP_ID=migrate").is_empty(),
    );
    assert!(
        alive(setsid),
        "resume killed the setsid daemon of a finished step"
    );
    assert!(
        alive(server),
        "resume killed the double-forked server of a finished step"
    );
    let events = sandbox.run(&["report", &run, "--format", "json"]);
    let report: Value =
        serde_json::from_slice(&events.stdout).expect("report --format json is JSON");
    let resumed = report["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "run_resumed"))
        .expect("a run_resumed event");
    let stopped = resumed["payload"]["stopped_process_groups"]
        .as_array()
        .expect("the groups stopped");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["step"], "migrate");
    assert_eq!(stopped[0]["result"], "killed");
    kill(setsid);
    kill(server);
}

#[test]
fn a_daemon_that_exits_later_is_reaped_so_a_script_waiting_for_it_sees_it_gone() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: start-worker
      run: |
        setsid sh -c 'while [ ! -e "$0/stop" ]; do sleep 0.05; done' "${WORK}" </dev/null >/dev/null 2>&1 &
        echo $! > "${WORK}/worker.pid"
      expected: 1s
      idempotent: true
    - id: stop-worker
      needs: [start-worker]
      run: |
        pid=$(cat "${WORK}/worker.pid")
        touch "${WORK}/stop"
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
        echo "worker $pid still seen after 5s" >&2; exit 1
      expected: 1s
      idempotent: true
"#,
    );
    let out = sandbox.run(&[
        "run",
        "--break-glass",
        "--reason",
        "test",
        plan.to_str().expect("utf-8 path"),
    ]);
    assert_code(&out, 0, "the worker was reaped once it exited");
}

const RELEASE: &str = r#"people:
  deciders: [dana@example.com]
  performers: [pat@example.com, dana@example.com]
criteria:
  rollback_when:
    - id: healthy
      command: 'test -e "${WORK}/healthy"'
      every: 1s
window: { closes_after: 1h, after_close: "fix forward" }
authorization: { deciders: deciders, quorum: 1, separation_of_duties: true }
execution: { performers: performers, start_within: 15m }
procedure:
  steps:
    - id: drain
      run: 'echo drained >> "${WORK}/drained"'
      expected: 1s
      idempotent: true
    - id: downgrade-schema
      needs: [drain]
      run: |
        echo "downgrade attempt" >> "${WORK}/attempts"
        touch "${WORK}/downgrading"
        while [ -e "${WORK}/hold" ]; do sleep 0.05; done
        if [ ! -e "${WORK}/fixed" ]; then
          echo 'Traceback (most recent call last):' >&2
          echo '  File "alembic/env.py", line 87, in run_migrations_online' >&2
          echo 'sqlalchemy.exc.ProgrammingError: column "legacy_total" does not exist' >&2
          exit 1
        fi
      expected: 1s
      on_failure: halt
    - id: redeploy
      needs: [downgrade-schema]
      run: 'touch "${WORK}/healthy"'
      expected: 1s
      idempotent: true
  verify_after: { checks: [healthy], hold: 1s }
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
  notify:
    step_failed: [inbox]
    failed: [inbox]
    rolled_back: [inbox]
    rollback_unverified: [inbox]
"#;

/// The night of the issue: the executor is killed mid-step, resumed; a step fails with a
/// traceback the on-call sees where they look; the release reads `rollback_failed`; people
/// outside the plan and the approver are refused; the performer retries after a fix; the
/// rollback verifies; the release reads `rolled_back`, is no longer measured, and announced.
#[test]
fn killed_resumed_failed_retried_verified_the_release_reads_rolled_back() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", RELEASE);
    let out = sandbox.run(&["start", plan.to_str().expect("utf-8 path")]);
    assert_code(&out, 0, "start");
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_code(
        &as_(
            &sandbox,
            "pat@example.com",
            &["request", &rel, "--reason", "500s on /pay"],
        ),
        0,
        "request",
    );
    assert_code(
        &as_(
            &sandbox,
            "dana@example.com",
            &["decide", &rel, "approve", "--reason", "yes"],
        ),
        0,
        "approve",
    );

    // Kill the executor while the migration runs (held by a marker), then resume it.
    sandbox.write("hold", "");
    let executor = Background::start(&sandbox, &["--as", "pat@example.com", "execute", &rel]);
    wait_until(Duration::from_secs(10), "the downgrade to start", || {
        sandbox.exists("downgrading")
    });
    executor.kill_9();
    let run = sandbox.only_run();
    let resumed = as_(&sandbox, "pat@example.com", &["resume", &run]);
    assert_code(&resumed, 7, "resume: the non-idempotent step is in doubt");
    wait_until(
        Duration::from_secs(5),
        "the held attempt to be stopped",
        || processes_marked("BACKOUT_STEP_ID=downgrade-schema").is_empty(),
    );
    std::fs::remove_file(sandbox.file("hold")).expect("release the hold");
    let refused = as_(
        &sandbox,
        "eve@example.com",
        &["resolve", &run, "downgrade-schema", "retry"],
    );
    assert_code(&refused, 5, "someone outside the plan resolves");
    assert!(
        text(&refused).contains("execution.performers"),
        "{}",
        text(&refused)
    );
    assert_code(
        &as_(
            &sandbox,
            "pat@example.com",
            &["resolve", &run, "downgrade-schema", "retry"],
        ),
        0,
        "resolve retry",
    );
    let failed = as_(&sandbox, "pat@example.com", &["resume", &run]);
    assert_code(&failed, 6, "the downgrade fails");

    // What the failed step said is where the on-call looks.
    let status = text(&sandbox.run(&["status", &run]));
    assert!(
        status.contains("column \"legacy_total\" does not exist"),
        "status shows the traceback:\n{status}"
    );
    let report = text(&sandbox.run(&["report", &run]));
    assert!(
        report.contains("legacy_total"),
        "report shows it:\n{report}"
    );
    let list = text(&sandbox.run(&["status"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&rel) && l.contains("rollback_failed")),
        "{list}"
    );
    // Asking again to execute names the ways forward, not `resume`.
    let again = as_(&sandbox, "pat@example.com", &["execute", &rel]);
    assert_code(&again, 5, "a second execute");
    assert!(
        text(&again).contains(&format!("backout retry {run}"))
            && text(&again).contains("backout skip"),
        "{}",
        text(&again)
    );
    assert_code(&sandbox.run(&["resume", &run]), 5, "resume of a failed run");

    // People rules on the way forward.
    let outsider = as_(&sandbox, "eve@example.com", &["retry", &run]);
    assert_code(&outsider, 5, "a retry by someone outside the plan");
    assert!(
        text(&outsider).contains("execution.performers"),
        "{}",
        text(&outsider)
    );
    let approver = as_(&sandbox, "dana@example.com", &["retry", &run]);
    assert_code(&approver, 5, "a retry by the approver");
    assert!(
        text(&approver).contains("separation_of_duties"),
        "{}",
        text(&approver)
    );

    // The fix, then the performer retries inside the release: verified, rolled back.
    sandbox.write("fixed", "");
    let retried = as_(
        &sandbox,
        "pat@example.com",
        &["retry", &run, "downgrade-schema"],
    );
    assert_code(&retried, 0, "retry after the fix");
    assert!(
        text(&retried).contains("rolled back and verified"),
        "{}",
        text(&retried)
    );
    assert_eq!(sandbox.read("drained"), "drained\n", "drain ran once");
    assert_eq!(
        sandbox.read("attempts").lines().count(),
        3,
        "the downgrade ran: before the kill, on the resolved retry, on the retry"
    );

    let status: Value =
        serde_json::from_slice(&sandbox.run(&["status", &rel, "--format", "json"]).stdout)
            .expect("status JSON");
    assert_eq!(status["outcome"], "rolled_back", "{status:#}");
    let list = text(&sandbox.run(&["status"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&rel) && l.contains("rolled_back")),
        "{list}"
    );
    // Concluded: `check` measures nothing more and does not ask for a rollback.
    let measured = |s: &Sandbox| {
        let out = s.run(&["report", &rel, "--format", "json"]);
        String::from_utf8_lossy(&out.stdout)
            .matches("\"measurement\"")
            .count()
    };
    let before = measured(&sandbox);
    assert_code(
        &sandbox.run(&["check", &rel]),
        0,
        "check of a rolled-back release",
    );
    assert_eq!(
        measured(&sandbox),
        before,
        "a concluded release is not measured"
    );

    // Every act is in the release's story.
    let story = text(&sandbox.run(&["report", &rel]));
    for needle in [
        "step_retry_requested",
        "run_reopened",
        "rolled_back",
        "pat@example.com",
    ] {
        assert!(
            story.contains(needle),
            "report REL lacks {needle}:\n{story}"
        );
    }
    assert_code(
        &sandbox.run(&["deliveries", "--send"]),
        0,
        "send what is due",
    );
    let inbox = sandbox.read("inbox");
    assert!(inbox.contains("\"event\":\"step_failed\""), "{inbox}");
    assert!(
        inbox.contains("legacy_total"),
        "the step_failed notice carries the traceback: {inbox}"
    );
    assert!(inbox.contains("\"event\":\"rolled_back\""), "{inbox}");
}

/// `on_failure: ask` pauses the run for a performer, who skips the step; a workaround runs as
/// an execution of the release after its rollback failed, and is in `report REL`.
#[test]
fn ask_pauses_for_a_choice_skip_lets_dependants_go_and_a_workaround_runs_inside_the_release() {
    let sandbox = Sandbox::new();
    let body = RELEASE
        .replace("      on_failure: halt\n", "      on_failure: ask\n")
        .replace(
            "  verify_after: { checks: [healthy], hold: 1s }\n",
            "  verify_after: { checks: [healthy], hold: 1s }\nworkarounds:\n  - id: flag-off\n    description: turn the new flow off\n    steps:\n      - { id: flag, run: 'touch \"${WORK}/flag-off\" \"${WORK}/healthy\"', expected: 1s, idempotent: true }\n",
        );
    let rel = approved(&sandbox, &body);
    let asked = as_(&sandbox, "pat@example.com", &["execute", &rel]);
    assert_code(&asked, 7, "on_failure: ask waits for a performer");
    let run = sandbox.only_run();
    assert_eq!(sandbox.status(&run).state("downgrade-schema"), "failed");
    assert!(
        !sandbox.exists("healthy"),
        "nothing after the failed step ran"
    );

    // Skip it: the dependants run and the rollback verifies.
    let skipped = as_(
        &sandbox,
        "pat@example.com",
        &[
            "skip",
            &run,
            "downgrade-schema",
            "--reason",
            "schema reverted by hand",
        ],
    );
    assert_code(&skipped, 0, "skip");
    assert!(sandbox.exists("healthy"), "redeploy ran after the skip");
    let status = sandbox.status(&run);
    assert_eq!(status.state("downgrade-schema"), "skipped");
    assert_eq!(status.run_state(), "succeeded");

    // A workaround inside a release whose rollback did not work out: start over with a new
    // release, make the procedure fail for good, abort, then run the workaround.
    let second = Sandbox::new();
    let rel = approved(
        &second,
        &body.replace("on_failure: ask", "on_failure: halt"),
    );
    assert_code(
        &as_(&second, "pat@example.com", &["execute", &rel]),
        6,
        "fails",
    );
    let outsider = as_(
        &second,
        "eve@example.com",
        &["execute", &rel, "--workaround", "flag-off"],
    );
    assert_code(&outsider, 5, "a workaround by someone outside the plan");
    let worked = as_(
        &second,
        "pat@example.com",
        &["execute", &rel, "--workaround", "flag-off"],
    );
    assert_code(&worked, 0, "the workaround runs inside the release");
    assert!(second.exists("flag-off"));
    let story = text(&second.run(&["report", &rel]));
    assert!(
        story.contains("flag-off"),
        "report REL shows the workaround:\n{story}"
    );
    let status: Value =
        serde_json::from_slice(&second.run(&["status", &rel, "--format", "json"]).stdout)
            .expect("status JSON");
    assert_eq!(status["outcome"], "rolled_back", "{status:#}");
}

/// A manual step does not wait silently: while an executor waits for people, its `by` group is
/// reminded every `remind_every` and the wait escalates after `timeout`, each announced.
#[test]
fn a_waiting_manual_step_reminds_and_escalates() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: look
      manual: { by: ops, instructions: "Check the dashboard.", remind_every: 1s, timeout: 2s }
      expected: 1m
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
  notify:
    manual_step_waiting: [inbox]
    escalated: [inbox]
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
    let kinds = |s: &Sandbox, run: &str| -> Vec<String> {
        let out = s.run(&["report", run, "--format", "json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        report["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["kind"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(10), "the run to start", || {
        !sandbox.run_ids().is_empty()
    });
    let run = sandbox.only_run();
    wait_until(
        Duration::from_secs(10),
        "two reminders and an escalation",
        || {
            let kinds = kinds(&sandbox, &run);
            kinds
                .iter()
                .filter(|k| *k == "manual_step_reminded")
                .count()
                >= 2
                && kinds.iter().any(|k| k == "manual_step_escalated")
        },
    );
    let outsider = as_(&sandbox, "eve@example.com", &["confirm", &run, "look"]);
    assert_code(&outsider, 5, "confirm by someone outside manual.by");
    assert!(text(&outsider).contains("manual.by"), "{}", text(&outsider));
    assert_code(
        &as_(&sandbox, "ops@example.com", &["confirm", &run, "look"]),
        0,
        "confirm",
    );
    let out = executor.finish(Duration::from_secs(10));
    assert_code(&out, 0, "the run ends once confirmed");
    assert_code(
        &sandbox.run(&["deliveries", "--send"]),
        0,
        "send what is due",
    );
    let inbox = sandbox.read("inbox");
    assert!(inbox.contains("still waits for ops"), "{inbox}");
    assert!(inbox.contains("\"event\":\"escalated\""), "{inbox}");
}

/// `backout run` is a performer's act, and in the environment the release targets, outside a
/// release, only a loud break-glass act with a reason; a rehearsal environment needs none.
#[test]
fn run_outside_a_release_needs_a_performer_and_break_glass_in_production() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"people:
  performers: [pat@example.com]
execution: { performers: performers }
procedure:
  steps:
    - { id: undo, run: 'echo "$BACKOUT_ENVIRONMENT" >> "${WORK}/undone"', expected: 1s, idempotent: true }
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
  notify:
    break_glass: [inbox]
testing: { rehearse_in: staging, max_age: 30d }
"#,
    );
    let plan = plan.to_str().expect("utf-8 path");
    let outsider = as_(
        &sandbox,
        "eve@example.com",
        &["run", plan, "--env", "staging"],
    );
    assert_code(&outsider, 5, "a run by someone outside the performers");
    assert!(
        text(&outsider).contains("execution.performers"),
        "{}",
        text(&outsider)
    );
    let plain = as_(&sandbox, "pat@example.com", &["run", plan]);
    assert_code(&plain, 5, "a production run outside a release");
    assert!(text(&plain).contains("--break-glass"), "{}", text(&plain));
    assert!(!sandbox.exists("undone"), "nothing ran");
    assert_code(
        &as_(
            &sandbox,
            "pat@example.com",
            &["run", plan, "--env", "staging"],
        ),
        0,
        "a run in the rehearsal environment",
    );
    let glass = as_(
        &sandbox,
        "pat@example.com",
        &[
            "run",
            plan,
            "--break-glass",
            "--reason",
            "INC-7: the release API is down",
        ],
    );
    assert_code(&glass, 0, "a break-glass run");
    assert!(text(&glass).contains("BREAK GLASS"), "{}", text(&glass));
    assert_eq!(sandbox.read("undone"), "staging\ntest\n");
    let run = sandbox.run_ids()[0].clone();
    let report = text(&sandbox.run(&["report", &run]));
    assert!(report.contains("break_glass"), "{report}");
    assert_code(
        &sandbox.run(&["deliveries", "--send"]),
        0,
        "send what is due",
    );
    let inbox = sandbox.read("inbox");
    assert!(
        inbox.contains("\"event\":\"break_glass\"") && inbox.contains("INC-7"),
        "{inbox}"
    );
}

/// `setsid cmd &` as a script's last line is how deploy scripts start a service: the script
/// exits at once, and the end of the attempt must not kill the daemon before its `setsid` took
/// it out of the step's group (a race that killed it most of the time). What stays in the group
/// (`sleep 600 &`) is still stopped.
#[test]
fn a_daemon_started_on_the_last_line_survives_the_end_of_its_step() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: start-service
      run: |
        sleep 600 &
        echo $! > "${WORK}/stray.pid"
        setsid sleep 600 </dev/null >/dev/null 2>&1 &
        echo $! > "${WORK}/daemon.pid"
      expected: 1s
      idempotent: true
"#,
    );
    for attempt in 0..5 {
        let out = sandbox.run(&[
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
        ]);
        assert_code(&out, 0, "run");
        let (daemon, stray) = (
            pid_in(&sandbox, "daemon.pid"),
            pid_in(&sandbox, "stray.pid"),
        );
        assert!(
            alive(daemon),
            "attempt {attempt}: the setsid daemon was killed"
        );
        wait_until(Duration::from_secs(2), "the stray to be stopped", || {
            !alive(stray)
        });
        kill(daemon);
    }
}

/// The other two choices of `on_failure: ask`: a retry after the fix continues the run to a
/// verified rollback; an abort gives the run up and the release reads `rollback_failed`, with
/// the report saying so.
#[test]
fn ask_then_retry_verifies_and_ask_then_abort_ends_failed() {
    let body = RELEASE.replace("      on_failure: halt\n", "      on_failure: ask\n");
    for choice in ["retry", "abort"] {
        let sandbox = Sandbox::new();
        let rel = approved(&sandbox, &body);
        assert_code(
            &as_(&sandbox, "pat@example.com", &["execute", &rel]),
            7,
            "ask waits",
        );
        let run = sandbox.only_run();
        let outcome = |s: &Sandbox| -> String {
            let value: Value =
                serde_json::from_slice(&s.run(&["status", &rel, "--format", "json"]).stdout)
                    .expect("status JSON");
            value["outcome"].as_str().unwrap_or_default().to_string()
        };
        assert_eq!(outcome(&sandbox), "rolling_back");
        if choice == "retry" {
            sandbox.write("fixed", "");
            let out = as_(&sandbox, "pat@example.com", &["retry", &run]);
            assert_code(&out, 0, "retry after ask");
            assert_eq!(outcome(&sandbox), "rolled_back");
        } else {
            let out = as_(
                &sandbox,
                "pat@example.com",
                &["abort", &run, "--reason", "restoring from backup instead"],
            );
            assert_code(&out, 0, "abort after ask");
            assert_eq!(sandbox.status(&run).run_state(), "aborted");
            assert_eq!(outcome(&sandbox), "rollback_failed");
            let report = text(&sandbox.run(&["report", &rel]));
            assert!(
                report.contains("run_aborted") && report.contains("restoring from backup"),
                "{report}"
            );
        }
    }
}
