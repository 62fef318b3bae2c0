//! Game days end to end, with real processes: a small real HTTP service scraped by a real
//! Prometheus, a `--break` that stops it, and the whole loop (the criterion trips, the deciders
//! are asked through the plan's channel, the procedure restarts the service, `verify_after`
//! holds). The five legs of the report must be measured and agree with the journal; without
//! `--auto`, a decider approving through a real `backout serve`'s API is timed.
//!
//! Prometheus comes from the Debian package `prometheus` (`scripts/test` installs it); a
//! missing binary fails the test, it never skips.

mod support;

#[path = "../../backout-core/tests/support/monitoring.rs"]
mod monitoring;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::server::{Server, accept, call, client, token};
use support::{Sandbox, assert_code, stdout, text, wait_until};

/// The service: answers `/metrics` on the port in `$WORK/svc.port`, writes its pid.
const SERVICE: &str = r#"import http.server, os, sys
port = int(open(os.path.join(os.environ["WORK"], "svc.port")).read())
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"svc_requests_total 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
open(os.path.join(os.environ["WORK"], "svc.pid"), "w").write(str(os.getpid()))
server.serve_forever()
"#;

/// Starts the service in its own session (it outlives the step or command that started it)
/// and waits until it answers.
const START: &str = r#"#!/bin/sh
setsid python3 "$WORK/svc.py" </dev/null >>"$WORK/svc.log" 2>&1 &
port=$(cat "$WORK/svc.port")
for i in $(seq 200); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then exit 0; fi
  sleep 0.05
done
echo "the service did not answer on $port" >&2
exit 1
"#;

/// Waits until Prometheus (its URL the first argument) scrapes the service as up, so
/// `verify_after` does not read the scrape from before the restart.
const WAIT_SCRAPED: &str = r#"#!/bin/sh
exec python3 - "$1" <<'EOF'
import json, sys, time, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?query=" + urllib.parse.quote('up{job="svc"}')
for _ in range(600):
    try:
        result = json.load(urllib.request.urlopen(url, timeout=2))["data"]["result"]
        if result and result[0]["value"][1] == "1":
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit("Prometheus does not see the service up after 30 s")
EOF
"#;

const BREAK: &str = r#"kill "$(cat "$WORK/svc.pid")""#;
const HEAL: &str = r#"kill -0 "$(cat "$WORK/svc.pid")" 2>/dev/null || "$WORK/start-svc""#;

fn body() -> String {
    r#"people:
  deciders: [dana@example.com]
  performers: [pat@example.com]
criteria:
  sources:
    prometheus: { url: "${PROMETHEUS_URL}" }
  rollback_when:
    - id: service-up
      title: The service answers Prometheus' scrapes
      prometheus: 'up{job="svc"}'
      fails_if: "< 1"
      passes_if: ">= 1"
      every: 1s
window: { closes_after: 1h, after_close: "fix forward" }
authorization: { deciders: deciders, quorum: 1 }
execution: { performers: performers, start_within: 10m }
procedure:
  steps:
    - id: restart
      run: '"${WORK}/start-svc"'
      expected: 5s
      idempotent: true
    - id: wait-scraped
      title: Wait until monitoring sees the service again
      needs: [restart]
      run: '"${WORK}/wait-scraped" "${PROMETHEUS_URL}"'
      expected: 5s
      idempotent: true
  verify_after: { checks: [service-up], hold: 2s }
expected_duration: 2m
communication:
  channels:
    inbox: { command: 'cat >> "${WORK}/inbox"; echo >> "${WORK}/inbox"' }
  notify:
    decision_requested: [inbox]
    rolled_back: [inbox]
"#
    .to_string()
}

/// The sandbox with the service running and a Prometheus that sees it up.
struct Drill {
    sandbox: Sandbox,
    prometheus: monitoring::Server,
}

