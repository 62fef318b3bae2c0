//! Scheduled rehearsals end to end: a real `backout serve` rehearses a registered, accepted
//! plan on its `testing.schedule`, so its evidence is renewed before `max_age` runs out and
//! the plan stays "Tested: yes" for longer than `max_age` with nobody rehearsing by hand; a
//! plan whose scheduled rehearsal fails is journaled as `rehearsal_failed` and announced on
//! its `testing.notify` channel (a real command channel writing to a file).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::Server;
use support::{Sandbox, assert_code, stdout, text, wait_until};

/// Evidence lives 6 s; the schedule renews it every 2 s (and `renew_before` 3 s before it
/// would expire, whatever the schedule says).
const RENEWED: &str = r#"people:
  performers: [pat@example.com]
execution: { performers: performers }
procedure:
  steps:
    - id: restart
      run: 'echo "$(date +%s%N)" >> "${WORK}/rehearsed"'
      expected: 1s
      idempotent: true
testing:
  rehearse_in: staging
  max_age: 6s
  schedule: every 2s
  time_zone: Europe/Berlin
  renew_before: 3s
"#;

const FAILING: &str = r#"people:
  performers: [pat@example.com]
execution: { performers: performers }
procedure:
  steps:
    - id: restart
      run: 'echo "the staging host refused the deploy" >&2; exit 1'
      expected: 1s
      on_failure: halt
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
    pager: { command: 'cat >> "${WORK}/pager"' }
  notify:
    failed: [inbox, pager]
    rehearsal_failed: [inbox, pager]
testing:
  rehearse_in: staging
  schedule: every 1h
  notify: [inbox]
"#;

fn export(sandbox: &Sandbox, plan: &str) -> Value {
    let out = sandbox.run(&["evidence", "export", plan]);
    assert_code(&out, 0, "evidence export");
    serde_json::from_slice(&out.stdout).expect("evidence export is JSON")
}

/// Registers and accepts `body` as plan.yaml; returns its path.
fn registered(sandbox: &Sandbox, body: &str) -> String {
    let plan = sandbox.plan("plan.yaml", body);
    let plan = plan.to_str().expect("utf-8 path").to_string();
    assert_code(
        &sandbox.run_as("owner@example.com", &["accept", &plan]),
        0,
        "accept",
    );
    assert_code(&sandbox.run(&["plans", "add", &plan]), 0, "plans add");
    plan
}

#[test]
fn a_plan_left_alone_longer_than_max_age_stays_tested_because_it_rehearses_itself() {
    let sandbox = Sandbox::new();
    let plan = registered(&sandbox, RENEWED);
    let listed = sandbox.run(&["plans", "list"]);
    assert!(
        stdout(&listed).contains("every 2s (Europe/Berlin)"),
        "{}",
        text(&listed)
    );
    let before = export(&sandbox, &plan);
    assert_eq!(before["tested"], false, "nobody rehearsed it yet: {before}");

    let server = Server::start(&sandbox);
    wait_until(
        Duration::from_secs(60),
        "the first scheduled rehearsal",
        || export(&sandbox, &plan)["tested"] == true,
    );
    // From now on, for more than twice max_age, the evidence never lapses.
    let first = Instant::now();
    while first.elapsed() < Duration::from_secs(14) {
        let now = export(&sandbox, &plan);
        assert_eq!(
            now["tested"],
            true,
            "the evidence lapsed {:?} after the first rehearsal: {now}\nserver log:\n{}",
            first.elapsed(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let evidence = export(&sandbox, &plan)["evidence"]
        .as_array()
        .expect("evidence")
        .clone();
    assert!(
        evidence.len() >= 4,
        "the schedule rehearsed every 2 s: {} pieces of evidence in 14 s",
        evidence.len()
    );
    assert!(
        evidence.iter().all(|e| e["actor"] == "backout:schedule"),
        "{evidence:?}"
    );
    // The document says so.
    let rendered = sandbox.run(&["render", &plan]);
    assert_code(&rendered, 0, "render");
    assert!(
        stdout(&rendered).contains("Tested: yes") && stdout(&rendered).contains("backout:schedule"),
        "{}",
        stdout(&rendered)
    );
    if let Some(line) = stdout(&rendered)
        .lines()
        .find(|l| l.contains("Tested: yes"))
    {
        eprintln!("after 14 s with max_age 6 s: {line}");
    }
    let (code, _) = server.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0));
}

#[test]
fn a_failing_scheduled_rehearsal_is_journaled_and_announced_on_its_testing_channel() {
    let sandbox = Sandbox::new();
    let plan = registered(&sandbox, FAILING);
    let server = Server::start(&sandbox);
    wait_until(
        Duration::from_secs(60),
        "the failure's notifications",
        || {
            let inbox = sandbox.read("inbox");
            inbox.contains(r#""event":"failed""#) && inbox.contains(r#""event":"rehearsal_failed""#)
        },
    );
    let inbox = sandbox.read("inbox");
    assert!(
        inbox.contains("staging") && inbox.contains("restart"),
        "the message names the environment and the step:\n{inbox}"
    );
    // Sealed: the production pager never hears about a rehearsal.
    assert!(
        sandbox.read("pager").is_empty(),
        "{}",
        sandbox.read("pager")
    );
    let journal = sandbox.run(&["audit", "export"]);
    assert_code(&journal, 0, "audit export");
    let failed: Vec<Value> = stdout(&journal)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "rehearsal_failed")
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "one attempt (the schedule says every 1h): {failed:?}"
    );
    assert_eq!(failed[0]["payload"]["environment"], "staging");
    assert!(
        failed[0]["payload"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("failed")),
        "{}",
        failed[0]
    );
    assert_eq!(export(&sandbox, &plan)["tested"], false);
    // The document says the last scheduled rehearsal failed, and when.
    let rendered = sandbox.run(&["render", &plan]);
    assert_code(&rendered, 0, "render");
    assert!(
        stdout(&rendered).contains("Last scheduled rehearsal failed on")
            && stdout(&rendered).contains("ended failed"),
        "{}",
        stdout(&rendered)
    );
    drop(server);
}

