//! Issue 14's honest signals, through the binary against real loopback HTTP servers:
//! - a service the test stops trips its `on_error: fail` criterion within trips_after × every,
//!   and the verdict reads `degrading` (never `healthy`) while it fails below trips_after;
//! - a rehearsal is sealed: the environment's `env` beats a step's own, channels it does not
//!   override hear nothing, and a URL its `urls` do not rewrite refuses the rehearsal;
//! - a webhook answering 503, 503, 200 gets `completed` before `backout run` exits, and what
//!   cannot be delivered within the grace is named;
//! - payloads: a notify step posts event `message`, a template sets the webhook's summary,
//!   decisions count approvals, and `request` asks the deciders at once.

mod support;

use std::time::{Duration, Instant};

use backout_testkit::{Answer, HttpSink, Request};
use serde_json::Value;
use support::Sandbox;

/// An HTTP service on a loopback port (`backout-testkit`'s sink) that answers the given
/// statuses in order, then the last one (200 when none is given) to every further request, with
/// the body `ok`; `stop` makes it refuse connections from then on.
fn http(statuses: &[u16]) -> HttpSink {
    let answer = |status| Answer {
        body: "ok\n",
        ..Answer::status(status)
    };
    let (last, first) = statuses.split_last().unwrap_or((&200, &[]));
    HttpSink::answering(answer(*last))
        .first(first.iter().map(|status| answer(*status)))
        .start()
}

/// Every journal event, oldest first (`backout audit export`).
fn events(sandbox: &Sandbox) -> Vec<Value> {
    sandbox.backout(&["audit", "export"]).code(0).json_lines()
}

fn verdicts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .filter_map(|e| e["payload"]["verdict"].as_str().map(str::to_string))
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 14 item 1 and 2: the service itself going down is the loudest signal. With
/// `on_error: fail`, every 1s and trips_after 3, `watch` exits 3 (rollback required) within
/// about 3 s of the service being stopped; on the way the verdict is `degrading`, never
/// `healthy`, and watch keeps watching through it.
#[test]
fn a_stopped_service_trips_its_on_error_fail_criterion() {
    let mut service = http(&[]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"criteria:
  rollback_when:
    - id: health
      http: {{ url: "{}" }}
      on_error: fail
      every: 1s
      trips_after: 3
      timeout: 2s
window: {{ closes_after: 1h }}
communication:
  channels:
    log: {{ command: 'cat >> "${{WORK}}/notices"; echo >> "${{WORK}}/notices"' }}
  notify:
    degrading: [log]
    rollback_required: [log]
"#,
            service.url_for("/healthz")
        ),
    );
    let release = sandbox.start_release(&plan);
    let watch = sandbox.cli().args(["watch", &release]).start();
    wait_until("a passing measurement", Duration::from_secs(10), || {
        events(&sandbox)
            .iter()
            .any(|e| e["kind"] == "measurement" && e["payload"]["class"] == "passing")
    });
    service.stop();
    let stopped = Instant::now();
    // The watch of a service that went down requires a rollback.
    let out = watch.ended(Duration::from_secs(20)).code(3);
    let took = stopped.elapsed();
    // trips_after × every = 3 s; a measurement may have been due just before the stop.
    assert!(
        took < Duration::from_millis(3 * 1000 + 1500),
        "tripped {took:?} after the service stopped"
    );
    let events = events(&sandbox);
    let verdicts = verdicts(&events);
    assert_eq!(
        verdicts,
        ["healthy", "degrading", "rollback_required"],
        "{}",
        out.stdout()
    );
    let failing: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "measurement" && e["payload"]["class"] == "failing")
        .collect();
    assert_eq!(failing.len(), 3, "three failing measurements trip it");
    let reason = failing[0]["payload"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("source error:") && reason.ends_with("(on_error: fail)"),
        "the error is the evidence: {reason}"
    );
    let degrading = events
        .iter()
        .find(|e| e["kind"] == "verdict" && e["payload"]["verdict"] == "degrading")
        .expect("a degrading verdict");
    assert_eq!(
        degrading["payload"]["evidence"]["criteria"][0]["status"], "failing",
        "{degrading:#}"
    );
    assert!(
        out.stdout().contains("degrading"),
        "watch prints the degrading verdict:\n{}",
        out.stdout()
    );
    // Announced once for the episode (two failing measurements, one notice), then the trip.
    let mut notices: Vec<String> = sandbox
        .read("notices")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let notice: Value = serde_json::from_str(l).expect("a notice per line");
            notice["event"].as_str().unwrap_or("").to_string()
        })
        .collect();
    notices.sort();
    assert_eq!(notices, ["degrading", "rollback_required"]);
}

