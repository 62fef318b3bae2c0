//! The CLI against a server: a real `backout serve` on a loopback port over a temporary SQLite
//! store, and the real `backout` binary with `BACKOUT_SERVER` and `BACKOUT_TOKEN` set. A release
//! goes start → check → request → decide (refused for a viewer and for a decider outside the
//! plan) → execute → a manual step confirmed → succeeded, with every exit code asserted; then
//! the failures: an unreachable server, a missing token, `--database` beside the server, an
//! invalid plan, an unknown id, `--as` naming someone else, and local-only commands.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{Server, token};
use support::{Sandbox, assert_code, stderr, stdout};

const BODY: &str = r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: drain, run: "echo drained >> \"${WORK}/done\"", expected: 1s }
    - { id: confirm-payments, needs: [drain], manual: { by: ops-oncall, instructions: "Place a test order." }, expected: 1m }
    - { id: finish, needs: [confirm-payments], run: "echo finished >> \"${WORK}/done\"", expected: 1s }
"#;

/// The server of `sandbox`, never itself pointed at another server.
fn serve(sandbox: &Sandbox) -> Server {
    let mut command = sandbox.command();
    command.env_remove("BACKOUT_SERVER");
    Server::from_command(command)
}

/// `backout` pointed at `server` (or any URL) with `token`, and no local store configured.
fn client(sandbox: &Sandbox, server: &str, token: Option<&str>) -> Command {
    let mut cmd = sandbox.command();
    cmd.env_remove("BACKOUT_DATABASE_URL")
        .env_remove("BACKOUT_USER")
        .env("BACKOUT_SERVER", server);
    match token {
        Some(token) => cmd.env("BACKOUT_TOKEN", token),
        None => cmd.env_remove("BACKOUT_TOKEN"),
    };
    cmd
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("backout runs")
}

