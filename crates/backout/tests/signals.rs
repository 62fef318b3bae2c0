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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Background, Sandbox, assert_code, stderr, stdout};

/// One request a server saw: its request line and body.
#[derive(Clone, Debug)]
struct Request {
    line: String,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// An HTTP server on a loopback port that answers the given statuses in order (then the last
/// one, or 200, to every further request) and can be stopped: after `stop`, connections are
/// refused.
struct Http {
    base: String,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Http {
    fn start(statuses: &[u16]) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::<Request>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopped) = (seen.clone(), stop.clone());
        let statuses = statuses.to_vec();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let n = {
                    let mut seen = record.lock().expect("lock");
                    seen.push(Request {
                        line: line.trim().to_string(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    seen.len()
                };
                let status = statuses
                    .get(n - 1)
                    .or(statuses.last())
                    .copied()
                    .unwrap_or(200);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                );
            }
        });
        Http {
            base,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("lock").clone()
    }

    /// Stops listening: from now on, connections are refused.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every journal event, oldest first (`backout audit export`).
fn events(sandbox: &Sandbox) -> Vec<Value> {
    let out = sandbox.run(&["audit", "export"]);
    assert_code(&out, 0, "audit export");
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect()
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
    let mut service = Http::start(&[]);
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
            service.url("/healthz")
        ),
    );
    let out = sandbox.run(&["start", &plan.display().to_string()]);
    assert_code(&out, 0, "start");
    let release = stdout(&out).trim().to_string();
    let watch = Background::start(&sandbox, &["watch", &release]);
    wait_until("a passing measurement", Duration::from_secs(10), || {
        events(&sandbox)
            .iter()
            .any(|e| e["kind"] == "measurement" && e["payload"]["class"] == "passing")
    });
    service.stop();
    let stopped = Instant::now();
    let out = watch.finish(Duration::from_secs(20));
    let took = stopped.elapsed();
    assert_code(&out, 3, "watch of a service that went down");
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
        stdout(&out)
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
        stdout(&out).contains("degrading"),
        "watch prints the degrading verdict:\n{}",
        stdout(&out)
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
    let mut service = Http::start(&[]);
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        &format!(
            r#"criteria:
  rollback_when:
    - {{ id: health, http: {{ url: "{}" }}, every: 1s, errors_after: 3, timeout: 2s }}
window: {{ closes_after: 1h }}
"#,
            service.url("/healthz")
        ),
    );
    let out = sandbox.run(&["start", &plan.display().to_string()]);
    let release = stdout(&out).trim().to_string();
    let first = sandbox.run(&["check", &release]);
    assert_code(&first, 0, "check of a healthy service");
    assert!(
        stdout(&first).contains("verdict: healthy"),
        "{}",
        stdout(&first)
    );
    service.stop();
    // The next measurement is due a second after the first.
    std::thread::sleep(Duration::from_millis(1100));
    let second = sandbox.run(&["check", &release]);
    assert_code(&second, 0, "check: degrading exits 0 like healthy");
    let text = stdout(&second);
    assert!(text.contains("erring"), "{text}");
    assert!(text.contains("verdict: degrading (health)"), "{text}");
}