/// The same service down under the default `on_error: inconclusive`: the first error is never
/// passing (`erring`, verdict `degrading`), and `check` still exits 0 for degrading.
#[test]
fn an_error_since_the_last_good_measurement_is_never_healthy() {
    let mut service = http(&[]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"criteria:
  rollback_when:
    - {{ id: health, http: {{ url: "{}" }}, every: 1s, errors_after: 3, timeout: 2s }}
window: {{ closes_after: 1h }}
"#,
            service.url_for("/healthz")
        ),
    );
    let release = sandbox.start_release(&plan);
    // Check of a healthy service.
    let first = sandbox.backout(&["check", &release]).code(0);
    assert!(
        first.stdout().contains("verdict: healthy"),
        "{}",
        first.stdout()
    );
    service.stop();
    // The next measurement is due a second after the first.
    std::thread::sleep(Duration::from_millis(1100));
    // Check: degrading exits 0 like healthy.
    let second = sandbox.backout(&["check", &release]).code(0);
    let text = second.stdout();
    assert!(text.contains("erring"), "{text}");
    assert!(text.contains("verdict: degrading (health)"), "{text}");
}

/// A rehearsal whose step points at a "prod" directory through its own `env` writes only into
/// "staging": `testing.overrides.staging.env` wins. Its `started`/`completed` reach neither the
/// production channel nor anything else, and the output says so.
#[test]
fn a_rehearsal_writes_only_where_its_environment_says_and_tells_no_production_channel() {
    let prod_hook = http(&[]);
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.file("prod")).expect("prod dir");
    std::fs::create_dir(sandbox.file("staging")).expect("staging dir");
    let body = format!(
        r#"procedure:
  steps:
    - id: write
      run: 'echo rolled-back > "$ORDERS_ROOT/marker"'
      env: {{ ORDERS_ROOT: "${{WORK}}/prod" }}
communication:
  channels:
    team: {{ webhook: "{}" }}
  notify:
    started: [team]
    completed: [team]
testing:
  rehearse_in: staging
  overrides:
    staging:
      env: {{ ORDERS_ROOT: "${{WORK}}/staging" }}
"#,
        prod_hook.url_for("/hook")
    );
    let plan = sandbox.plan("plan.yaml", &body);
    let out = sandbox
        .backout(&["rehearse", &plan.display().to_string(), "--env", "staging"])
        .code(0);
    assert!(
        sandbox.exists("staging/marker"),
        "the staging dir was written"
    );
    assert!(
        !sandbox.exists("prod/marker"),
        "the prod dir was not touched"
    );
    assert!(
        out.stderr().contains("notifications: nowhere"),
        "{}",
        out.stderr()
    );
    assert!(
        prod_hook.requests().is_empty(),
        "{:?}",
        prod_hook.requests()
    );
    let listed = sandbox.backout(&["deliveries", "--format", "json"]).json();
    assert_eq!(listed, serde_json::json!([]), "nothing was queued");

    // With the environment's own channel, the rehearsal tells it (and still not production).
    let staging_hook = http(&[]);
    let sealed = body.replace(
        "      env: { ORDERS_ROOT: \"${WORK}/staging\" }\n",
        &format!(
            "      env: {{ ORDERS_ROOT: \"${{WORK}}/staging\" }}\n      channels:\n        team: {{ webhook: \"{}\" }}\n",
            staging_hook.url_for("/staging-hook")
        ),
    );
    let plan = sandbox.plan("sealed.yaml", &sealed);
    // Rehearse with staging channels.
    let out = sandbox
        .backout(&["rehearse", &plan.display().to_string(), "--env", "staging"])
        .code(0);
    assert!(
        out.stderr()
            .contains("only to testing.overrides.staging.channels (team)"),
        "{}",
        out.stderr()
    );
    let mut events: Vec<String> = staging_hook
        .requests()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("").to_string())
        .collect();
    // Sent concurrently: in either order.
    events.sort();
    assert_eq!(events, ["completed", "started"]);
    assert!(
        prod_hook.requests().is_empty(),
        "{:?}",
        prod_hook.requests()
    );
}