impl Drill {
    fn start() -> Drill {
        let sandbox = Sandbox::new();
        let port = monitoring::free_port();
        sandbox.write("svc.port", &port.to_string());
        sandbox.write("svc.py", SERVICE);
        let start = sandbox.write("start-svc", START);
        let wait = sandbox.write("wait-scraped", WAIT_SCRAPED);
        assert!(
            Command::new("chmod")
                .arg("+x")
                .arg(&start)
                .arg(&wait)
                .status()
                .expect("chmod")
                .success()
        );
        let started = Command::new(&start)
            .env("WORK", sandbox.path())
            .status()
            .expect("start-svc runs");
        assert!(
            started.success(),
            "the service starts:\n{}",
            sandbox.read("svc.log")
        );
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let prometheus =
            monitoring::start_prometheus(&[("svc", address)], Duration::from_secs(1), &[]);
        let drill = Drill {
            sandbox,
            prometheus,
        };
        wait_until(
            Duration::from_secs(30),
            "Prometheus to see the service up",
            || {
                monitoring::prometheus_values(&drill.prometheus, "up{job=\"svc\"}")
                    .is_ok_and(|v| v == [1.0])
            },
        );
        drill
    }

    fn command(&self) -> Command {
        let mut cmd = self.sandbox.command();
        cmd.env("PROMETHEUS_URL", &self.prometheus.url);
        cmd
    }

    fn backout(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().expect("backout runs")
    }

    /// The release's journal as `report REL --format json` shows it.
    fn report(&self, release: &str) -> Value {
        let out = self.backout(&["report", release, "--format", "json"]);
        assert_code(&out, 0, "report REL");
        serde_json::from_slice(&out.stdout).expect("report is JSON")
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// The event of `kind` with journal sequence number `seq`.
fn event_at<'a>(report: &'a Value, seq: &Value) -> &'a Value {
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| &e["seq"] == seq)
        .unwrap_or_else(|| panic!("no event with seq {seq} in the journal"))
}

/// Every leg's moment names a journaled event of the right kind, at the same time and by the
/// same actor, and each duration is the difference of its two moments.
fn assert_consistent(legs: &Value, report: &Value) {
    let kinds: [(&str, &[&str]); 6] = [
        ("fault", &["gameday_fault_injected"]),
        ("detected", &["verdict", "rollback_requested"]),
        ("decided", &["decision"]),
        ("started", &["execution_started"]),
        ("finished", &["execution_finished"]),
        ("verified", &["rolled_back", "rollback_verified"]),
    ];
    for (moment, allowed) in kinds {
        let m = &legs[moment];
        let event = event_at(report, &m["seq"]);
        assert!(
            allowed.contains(&event["kind"].as_str().expect("kind")),
            "{moment} is {event}"
        );
        assert_eq!(m["at_ms"], event["at_ms"], "{moment}");
        assert_eq!(m["by"], event["actor"], "{moment}");
    }
    let at = |m: &str| legs[m]["at_ms"].as_i64().expect("at_ms");
    let pairs = [
        ("detection", "fault", "detected"),
        ("decision", "detected", "decided"),
        ("start", "decided", "started"),
        ("procedure", "started", "finished"),
        ("verification", "finished", "verified"),
    ];
    for (leg, from, to) in pairs {
        let d = legs["durations_ms"][leg]
            .as_i64()
            .unwrap_or_else(|| panic!("leg {leg} not measured: {legs:#}"));
        assert_eq!(d, at(to) - at(from), "{leg}");
        assert!(d >= 0, "{leg} is negative: {d}");
    }
}