/// Rehearsed by hand, no schedule: the server does not rehearse it, it announces the evidence
/// as expiring `renew_before` before `max_age` runs out, once.
const UNSCHEDULED: &str = r#"people:
  performers: [pat@example.com]
execution: { performers: performers }
procedure:
  steps:
    - id: restart
      run: 'true'
      expected: 1s
      idempotent: true
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
  notify:
    evidence_expiring: [inbox]
testing:
  rehearse_in: staging
  max_age: 8s
  renew_before: 5s
  notify: [inbox]
"#;

#[test]
fn evidence_no_schedule_renews_is_announced_as_expiring_before_max_age_runs_out() {
    let sandbox = Sandbox::new();
    let plan = registered(&sandbox, UNSCHEDULED);
    let rehearsed = sandbox.run_as("pat@example.com", &["rehearse", &plan]);
    assert_code(&rehearsed, 0, "rehearse");
    let rehearsed_at = Instant::now();
    let (pat, viewer) = (
        support::server::token(&sandbox, "pat@example.com", "performer"),
        support::server::token(&sandbox, "vic@example.com", "viewer"),
    );
    let server = Server::start(&sandbox);
    // The API registers as `plans add` does (the same content: already registered).
    let source = std::fs::read_to_string(&plan).expect("plan");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let http = support::server::client();
    let url = server.url("/api/v1/plans/register");
    let body = serde_json::json!({ "plan": source });
    let (status, answer) = runtime.block_on(support::server::call(
        &http,
        "POST",
        &url,
        Some(&pat),
        Some(body.clone()),
    ));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["already"], true, "{answer}");
    let (status, answer) = runtime.block_on(support::server::call(
        &http,
        "POST",
        &url,
        Some(&viewer),
        Some(body),
    ));
    assert_eq!(status, 403, "a viewer may not register: {answer}");
    let expiring = || -> Vec<Value> {
        let out = sandbox.run(&["audit", "export"]);
        stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "evidence_expiring")
            .collect()
    };
    wait_until(Duration::from_secs(30), "evidence_expiring", || {
        !expiring().is_empty()
    });
    let announced_after = rehearsed_at.elapsed();
    assert!(
        announced_after >= Duration::from_secs(2) && announced_after < Duration::from_secs(8),
        "announced {announced_after:?} after the rehearsal: not within renew_before (5 s) of max_age (8 s)"
    );
    std::thread::sleep(Duration::from_secs(2));
    let events = expiring();
    assert_eq!(events.len(), 1, "announced once: {events:?}");
    assert!(events[0]["payload"]["expires_at"].is_string());
    let evidence = export(&sandbox, &plan)["evidence"]
        .as_array()
        .expect("evidence")
        .len();
    wait_until(
        Duration::from_secs(30),
        "the expiring evidence's notice",
        || {
            sandbox
                .read("inbox")
                .contains(r#""event":"evidence_expiring""#)
        },
    );
    assert_eq!(
        evidence, 1,
        "no schedule: the server rehearses nothing by itself"
    );
    drop(server);
}