/// A rehearsal that would call a URL its environment does not rewrite refuses to start (exit
/// 5, naming the URL) and calls nothing; with the rewrite it reaches the staging host only.
#[test]
fn a_rehearsal_refuses_a_url_its_environment_does_not_rewrite() {
    let prod = http(&[]);
    let staging = http(&[]);
    let sandbox = Sandbox::new();
    let body = format!(
        r#"procedure:
  steps:
    - id: deploy
      http: {{ method: POST, url: "{}" }}
testing:
  rehearse_in: staging
"#,
        prod.url_for("/deploy")
    );
    let plan = sandbox.plan("plan.yaml", &body);
    // Rehearse reaching production.
    let out = sandbox
        .backout(&["rehearse", &plan.display().to_string()])
        .code(5);
    let text = out.stderr();
    assert!(
        text.contains(&format!(
            "step `deploy` reaches {}",
            prod.url_for("/deploy")
        )),
        "{text}"
    );
    assert!(text.contains("testing.shared_hosts"), "{text}");
    assert!(prod.requests().is_empty(), "{:?}", prod.requests());
    assert!(sandbox.run_ids().is_empty(), "no run was started");

    let rewritten = format!(
        "{body}  overrides:\n    staging:\n      urls: {{ \"{}\": \"{}\" }}\n",
        prod.base(),
        staging.base()
    );
    let plan = sandbox.plan("rewritten.yaml", &rewritten);
    // Rehearse with the rewrite.
    sandbox
        .backout(&["rehearse", &plan.display().to_string()])
        .code(0);
    let reached: Vec<String> = staging.requests().iter().map(|r| r.line.clone()).collect();
    assert_eq!(reached, ["POST /deploy HTTP/1.1"]);
    assert!(prod.requests().is_empty(), "{:?}", prod.requests());
}

/// Issue 14 item 4: a webhook answering 503, 503, 200 receives `completed` before `backout run`
/// exits (retried within the grace), with the plan's template as the summary; a notify step
/// posts event `message`.
#[test]
fn a_webhook_answering_503_twice_gets_completed_before_run_exits() {
    let hook = http(&[503, 503, 200]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"procedure:
  steps:
    - id: change
      run: "true"
communication:
  channels:
    hook: {{ webhook: "{}" }}
  notify:
    completed: [hook]
  templates:
    completed: "svc is back on the old version (run {{{{ run.id }}}}, {{{{ run.steps.done }}}} step done)"
"#,
            hook.url_for("/hook")
        ),
    );
    let started = Instant::now();
    let out = sandbox
        .break_glass(&plan)
        .env("BACKOUT_DELIVERY_GRACE", "30s")
        .run()
        .code(0);
    let took = started.elapsed();
    let seen = hook.requests();
    assert_eq!(seen.len(), 3, "503, 503, then 200: {seen:?}");
    let notice = seen[2].json();
    assert_eq!(notice["event"], "completed");
    let run = sandbox.only_run();
    assert_eq!(
        notice["summary"],
        format!("svc is back on the old version (run {run}, 1 step done)"),
        "the template is the summary"
    );
    assert!(
        !out.stderr().contains("not delivered yet"),
        "{}",
        out.stderr()
    );
    // Backoff 1 s then 2 s: well within the 30 s grace.
    assert!(took < Duration::from_secs(15), "run took {took:?}");
}