#[test]
fn a_release_is_rolled_back_through_the_server() {
    let sandbox = Sandbox::new();
    let carol = token(&sandbox, "carol@example.com", "decider");
    let erin = token(&sandbox, "erin@example.com", "performer");
    let mallory = token(&sandbox, "mallory@example.com", "decider");
    let viewer = token(&sandbox, "victor@example.com", "viewer");
    sandbox.plan("plan.yaml", BODY);
    let server = serve(&sandbox);
    let at = |token: &str| client(&sandbox, &server.base, Some(token));

    // A viewer may not start releases: the role, named, exit 5.
    let out = run(at(&viewer), &["start", "plan.yaml"]);
    assert_code(&out, 5, "start as a viewer");
    assert!(stderr(&out).contains("role `viewer`"), "{}", stderr(&out));

    let out = run(at(&erin), &["start", "plan.yaml"]);
    assert_code(&out, 0, "start");
    let rel = stdout(&out).trim().to_string();
    assert!(rel.starts_with("rel-"), "{rel}");
    assert!(
        stderr(&out).contains(&format!(
            "release {rel} of svc 2.0.0 (rolls back to 1.9.0): window open until"
        )),
        "{}",
        stderr(&out)
    );

    let out = run(at(&erin), &["check", &rel]);
    assert_code(&out, 0, "check of a healthy release");
    assert!(
        stdout(&out).contains("verdict: healthy"),
        "{}",
        stdout(&out)
    );

    let out = run(at(&erin), &["checkpoint", &rel, "expand"]);
    assert_code(&out, 0, "checkpoint");
    assert!(
        stderr(&out).contains(&format!("release {rel}: checkpoint `expand` recorded")),
        "{}",
        stderr(&out)
    );

    let out = run(
        at(&erin),
        &["request", &rel, "--reason", "checkout emails are empty"],
    );
    assert_code(&out, 0, "request");
    assert!(
        stderr(&out).contains("rollback requested by erin@example.com (checkout emails are empty)"),
        "{}",
        stderr(&out)
    );

    let out = run(at(&erin), &["check", &rel]);
    assert_code(&out, 3, "check after a request");
    assert!(
        stdout(&out).contains("verdict: rollback_required (a person requested it)"),
        "{}",
        stdout(&out)
    );

    // The token's role first, then the plan's rule, each named; exit 5 as locally.
    let out = run(at(&viewer), &["decide", &rel, "approve", "--reason", "x"]);
    assert_code(&out, 5, "decide as a viewer");
    assert!(
        stderr(&out).contains("may not decide rollbacks"),
        "{}",
        stderr(&out)
    );
    let out = run(at(&mallory), &["decide", &rel, "approve", "--reason", "x"]);
    assert_code(&out, 5, "decide by someone outside the deciders");
    assert!(
        stderr(&out).contains("`mallory@example.com` may not decide: only `release-managers` (carol@example.com) may (authorization.deciders)"),
        "{}",
        stderr(&out)
    );
    // `--as` cannot make the token someone else.
    let out = run(
        at(&mallory),
        &[
            "--as",
            "carol@example.com",
            "decide",
            &rel,
            "approve",
            "--reason",
            "x",
        ],
    );
    assert_code(&out, 2, "--as naming another user");
    assert!(
        stderr(&out).contains("acts as `mallory@example.com`"),
        "{}",
        stderr(&out)
    );

    let out = run(
        at(&carol),
        &[
            "--as",
            "carol@example.com",
            "decide",
            &rel,
            "approve",
            "--reason",
            "emails empty",
        ],
    );
    assert_code(&out, 0, "decide by a decider");
    assert!(
        stderr(&out).contains(&format!(
            "release {rel}: carol@example.com approved; 1 of 1 approvals: the rollback is APPROVED"
        )),
        "{}",
        stderr(&out)
    );

    let out = run(at(&viewer), &["status", &rel]);
    assert_code(&out, 0, "status of the release");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("release {rel}  svc 2.0.0 → 1.9.0 (test)")),
        "{text}"
    );
    assert!(text.contains("✓ expand at "), "{text}");
    assert!(text.contains("· contract"), "{text}");
    assert!(text.contains("decision: approved at "), "{text}");

    // Nothing is executed on the server before the plan's deployment engineer accepts it.
    let out = run(at(&erin), &["execute", &rel]);
    assert_code(&out, 5, "execute of an unaccepted plan");
    assert!(stderr(&out).contains("not accepted"), "{}", stderr(&out));
    let out = run(at(&erin), &["accept", "plan.yaml"]);
    assert_code(&out, 5, "a performer accepts the plan");
    let owner = token(&sandbox, "owner@example.com", "viewer");
    assert_code(&run(at(&owner), &["accept", "plan.yaml"]), 0, "accept");

    // A decider may not execute (the plan's performers), a performer may; the run stops at the
    // manual step: exit 7.
    let out = run(at(&carol), &["execute", &rel]);
    assert_code(&out, 5, "execute by someone outside the performers");
    assert!(
        stderr(&out).contains("execution.performers"),
        "{}",
        stderr(&out)
    );
    let out = run(at(&erin), &["execute", &rel]);
    assert_code(&out, 7, "execute up to the manual step");
    let err = stderr(&out);
    assert!(err.contains("✓ drain succeeded"), "{err}");
    assert!(
        err.contains("✋ confirm-payments waits for ops-oncall"),
        "{err}"
    );
    assert!(err.contains("Place a test order."), "{err}");
    assert!(err.contains("manual: confirm-payments"), "{err}");
    let run_id = err
        .split_whitespace()
        .find(|w| w.starts_with("run-"))
        .map(|w| w.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("no run id in {err}"));

    // A run that waits for a person: exit 7, as `status RUN` exits locally.
    let out = run(at(&viewer), &["status", &run_id]);
    assert_code(&out, 7, "status of a waiting run");
    let text = stdout(&out);
    assert!(text.contains("waiting_manual"), "{text}");
    assert!(
        text.contains("(svc 2.0.0, release by erin@example.com)"),
        "{text}"
    );
    assert!(
        text.contains("1m"),
        "expected durations from the plan: {text}"
    );

    let out = run(at(&viewer), &["confirm", &run_id, "confirm-payments"]);
    assert_code(&out, 5, "confirm as a viewer");
    let out = run(
        at(&erin),
        &[
            "confirm",
            &run_id,
            "confirm-payments",
            "--note",
            "order seen",
        ],
    );
    assert_code(&out, 0, "confirm");

    let start = Instant::now();
    loop {
        let out = run(at(&viewer), &["status", &run_id, "--format", "json"]);
        let value: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", stdout(&out)));
        assert!(value.get("plan_source").is_none(), "{value}");
        if value["run"]["state"] == "succeeded" {
            assert_code(&out, 0, "status of the finished run");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run did not finish: {value:#}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sandbox.read("done"), "drained\nfinished\n");
    let out = run(at(&viewer), &["status", &run_id]);
    assert_code(&out, 0, "status of the finished run, for people");
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    let out = run(at(&viewer), &["deliveries", &rel]);
    assert_code(&out, 0, "deliveries");
    let out = run(at(&viewer), &["audit", "verify"]);
    assert_code(&out, 0, "audit verify");
    assert!(
        stdout(&out).contains("the hash chain holds"),
        "{}",
        stdout(&out)
    );

    // A second rollback, aborted while it waits: exit 6 for its status; a resolve after the
    // end is refused (5), as locally.
    let out = run(at(&erin), &["start", "plan.yaml"]);
    assert_code(&out, 0, "second start");
    let second = stdout(&out).trim().to_string();
    assert_code(
        &run(at(&erin), &["request", &second, "--reason", "again"]),
        0,
        "request",
    );
    assert_code(
        &run(
            at(&carol),
            &["decide", &second, "approve", "--reason", "again"],
        ),
        0,
        "decide",
    );
    let out = run(at(&erin), &["execute", &second, "--format", "json"]);
    assert_code(&out, 7, "execute with JSON progress");
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events[0]["event"], "run_started", "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step_waiting" && e["step"] == "confirm-payments"),
        "{events:?}"
    );
    let second_run = events[0]["run_id"].as_str().expect("run id").to_string();
    let out = run(
        at(&erin),
        &["abort", &second_run, "--reason", "wrong cluster"],
    );
    assert_code(&out, 0, "abort");
    let start = Instant::now();
    loop {
        let out = run(at(&viewer), &["status", &second_run]);
        if out.status.code() == Some(6) {
            assert!(stdout(&out).contains("aborted"), "{}", stdout(&out));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run was not aborted: {}\n{}",
            stdout(&out),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run(
        at(&erin),
        &["resolve", &second_run, "confirm-payments", "done"],
    );
    assert_code(&out, 5, "resolve of an ended run");
    assert!(
        stderr(&out).contains("already ended: aborted"),
        "{}",
        stderr(&out)
    );

    // A token the server does not know: refused (5), naming the variable to fix.
    let out = run(at("tok-01nobody.00"), &["status", &rel]);
    assert_code(&out, 5, "an unknown token");
    assert!(
        stderr(&out).contains("does not accept BACKOUT_TOKEN"),
        "{}",
        stderr(&out)
    );

    // An unknown id: exit 2 as locally, naming the server.
    let out = run(at(&viewer), &["status", "rel-nope"]);
    assert_code(&out, 2, "status of an unknown release");
    assert!(
        stderr(&out).contains("no release `rel-nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_invalid_plan_is_refused_with_its_lines() {
    let sandbox = Sandbox::new();
    let erin = token(&sandbox, "erin@example.com", "performer");
    let broken = support::plan(BODY).replace("needs: [drain]", "needs: [drian]");
    sandbox.write("bad.yaml", &broken);
    let server = serve(&sandbox);
    let out = run(
        client(&sandbox, &server.base, Some(&erin)),
        &["start", "bad.yaml"],
    );
    assert_code(&out, 2, "start of an invalid plan");
    let err = stderr(&out);
    // `bad.yaml:LINE:COL` as `backout lint` prints it.
    let located = err.split("bad.yaml:").skip(1).any(|rest| {
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or_default();
        let col: String = parts
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        line.parse::<u32>().is_ok() && !col.is_empty()
    });
    assert!(located, "no file:line:col in:\n{err}");
    assert!(err.contains("drian"), "{err}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn misconfigurations_and_local_only_commands_are_explained() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let out = run(
        client(&sandbox, &closed, Some("tok-x.y")),
        &["status", "rel-1"],
    );
    assert_code(&out, 1, "an unreachable server");
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line:\n{err}");
    assert!(err.contains(&closed), "{err}");
    assert!(err.contains("is `backout serve` running there?"), "{err}");

    let out = run(client(&sandbox, &closed, None), &["status", "rel-1"]);
    assert_code(&out, 2, "a server without a token");
    assert!(
        stderr(&out).contains("BACKOUT_TOKEN is not"),
        "{}",
        stderr(&out)
    );

    let out = run(
        client(&sandbox, &closed, Some("tok-x.y")),
        &["--database", &sandbox.database_url(), "status"],
    );
    assert_code(&out, 2, "--database beside BACKOUT_SERVER");
    assert!(stderr(&out).contains("BACKOUT_SERVER"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--database"), "{}", stderr(&out));

    for args in [
        &["run", "--break-glass", "--reason", "test", "plan.yaml"][..],
        &["watch", "rel-1"],
        &["report", "rel-1"],
        &["evidence", "list"],
        &["token", "list"],
        &["audit", "export"],
        &["deliveries", "--send", "rel-1"],
    ] {
        let out = run(client(&sandbox, &closed, Some("tok-x.y")), args);
        assert_code(&out, 2, &format!("{args:?} against a server"));
        let err = stderr(&out);
        assert!(err.contains("local store only"), "{err}");
        assert!(err.contains("unset BACKOUT_SERVER"), "{err}");
    }

    // Plan files alone need no store: lint works with the server set.
    let out = run(
        client(&sandbox, &closed, Some("tok-x.y")),
        &["lint", "plan.yaml"],
    );
    assert_code(&out, 0, "lint with a server set");
}

/// The bad night through a server: the rollback's step fails (exit 6, the output where the
/// on-call looks), someone outside the plan may not retry, the performer retries after the fix,
/// the server continues the reopened run and verifies it, and the release reads `rolled_back`.
/// `start --require-tested` reads the server's evidence.
#[test]
fn a_failed_rollback_is_retried_through_the_server_and_verified() {
    let sandbox = Sandbox::new();
    let carol = token(&sandbox, "carol@example.com", "decider");
    let erin = token(&sandbox, "erin@example.com", "performer");
    let mallory = token(&sandbox, "mallory@example.com", "performer");
    sandbox.plan(
        "plan.yaml",
        r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
criteria:
  rollback_when:
    - { id: healthy, command: 'test -e "${WORK}/healthy"', every: 1s }
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - id: downgrade
      run: |
        if [ ! -e "${WORK}/fixed" ]; then echo 'relation "orders_v2" does not exist' >&2; exit 1; fi
        touch "${WORK}/healthy"
      expected: 1s
  verify_after: { checks: [healthy], hold: 1s }
testing: { rehearse_in: staging, max_age: 30d }
"#,
    );
    let server = serve(&sandbox);
    let at = |token: &str| client(&sandbox, &server.base, Some(token));

    let out = run(at(&erin), &["start", "plan.yaml", "--require-tested"]);
    assert_code(
        &out,
        5,
        "start --require-tested of an untested plan, through the server",
    );
    assert!(
        stderr(&out).contains("refusing to start"),
        "{}",
        stderr(&out)
    );
    let out = run(at(&erin), &["start", "plan.yaml"]);
    assert_code(&out, 0, "start");
    let rel = stdout(&out).trim().to_string();
    assert_code(
        &run(at(&erin), &["request", &rel, "--reason", "500s"]),
        0,
        "request",
    );
    assert_code(
        &run(at(&carol), &["decide", &rel, "approve", "--reason", "go"]),
        0,
        "approve",
    );
    let owner = token(&sandbox, "owner@example.com", "viewer");
    let out = run(at(&erin), &["start", "plan.yaml", "--require-accepted"]);
    assert_code(&out, 5, "start --require-accepted before the acceptance");
    assert_code(&run(at(&owner), &["accept", "plan.yaml"]), 0, "accept");
    let out = run(at(&erin), &["execute", &rel]);
    assert_code(&out, 6, "the downgrade fails");
    let run_id = stderr(&out)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| w.starts_with("run-"))
        .unwrap_or_else(|| panic!("a run id in: {}", stderr(&out)))
        .to_string();
    let status = run(at(&erin), &["status", &run_id]);
    assert!(
        stdout(&status).contains("relation \"orders_v2\" does not exist"),
        "status through the server shows what the step said:\n{}",
        stdout(&status)
    );
    let out = run(at(&mallory), &["retry", &run_id]);
    assert_code(&out, 5, "a retry by a performer outside the plan");
    assert!(
        stderr(&out).contains("execution.performers"),
        "{}",
        stderr(&out)
    );

    sandbox.write("fixed", "");
    assert_code(&run(at(&erin), &["retry", &run_id]), 0, "retry");
    let start = Instant::now();
    loop {
        let out = run(at(&erin), &["status", &rel, "--format", "json"]);
        let value: Value = serde_json::from_str(&stdout(&out)).expect("status JSON");
        if value["outcome"] == "rolled_back" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the release did not roll back: {value:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = run(at(&erin), &["status"]);
    assert!(
        stdout(&list)
            .lines()
            .any(|l| l.starts_with(&rel) && l.contains("rolled_back")),
        "{}",
        stdout(&list)
    );
}