/// A rehearsal whose step points at a "prod" directory through its own `env` writes only into
/// "staging": `testing.overrides.staging.env` wins. Its `started`/`completed` reach neither the
/// production channel nor anything else, and the output says so.
#[test]
fn a_rehearsal_writes_only_where_its_environment_says_and_tells_no_production_channel() {
    let prod_hook = Http::start(&[]);
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
        prod_hook.url("/hook")
    );
    let plan = sandbox.plan("plan.yaml", &body);
    let out = sandbox.run(&["rehearse", &plan.display().to_string(), "--env", "staging"]);
    assert_code(&out, 0, "rehearse");
    assert!(
        sandbox.exists("staging/marker"),
        "the staging dir was written"
    );
    assert!(
        !sandbox.exists("prod/marker"),
        "the prod dir was not touched"
    );
    assert!(
        stderr(&out).contains("notifications: nowhere"),
        "{}",
        stderr(&out)
    );
    assert!(
        prod_hook.requests().is_empty(),
        "{:?}",
        prod_hook.requests()
    );
    let listed = sandbox.run(&["deliveries", "--format", "json"]);
    let listed: Value = serde_json::from_str(&stdout(&listed)).expect("json");
    assert_eq!(listed, serde_json::json!([]), "nothing was queued");

    // With the environment's own channel, the rehearsal tells it (and still not production).
    let staging_hook = Http::start(&[]);
    let sealed = body.replace(
        "      env: { ORDERS_ROOT: \"${WORK}/staging\" }\n",
        &format!(
            "      env: {{ ORDERS_ROOT: \"${{WORK}}/staging\" }}\n      channels:\n        team: {{ webhook: \"{}\" }}\n",
            staging_hook.url("/staging-hook")
        ),
    );
    let plan = sandbox.plan("sealed.yaml", &sealed);
    let out = sandbox.run(&["rehearse", &plan.display().to_string(), "--env", "staging"]);
    assert_code(&out, 0, "rehearse with staging channels");
    assert!(
        stderr(&out).contains("only to testing.overrides.staging.channels (team)"),
        "{}",
        stderr(&out)
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
    let prod = Http::start(&[]);
    let staging = Http::start(&[]);
    let sandbox = Sandbox::new();
    let body = format!(
        r#"procedure:
  steps:
    - id: deploy
      http: {{ method: POST, url: "{}" }}
testing:
  rehearse_in: staging
"#,
        prod.url("/deploy")
    );
    let plan = sandbox.plan("plan.yaml", &body);
    let out = sandbox.run(&["rehearse", &plan.display().to_string()]);
    assert_code(&out, 5, "rehearse reaching production");
    let text = stderr(&out);
    assert!(
        text.contains(&format!("step `deploy` reaches {}", prod.url("/deploy"))),
        "{text}"
    );
    assert!(text.contains("testing.shared_hosts"), "{text}");
    assert!(prod.requests().is_empty(), "{:?}", prod.requests());
    assert!(sandbox.run_ids().is_empty(), "no run was started");

    let rewritten = format!(
        "{body}  overrides:\n    staging:\n      urls: {{ \"{}\": \"{}\" }}\n",
        prod.base, staging.base
    );
    let plan = sandbox.plan("rewritten.yaml", &rewritten);
    let out = sandbox.run(&["rehearse", &plan.display().to_string()]);
    assert_code(&out, 0, "rehearse with the rewrite");
    let reached: Vec<String> = staging.requests().iter().map(|r| r.line.clone()).collect();
    assert_eq!(reached, ["POST /deploy HTTP/1.1"]);
    assert!(prod.requests().is_empty(), "{:?}", prod.requests());
}

/// Issue 14 item 4: a webhook answering 503, 503, 200 receives `completed` before `backout run`
/// exits (retried within the grace), with the plan's template as the summary; a notify step
/// posts event `message`.
#[test]
fn a_webhook_answering_503_twice_gets_completed_before_run_exits() {
    let hook = Http::start(&[503, 503, 200]);
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
            hook.url("/hook")
        ),
    );
    let started = Instant::now();
    let out = sandbox
        .command()
        .env("BACKOUT_DELIVERY_GRACE", "30s")
        .args([
            "run",
            "--break-glass",
            "--reason",
            "test",
            &plan.display().to_string(),
        ])
        .output()
        .expect("backout runs");
    let took = started.elapsed();
    assert_code(&out, 0, "run");
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
        !stderr(&out).contains("not delivered yet"),
        "{}",
        stderr(&out)
    );
    // Backoff 1 s then 2 s: well within the 30 s grace.
    assert!(took < Duration::from_secs(15), "run took {took:?}");
}

/// What cannot be delivered within the grace is named, with how to send it.
#[test]
fn undelivered_notifications_are_named_when_the_grace_ends() {
    let hook = Http::start(&[503]);
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
            hook.url("/hook")
        ),
    );
    let out = sandbox
        .command()
        .env("BACKOUT_DELIVERY_GRACE", "2s")
        .args([
            "run",
            "--break-glass",
            "--reason",
            "test",
            &plan.display().to_string(),
        ])
        .output()
        .expect("backout runs");
    assert_code(&out, 0, "run");
    let text = stderr(&out);
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
    let hook = Http::start(&[]);
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
            hook.url("/hook")
        ),
    );
    let out = sandbox.run(&["start", &plan.display().to_string()]);
    assert_code(&out, 0, "start");
    let release = stdout(&out).trim().to_string();
    let out = sandbox.run(&["request", &release, "--reason", "customers see errors"]);
    assert_code(&out, 0, "request");
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

    let out = sandbox
        .command()
        .args([
            "--as", "carol", "decide", &release, "approve", "--reason", "agreed",
        ])
        .output()
        .expect("decide");
    assert_code(&out, 0, "carol approves");
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
    let out = sandbox.run(&["request", &release, "--reason", "still bad"]);
    assert_code(&out, 0, "second request");
    let asked = hook
        .requests()
        .iter()
        .filter(|r| r.json()["event"] == "decision_requested")
        .count();
    assert_eq!(asked, 1);
}