/// What cannot be delivered within the grace is named, with how to send it.
#[test]
fn undelivered_notifications_are_named_when_the_grace_ends() {
    let hook = http(&[503]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"procedure:
  steps:
    - id: tell
      notify: [hook]
      message: "draining the EU pool"
communication:
  channels:
    hook: {{ webhook: "{}" }}
  notify:
    completed: [hook]
"#,
            hook.url_for("/hook")
        ),
    );
    let out = sandbox
        .break_glass(&plan)
        .env("BACKOUT_DELIVERY_GRACE", "2s")
        .run()
        .code(0);
    let text = out.stderr();
    assert!(text.contains("not delivered yet"), "{text}");
    assert!(text.contains("`completed` to channel `hook`"), "{text}");
    assert!(text.contains("`message` to channel `hook`"), "{text}");
    assert!(text.contains("backout deliveries --send"), "{text}");
    assert!(text.contains("HTTP 503"), "{text}");
    let events: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(events.contains(&"message".to_string()), "{events:?}");
    assert!(!events.contains(&"started".to_string()), "{events:?}");
    let message = hook
        .requests()
        .iter()
        .map(Request::json)
        .find(|n| n["event"] == "message")
        .expect("a message notice");
    assert_eq!(
        message["summary"], "svc in test: draining the EU pool",
        "{message:#}"
    );
}

/// Issue 14 item 5: `request` asks the deciders at once (no watcher), and a decision counts
/// the approvals toward the quorum.
#[test]
fn request_asks_the_deciders_at_once_and_decisions_count_approvals() {
    let hook = http(&[]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"people:
  ops: [ops@example.com]
  deciders: [carol, dave]
criteria:
  rollback_when:
    - {{ id: never, command: "true" }}
window: {{ closes_after: 1h }}
authorization: {{ deciders: deciders, quorum: 2 }}
execution: {{ performers: ops }}
communication:
  channels:
    hook: {{ webhook: "{}" }}
  notify:
    decision_requested: [hook]
    decision: [hook]
"#,
            hook.url_for("/hook")
        ),
    );
    let release = sandbox.start_release(&plan);
    sandbox
        .backout(&["request", &release, "--reason", "customers see errors"])
        .code(0);
    let kinds: Vec<String> = events(&sandbox)
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect();
    assert!(
        kinds.contains(&"decision_requested".to_string()),
        "{kinds:?}"
    );
    let asked: Vec<Value> = hook.requests().iter().map(Request::json).collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(asked[0]["event"], "decision_requested");
    assert_eq!(asked[0]["deciders"], serde_json::json!(["carol", "dave"]));

    // Carol approves.
    sandbox
        .backout(&[
            "--as", "carol", "decide", &release, "approve", "--reason", "agreed",
        ])
        .code(0);
    let decision = hook
        .requests()
        .iter()
        .map(Request::json)
        .find(|n| n["event"] == "decision")
        .expect("a decision notice");
    assert!(
        decision["summary"]
            .as_str()
            .unwrap_or("")
            .ends_with("carol approved the rollback (1 of 2 approvals)"),
        "{decision:#}"
    );
    // A second request while the deciders are already asked does not ask again.
    // Second request.
    sandbox
        .backout(&["request", &release, "--reason", "still bad"])
        .code(0);
    let asked = hook
        .requests()
        .iter()
        .filter(|r| r.json()["event"] == "decision_requested")
        .count();
    assert_eq!(asked, 1);
}