#[test]
fn an_unattended_game_day_measures_all_five_legs_and_they_agree_with_the_journal() {
    let drill = Drill::start();
    let plan = drill.sandbox.plan("plan.yaml", &body());
    let out = drill.backout(&[
        "gameday",
        plan.to_str().expect("utf-8 path"),
        "--env",
        "staging",
        "--break",
        BREAK,
        "--heal",
        HEAL,
        "--auto",
        "--timeout",
        "3m",
        "--format",
        "json",
    ]);
    assert_code(&out, 0, "gameday --auto");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gameday --format json is JSON ({e}):\n{}", text(&out)));
    assert_eq!(report["outcome"], "rolled_back", "{report:#}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["environment"], "staging");
    assert_eq!(report["heal_exit_code"], 0);
    let legs = &report["legs"];
    assert_eq!(legs["decided"]["by"], "backout:gameday");
    assert_eq!(legs["started"]["by"], "backout:gameday");
    assert_eq!(legs["detected"]["what"], "tripped: service-up");
    // Detection is about a scrape (1 s) and a measurement (1 s): bounded generously for a
    // loaded machine.
    let detection = legs["durations_ms"]["detection"]
        .as_i64()
        .expect("detection");
    assert!(detection < 30_000, "detection took {detection} ms");
    let release = report["release_id"].as_str().expect("release id");
    let journal = drill.report(release);
    assert_consistent(legs, &journal);
    let reported = journal["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "gameday_reported")
        .expect("the report is journaled");
    assert_eq!(reported["payload"]["legs"], *legs);
    // Labelled a drill everywhere a person looks.
    assert!(
        journal["release"]["version"]
            .as_str()
            .expect("version")
            .contains("[DRILL]")
    );
    let status = drill.backout(&["status", release]);
    assert!(text(&status).contains("DRILL"), "{}", text(&status));
    assert!(
        drill.sandbox.read("inbox").contains("DRILL"),
        "the deciders' message says DRILL:\n{}",
        drill.sandbox.read("inbox")
    );
    // The document's Q9 shows the game day beside the rehearsal.
    let rendered = drill.backout(&["render", plan.to_str().expect("utf-8 path")]);
    assert_code(&rendered, 0, "render");
    assert!(
        stdout(&rendered).contains("last game day") && stdout(&rendered).contains("detection"),
        "{}",
        stdout(&rendered)
    );
    // And the trend lists it.
    let trend = drill.backout(&["report", plan.to_str().expect("utf-8 path"), "--drills"]);
    assert_code(&trend, 0, "report --drills");
    assert!(stdout(&trend).contains("rolled_back"), "{}", stdout(&trend));
    // For the person reading the test's output (`--no-capture`): what a game day reports.
    eprintln!("{}\n{}", report["summary"], stdout(&trend));
    // The service is up again (the rollback restarted it).
    wait_until(
        Duration::from_secs(30),
        "Prometheus to see the service up again",
        || {
            monitoring::prometheus_values(&drill.prometheus, "up{job=\"svc\"}")
                .is_ok_and(|v| v == [1.0])
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decider_approving_through_the_api_is_timed() {
    let drill = Drill::start();
    let plan = drill.sandbox.plan("plan.yaml", &body());
    let source = std::fs::read_to_string(&plan).expect("plan");
    let (owner, dana, pat) = (
        token(&drill.sandbox, "owner@example.com", "admin"),
        token(&drill.sandbox, "dana@example.com", "decider"),
        token(&drill.sandbox, "pat@example.com", "performer"),
    );
    let server = Server::from_command(drill.command());
    let http = client();
    accept(&http, &server.url("/api/v1/plans/accept"), &owner, &source).await;

    let mut child = drill
        .command()
        .args([
            "gameday",
            plan.to_str().expect("utf-8 path"),
            "--env",
            "staging",
            "--break",
            BREAK,
            "--heal",
            HEAL,
            "--timeout",
            "3m",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gameday starts");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().expect("log");
            log.push_str(&line);
            log.push('\n');
        }
    });
    let release_of = |log: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix("DRILL: game day release "))
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_string)
    };
    wait_until(Duration::from_secs(60), "the drill's release", || {
        release_of(&log.lock().expect("log")).is_some()
    });
    let release = release_of(&log.lock().expect("log")).expect("release id");

    // Wait until the deciders were asked, then approve through the API, timed by the test.
    let started = Instant::now();
    loop {
        let journal = drill.report(&release);
        let asked = journal["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["kind"] == "decision_requested");
        if asked {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the deciders were never asked:\n{}",
            log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A decider who takes a moment to read the message.
    let before = now_ms();
    let (status, answer) = call(
        &http,
        "POST",
        &server.url(&format!("/api/v1/releases/{release}/decisions")),
        Some(&dana),
        Some(json!({ "decision": "approve", "reason": "game day: the service is down" })),
    )
    .await;
    let after = now_ms();
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(
        &http,
        "POST",
        &server.url(&format!("/api/v1/releases/{release}/execute")),
        Some(&pat),
        None,
    )
    .await;
    assert_eq!(status, 202, "{answer}");

    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "gameday did not end:\n{}",
            log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "gameday:\n{}\n{}",
        stdout(&out),
        log.lock().expect("log")
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let legs = &report["legs"];
    assert_eq!(legs["decided"]["by"], "dana@example.com", "{report:#}");
    assert_eq!(legs["started"]["by"], "pat@example.com", "{report:#}");
    let decided = legs["decided"]["at_ms"].as_i64().expect("decided");
    assert!(
        (before..=after).contains(&decided),
        "the decision is timed when the API took it: {before} ≤ {decided} ≤ {after}"
    );
    assert_consistent(legs, &drill.report(&release));
    drop(server);
}
