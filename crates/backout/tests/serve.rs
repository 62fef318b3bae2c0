//! `backout serve` end to end: the built binary on a loopback port, driven over HTTP by a real
//! client, with tokens made by `backout token create`. Roles (401, 403), the plan's rules on
//! top of them, request → decide → execute → a manual step confirmed through the API while an
//! SSE stream follows the run, `/healthz` and `/metrics`, automatic rollbacks executed by the
//! server's watcher, audit verify (and a row modified behind the store's back), and a SIGTERM
//! that stops cleanly with a restart that continues the run.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Sandbox;
use support::server::{Server, approved_and_executed, call, client, error_of, follow, token};

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

/// Polls `GET /api/v1/runs/{id}` until `ready` holds.
async fn wait_run(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    run: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = call(
            client,
            "GET",
            &server.url(&format!("/api/v1/runs/{run}")),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {body:#}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn step_state<'a>(run: &'a Value, step: &str) -> &'a str {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step_id"] == step))
        .and_then(|s| s["state"].as_str())
        .unwrap_or("pending")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_enforces_roles_and_the_plan_and_runs_a_rollback_live() {
    let sandbox = Sandbox::new();
    let viewer = token(&sandbox, "vic@example.com", "viewer");
    let performer = token(&sandbox, "erin@example.com", "performer");
    let decider = token(&sandbox, "carol@example.com", "decider");
    let stranger = token(&sandbox, "mallory@example.com", "decider");
    let server = Server::start(&sandbox);
    let client = client();

    // No token, a forged one, the wrong role.
    let (status, body) = call(&client, "GET", &server.url("/api/v1/releases"), None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body).0, "unauthorized");
    // The last character changed (to another one: a token ending in 0 stays valid with 0).
    let last = if viewer.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &viewer[..viewer.len() - 1]);
    let (status, _) = call(
        &client,
        "GET",
        &server.url("/api/v1/releases"),
        Some(&forged),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let plan = support::plan(BODY);
    let (status, body) = call(
        &client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(&viewer),
        Some(json!({ "plan": plan })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "forbidden");
    assert!(
        message.contains("role `viewer`") && message.contains("`performer`"),
        "{message}"
    );
    // A plan with errors: 422 with its diagnostics.
    let (status, body) = call(
        &client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(&performer),
        Some(json!({ "plan": "version: 1\nrelease: {}\n" })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_of(&body).0, "invalid_plan");
    assert!(
        body["error"]["details"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );

    // Open a release; a viewer reads it.
    let (status, body) = call(
        &client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(&performer),
        Some(json!({ "plan": plan, "version": "2.0.1" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let rel = body["id"].as_str().expect("id").to_string();
    assert_eq!(body["version"], "2.0.1");
    let (status, body) = call(
        &client,
        "GET",
        &server.url(&format!("/api/v1/releases/{rel}")),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "healthy", "{body}");
    assert!(body.get("plan_source").is_none());
    let (status, body) = call(
        &client,
        "GET",
        &server.url("/api/v1/releases"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["releases"][0]["id"], rel.as_str());

    // Request, then decisions: the plan's deciders rule applies to a decider token.
    let (status, _) = call(
        &client,
        "POST",
        &server.url(&format!("/api/v1/releases/{rel}/request")),
        Some(&performer),
        Some(json!({ "reason": "checkout emails are empty" })),
    )
    .await;
    assert_eq!(status, 200);
    let decisions = server.url(&format!("/api/v1/releases/{rel}/decisions"));
    let (status, body) = call(
        &client,
        "POST",
        &decisions,
        Some(&performer),
        Some(json!({ "decision": "approve", "reason": "x" })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &client,
        "POST",
        &decisions,
        Some(&stranger),
        Some(json!({ "decision": "approve", "reason": "looks bad" })),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "refused");
    assert!(
        message.contains("`mallory@example.com` may not decide: only `release-managers` (carol@example.com) may (authorization.deciders)"),
        "{message}"
    );
    let (status, body) = call(
        &client,
        "POST",
        &decisions,
        Some(&decider),
        Some(json!({ "decision": "approve", "reason": "x", "actor": "someone-else" })),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(error_of(&body).1.contains("actor"), "{body}");
    let (status, body) = call(
        &client,
        "POST",
        &decisions,
        Some(&decider),
        Some(json!({ "decision": "approve", "reason": "customers affected" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approved"], true);
    assert_eq!(body["actor"], "carol@example.com");

    // Nothing of an unaccepted plan is executed on the server; only its deployment engineer
    // (or an admin) accepts it.
    let execute = server.url(&format!("/api/v1/releases/{rel}/execute"));
    let (status, body) = call(&client, "POST", &execute, Some(&performer), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        error_of(&body).1.contains("not accepted")
            && error_of(&body).1.contains("owner@example.com"),
        "{body}"
    );
    let accept = server.url("/api/v1/plans/accept");
    let (status, body) = call(
        &client,
        "POST",
        &accept,
        Some(&performer),
        Some(json!({ "plan": plan })),
    )
    .await;
    assert_eq!(status, 403, "a performer accepts a plan: {body}");
    let owner = token(&sandbox, "owner@example.com", "viewer");
    support::server::accept(&client, &accept, &owner, &plan).await;

    // The decider may not execute (not a performer of the plan); the performer does.
    let (status, body) = call(&client, "POST", &execute, Some(&decider), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).1.contains("execution.performers"), "{body}");
    let (status, body) = call(&client, "POST", &execute, Some(&performer), None).await;
    assert_eq!(status, 202, "{body}");
    let run = body["run_id"].as_str().expect("run id").to_string();

    // Follow the run live as a viewer; confirm the manual step (as the performer) when it waits.
    let stream = client
        .get(server.url(&format!("/api/v1/runs/{run}/events")))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let confirm = server.url(&format!(
        "/api/v1/runs/{run}/steps/confirm-payments/confirm"
    ));
    let (viewer_c, performer_c, client_c) = (viewer.clone(), performer.clone(), client.clone());
    let events = follow(
        stream,
        Duration::from_secs(30),
        async |name: &str, event: &Value| {
            if name == "journal" && event["kind"] == "manual_step_waiting" {
                let (status, body) = call(
                    &client_c,
                    "POST",
                    &confirm,
                    Some(&viewer_c),
                    Some(json!({})),
                )
                .await;
                assert_eq!(status, 403, "a viewer may not confirm: {body}");
                let (status, body) = call(
                    &client_c,
                    "POST",
                    &confirm,
                    Some(&performer_c),
                    Some(json!({ "note": "test order seen" })),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        },
    )
    .await;
    let kinds: Vec<String> = events
        .iter()
        .filter(|(name, _)| name == "journal")
        .map(|(_, e)| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or(""),
                e["step_id"].as_str().unwrap_or("")
            )
        })
        .collect();
    for expected in [
        "run_started ",
        "step_started drain",
        "step_succeeded drain",
        "manual_step_waiting confirm-payments",
        "step_confirmed confirm-payments",
        "step_started finish",
        "step_succeeded finish",
        "run_succeeded ",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "{expected:?} not in {kinds:?}"
        );
    }
    let seqs: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "journal")
        .map(|(_, e)| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {seqs:?}"
    );
    let (name, end) = events.last().expect("events");
    assert_eq!(name, "end");
    assert_eq!(end["state"], "succeeded");

    let body = wait_run(&client, &server, &viewer, &run, "the run to succeed", |r| {
        r["run"]["state"] == "succeeded"
    })
    .await;
    assert_eq!(body["run"]["actor"], "erin@example.com");
    assert_eq!(sandbox.read("done"), "drained\nfinished\n");
    let (status, body) = call(
        &client,
        "GET",
        &server.url(&format!("/api/v1/releases/{rel}")),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["decision"]
            .as_str()
            .is_some_and(|d| d.contains("executed")),
        "{body}"
    );
    let (status, body) = call(
        &client,
        "GET",
        &server.url(&format!("/api/v1/releases/{rel}/deliveries")),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The run's success concludes the release right after: wait for that before counting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = call(
            &client,
            "GET",
            &server.url(&format!("/api/v1/releases/{rel}")),
            Some(&viewer),
            None,
        )
        .await;
        if body["outcome"] == "rolled_back" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the release was never concluded: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Health and metrics need no token.
    let (status, body) = call(&client, "GET", &server.url("/healthz"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        // The rollback concluded the release: no longer open, and counted by its outcome.
        "backout_open_releases 0",
        "backout_releases{state=\"rolled_back\"} 1",
        "backout_runs{state=\"succeeded\"} 1",
        "backout_delivery_failures 0",
        "# TYPE backout_release_verdicts gauge",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} in:\n{metrics}"
        );
    }
    let (status, body) = call(
        &client,
        "GET",
        &server.url("/api/v1/audit/verify"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true, "{body}");

    let (code, log) = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // The journal verifies, then a row modified behind the store's back is found at its seq.
    let out = sandbox.run(&["audit", "verify"]);
    support::assert_code(&out, 0, "audit verify");
    let verified = support::stdout(&out);
    assert!(
        verified.contains("events verified: the hash chain holds"),
        "{verified}"
    );
    let out = sandbox.run(&["audit", "export"]);
    support::assert_code(&out, 0, "audit export");
    let exported: Vec<Value> = support::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        exported
            .windows(2)
            .all(|w| w[1]["seq"].as_u64() == w[0]["seq"].as_u64().map(|s| s + 1))
    );
    let decision = exported
        .iter()
        .find(|e| e["kind"] == "decision")
        .expect("the decision is journaled");
    let seq = decision["seq"].as_i64().expect("seq");
    tamper(&sandbox, seq).await;
    let out = sandbox.run(&["audit", "verify"]);
    support::assert_code(&out, 1, "audit verify of a tampered journal");
    assert!(
        support::stderr(&out).contains(&format!("broken at event seq {seq}: hash does not match")),
        "{}",
        support::stderr(&out)
    );
    let out = sandbox.run(&["audit", "verify", "--format", "json"]);
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["broken_at"].as_i64(), Some(seq));
}

/// Rewrites the payload of event `seq` in the SQLite file, as an attacker with the file would
/// (dropping the append-only guard first).
async fn tamper(sandbox: &Sandbox, seq: i64) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", sandbox.db().display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the file");
    sqlx::query("DROP TRIGGER IF EXISTS events_are_append_only_update")
        .execute(&mut conn)
        .await
        .expect("drop guard");
    let changed =
        sqlx::query("UPDATE events SET payload = '{\"decision\":\"deny\"}' WHERE seq = ?")
            .bind(seq)
            .execute(&mut conn)
            .await
            .expect("tamper");
    assert_eq!(changed.rows_affected(), 1);
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_by_sigterm_exits_cleanly_and_the_next_one_continues_the_run() {
    let sandbox = Sandbox::new();
    let performer = token(&sandbox, "erin@example.com", "performer");
    let decider = token(&sandbox, "carol@example.com", "decider");
    let client = client();
    let server = Server::start(&sandbox);
    let (_rel, run) = approved_and_executed(
        &client,
        &server,
        BODY,
        &performer,
        &decider,
        &token(&sandbox, "owner@example.com", "viewer"),
    )
    .await;
    wait_run(
        &client,
        &server,
        &performer,
        &run,
        "the manual step to wait",
        |r| step_state(r, "confirm-payments") == "waiting_manual",
    )
    .await;
    // A stream open during shutdown ends; it does not hold the server up.
    let stream = client
        .get(server.url(&format!("/api/v1/runs/{run}/events")))
        .bearer_auth(&performer)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    let (code, log) = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    drop(stream);

    let server = Server::start(&sandbox);
    wait_run(
        &client,
        &server,
        &performer,
        &run,
        "the resumed run to wait again",
        |r| r["run"]["state"] == "running" && step_state(r, "confirm-payments") == "waiting_manual",
    )
    .await;
    let (status, body) = call(
        &client,
        "POST",
        &server.url(&format!(
            "/api/v1/runs/{run}/steps/confirm-payments/confirm"
        )),
        Some(&performer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body = wait_run(
        &client,
        &server,
        &performer,
        &run,
        "the run to succeed after the restart",
        |r| r["run"]["state"] == "succeeded",
    )
    .await;
    assert_eq!(step_state(&body, "finish"), "succeeded");
    assert_eq!(
        sandbox.read("done"),
        "drained\nfinished\n",
        "nothing ran twice"
    );
    assert!(
        server
            .log()
            .contains("resuming runs a previous executor left"),
        "{}",
        server.log()
    );
    let (code, log) = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
}

const AUTOMATIC: &str = r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
criteria:
  rollback_when:
    - { id: errors, command: "cat \"${WORK}/errors\"", fails_if: "> 5", every: 200ms, authorize: automatic }
window: { closes_after: 1h }
authorization: { deciders: release-managers }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: undo, run: "echo rolled back >> \"${WORK}/undone\"", expected: 1s }
communication:
  channels:
    pager: { command: 'echo "$BACKOUT_EVENT" >> "${WORK}/paged"' }
  notify: { inconclusive: [pager], rollback_required: [pager] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_executes_an_automatically_approved_rollback() {
    let sandbox = Sandbox::new();
    sandbox.write("errors", "0\n");
    let viewer = token(&sandbox, "vic@example.com", "viewer");
    let performer = token(&sandbox, "erin@example.com", "performer");
    let client = client();
    let server = Server::start(&sandbox);
    let plan = support::plan(AUTOMATIC);
    let (status, body) = call(
        &client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(&performer),
        Some(json!({ "plan": plan })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let rel = body["id"].as_str().expect("id").to_string();
    sandbox.write("errors", "9\n");
    // Until the plan is accepted its command criterion does not run on the server (measured
    // as an error saying so) and nothing is approved automatically.
    let start = Instant::now();
    loop {
        let journal = sandbox.run(&["audit", "export"]);
        let gated = String::from_utf8_lossy(&journal.stdout)
            .lines()
            .any(|l| l.contains("\"measurement\"") && l.contains("the plan is not accepted yet"));
        if gated {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no gated measurement:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sandbox.read("undone").is_empty(),
        "an unaccepted plan was executed"
    );
    // Nor does it run the plan's command channel: the delivery gives up, saying why.
    let start = Instant::now();
    loop {
        let out = sandbox.run(&["deliveries", &rel, "--format", "json"]);
        if String::from_utf8_lossy(&out.stdout).contains("command channels do not run") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no refused command delivery:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sandbox.read("paged").is_empty(),
        "an unaccepted plan's command channel ran"
    );
    let owner = token(&sandbox, "owner@example.com", "viewer");
    support::server::accept(&client, &server.url("/api/v1/plans/accept"), &owner, &plan).await;
    let start = Instant::now();
    while sandbox.read("undone").is_empty() || !sandbox.read("paged").contains("rollback_required")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no automatic rollback:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    loop {
        let (_, body) = call(
            &client,
            "GET",
            &server.url(&format!("/api/v1/releases/{rel}")),
            Some(&viewer),
            None,
        )
        .await;
        if body["decision"]
            .as_str()
            .is_some_and(|d| d.contains("backout:automatic") && d.contains("executed"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{body:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = sandbox.run(&["report", &rel, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let story: Vec<String> = report["events"]
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
        .collect();
    for expected in [
        "decision backout:automatic",
        "execution_started backout:automatic",
        "execution_finished backout:automatic",
    ] {
        assert!(
            story.iter().any(|s| s == expected),
            "{expected} in {story:?}"
        );
    }
    let (status, body) = call(
        &client,
        "GET",
        &server.url("/api/v1/releases"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["releases"][0]["verdict"], "rollback_required",
        "{body}"
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("backout_release_verdicts{verdict=\"rollback_required\"} 1"),
        "{metrics}"
    );
    assert_eq!(sandbox.read("undone"), "rolled back\n", "executed once");
    let (code, log) = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{log}");
}

/// `serve --run-as USER`: the server (root here, as in CI) runs the steps of a rollback as the
/// unprivileged user, with that user's HOME, never as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_run_as_runs_the_steps_as_the_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    if !rustix::process::getuid().is_root() {
        // Not root: the flag is refused with what to do, and nothing runs.
        let out = sandbox.run(&["serve", "--listen", "127.0.0.1:0", "--run-as", "nobody"]);
        assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
        assert!(support::stderr(&out).contains("needs root"));
        return;
    }
    // The user must reach the directory its steps write to.
    let out_dir = sandbox.file("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let performer = token(&sandbox, "erin@example.com", "performer");
    let decider = token(&sandbox, "carol@example.com", "decider");
    let owner = token(&sandbox, "owner@example.com", "viewer");
    let client = client();
    let server = Server::with_args(sandbox.command(), &["--run-as", "nobody"]);
    let (_rel, run) = approved_and_executed(
        &client,
        &server,
        r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: whoami, run: 'echo "$(id -u) $HOME" > "${WORK}/out/who"', expected: 1s }
"#,
        &performer,
        &decider,
        &owner,
    )
    .await;
    wait_run(&client, &server, &performer, &run, "the run to end", |r| {
        r["run"]["state"] == "succeeded" || r["run"]["state"] == "failed"
    })
    .await;
    let nobody = std::fs::read_to_string("/etc/passwd")
        .expect("/etc/passwd")
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            format!("{} {}", f[2], f[5])
        })
        .expect("a nobody user");
    let who = sandbox.read("out/who");
    assert_eq!(
        who.trim(),
        nobody,
        "the step ran as: {who:?}\n{}",
        server.log()
    );
    assert!(
        server.log().contains("steps and command criteria run as"),
        "{}",
        server.log()
    );
}
