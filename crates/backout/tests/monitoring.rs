//! Issue 4's "Done when", end to end against real servers: a release started from the reference
//! plan (`fixtures/plans/valid/checkout.yaml`, changed only where a test environment needs it)
//! and watched by the real `backout` binary, against a real Prometheus scraping an exporter
//! this test serves and a real Alertmanager this test posts alerts to. No mocks.
//!
//! In order, on one Prometheus (a rate over `[5m]` remembers a degradation for five minutes,
//! so the degradation comes last):
//! 1. success: a healthy release turns `success` once every `success_when` check passed for the
//!    hold, and its window closes;
//! 2. refusals: a rollback is refused (exit 5, quoting `window.after_close`) after that window,
//!    at the point of no return, and after the window ran out;
//! 3. an Alertmanager alert trips `payments-alert`: `rollback_required`;
//! 4. the exporter degrades: `error-rate` trips, `rollback_required` with the value and the
//!    threshold, within a bound, and all of it is in the journal.
//!
//! The binaries come from the Debian packages `prometheus` and `prometheus-alertmanager`
//! (`scripts/test` installs them); a missing one fails the test, it never skips.

mod support;

#[path = "../../backout-core/tests/support/monitoring.rs"]
mod monitoring;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use backout_sqlite::SqliteStore;
use backout_store::{Event, Store};
use serde_json::Value;

use monitoring::{Reply, Server};
use support::{Sandbox, assert_code, stderr, stdout};

/// The most a verdict may take to show after its cause. Expected: about a scrape (1 s) plus
/// `trips_after` measurements `every: 1s`, 1–3 s; the bound is generous for a loaded machine.
const VERDICT_WITHIN: Duration = Duration::from_secs(30);

/// Requests per second the exporter counts: OK ones, and 5xx ones while healthy (an error
/// rate of 0.001, passing `<= 0.005`) and degraded. The degraded rate is high enough that the
/// first scrape after the change lifts the `[5m]` error rate over `> 0.02` even with five
/// minutes of healthy history: a rate that climbed through the band between the thresholds
/// would (rightly) be measured inconclusive, and `watch` would stop there with exit 4.
const OK_PER_S: f64 = 100.0;
const ERRORS_PER_S_HEALTHY: f64 = 0.1;
const ERRORS_PER_S_DEGRADED: f64 = 1000.0;

/// The `success_when.hold` of the release that is to succeed, and of those that must not
/// succeed before their failure is seen.
const SHORT_HOLD: &str = "3s";
const LONG_HOLD: &str = "10m";

/// The checkout service's traffic, as its exporter counts it: counters that grow with wall
/// time at the current rates.
struct Traffic {
    counters: Mutex<Counters>,
}

struct Counters {
    at: Instant,
    ok: f64,
    errors: f64,
    degraded: bool,
}

impl Counters {
    fn advance(&mut self) {
        let now = Instant::now();
        let seconds = now.duration_since(self.at).as_secs_f64();
        let errors_per_s = if self.degraded {
            ERRORS_PER_S_DEGRADED
        } else {
            ERRORS_PER_S_HEALTHY
        };
        self.ok += OK_PER_S * seconds;
        self.errors += errors_per_s * seconds;
        self.at = now;
    }
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            counters: Mutex::new(Counters {
                at: Instant::now(),
                ok: 0.0,
                errors: 0.0,
                degraded: false,
            }),
        }
    }

    /// 5xx at the degraded rate (or back to the healthy one), counted from the last scrape on:
    /// the next scrape shows a whole interval of the new rate, never a sliver of it.
    fn set_degraded(&self, degraded: bool) {
        self.counters.lock().unwrap().degraded = degraded;
    }

    /// `/metrics` in Prometheus' text format. Every request takes between 50 and 100 ms, so
    /// `histogram_quantile(0.99, …)` is about 0.1 s. No `job` label: Prometheus attaches
    /// `job="checkout"` from the scrape job, as it does for a real target.
    fn metrics(&self) -> String {
        let mut counters = self.counters.lock().unwrap();
        counters.advance();
        let (ok, errors) = (counters.ok, counters.errors);
        let all = ok + errors;
        let mut text = format!(
            "# TYPE http_requests_total counter\n\
             http_requests_total{{code=\"200\"}} {ok}\n\
             http_requests_total{{code=\"500\"}} {errors}\n\
             # TYPE http_request_duration_seconds histogram\n\
             http_request_duration_seconds_bucket{{le=\"0.05\"}} 0\n"
        );
        for le in ["0.1", "0.25", "0.5", "1", "+Inf"] {
            text.push_str(&format!(
                "http_request_duration_seconds_bucket{{le=\"{le}\"}} {all}\n"
            ));
        }
        text.push_str(&format!(
            "http_request_duration_seconds_sum {}\nhttp_request_duration_seconds_count {all}\n",
            all * 0.08
        ));
        text
    }
}

/// The servers, the exporter and the store shared by every scenario.
struct Monitoring {
    /// First to drop: kills any `backout` a failed scenario left running.
    sandbox: Sandbox,
    runtime: tokio::runtime::Runtime,
    traffic: Arc<Traffic>,
    exporter: SocketAddr,
    prometheus: Server,
    alertmanager: Server,
    reference: String,
}

impl Monitoring {
    fn start() -> Monitoring {
        let started = Instant::now();
        let alertmanager = std::thread::spawn(monitoring::start_alertmanager);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let traffic = Arc::new(Traffic::new());
        let served = traffic.clone();
        let exporter = runtime.block_on(monitoring::exporter(move |path| match path {
            "/metrics" => Reply::ok(served.metrics()),
            "/healthz" => Reply::ok("ok\n"),
            _ => Reply::status(404, "not found\n"),
        }));
        let prometheus =
            monitoring::start_prometheus(&[("checkout", exporter)], Duration::from_secs(1), &[]);
        let alertmanager = alertmanager.join().expect("alertmanager starts");
        eprintln!(
            "prometheus and alertmanager ready after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let reference = std::fs::read_to_string(reference_plan()).expect("the reference plan");
        let env = Monitoring {
            sandbox: Sandbox::new(),
            runtime,
            traffic,
            exporter,
            prometheus,
            alertmanager,
            reference,
        };
        env.wait_for_data();
        eprintln!(
            "every query of the plan has a value after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        env
    }

    /// Waits until every PromQL query of the reference plan gives one value (a rate needs two
    /// scrapes), so that no measurement of a release finds no data.
    fn wait_for_data(&self) {
        let queries: Vec<&str> = self
            .reference
            .lines()
            .filter_map(|l| l.trim().strip_prefix("prometheus: '")?.strip_suffix('\''))
            .collect();
        assert_eq!(queries.len(), 2, "error-rate and p99-latency");
        let started = Instant::now();
        for query in queries {
            loop {
                match monitoring::prometheus_values(&self.prometheus, query) {
                    Ok(values) if values.len() == 1 && values[0].is_finite() => {
                        eprintln!("  {query} = {}", values[0]);
                        break;
                    }
                    other => assert!(
                        started.elapsed() < Duration::from_secs(20),
                        "`{query}` gives {other:?} after 20 s; prometheus log:\n{}",
                        self.prometheus.log_tail()
                    ),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The reference plan with what a test environment needs: cadences of a second, no warm-up,
    /// `hold` for `success_when`, and the test's Alertmanager and exporter. Prometheus comes
    /// from `PROMETHEUS_URL`, as the plan says. Each change is checked to have happened.
    fn plan(&self, name: &str, hold: &str) -> PathBuf {
        let alertmanager = self.alertmanager.url.clone();
        let health = format!("http://{}/healthz", self.exporter);
        let mut plan = self.reference.clone();
        for (from, to, count) in [
            ("every: 1m", "every: 1s".to_string(), 2),
            ("every: 30s", "every: 1s".to_string(), 2),
            ("delay: 5m", "delay: 0s".to_string(), 1),
            ("hold: 2h", format!("hold: {hold}"), 1),
            (
                "http://alertmanager.internal.example.com:9093",
                alertmanager,
                1,
            ),
            ("https://checkout.internal.example.com/healthz", health, 1),
        ] {
            assert_eq!(
                plan.matches(from).count(),
                count,
                "the reference plan has `{from}` {count} time(s)"
            );
            plan = plan.replace(from, &to);
        }
        assert_eq!(
            plan.matches("every: ").count(),
            plan.matches("every: 1s").count(),
            "every criterion is measured every second:\n{plan}"
        );
        assert!(plan.contains(r#"prometheus: { url: "${PROMETHEUS_URL}" }"#));
        let path = self.sandbox.write(name, &plan);
        let lint = self.backout(&["lint", name]);
        assert_code(&lint, 0, &format!("lint {name}"));
        path
    }

    /// `backout` on the sandbox's store, with the test's Prometheus in `PROMETHEUS_URL`.
    fn command(&self) -> Command {
        let mut cmd = self.sandbox.command();
        cmd.env("PROMETHEUS_URL", &self.prometheus.url)
            .env_remove("ALERTMANAGER_URL")
            .env("BACKOUT_USER", "deploy-bot");
        cmd
    }

    fn backout(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("backout runs")
    }

    /// `backout start PLAN [ARGS]`: the release id it prints.
    fn start_release(&self, plan: &Path, args: &[&str]) -> String {
        let plan = plan.display().to_string();
        let mut all = vec!["start", plan.as_str()];
        all.extend_from_slice(args);
        let out = self.backout(&all);
        assert_code(&out, 0, "start");
        let id = stdout(&out).trim().to_string();
        assert!(
            id.starts_with("rel-"),
            "start prints the release id: {id:?}"
        );
        id
    }

    /// `backout status REL --format json`.
    fn status(&self, release: &str) -> Value {
        let out = self.backout(&["status", release, "--format", "json"]);
        assert_code(&out, 0, "status --format json");
        serde_json::from_slice(&out.stdout).expect("status --format json is JSON")
    }

    /// `backout watch REL` in the background, its output read as it comes.
    fn watch(&self, release: &str) -> Watch {
        let mut child = self
            .command()
            .args(["watch", release])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backout watch starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let into = lines.clone();
        let out_reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                into.lock().unwrap().push((Instant::now(), line));
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let into = errors.clone();
        let err_reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let mut text = into.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Watch {
            child: Some(child),
            readers: vec![out_reader, err_reader],
            lines,
            stderr: errors,
            what: format!("backout watch {release}"),
        }
    }

    /// The release's events in the journal, read from the SQLite file.
    fn journal(&self, release: &str) -> Vec<Event> {
        self.runtime.block_on(async {
            let store = SqliteStore::open_path(&self.sandbox.db())
                .await
                .expect("the store opens");
            store
                .release_events(release, 0, 100_000)
                .await
                .expect("the release's events")
        })
    }

    /// The whole journal's hash chain verifies.
    fn verify_chain(&self) {
        self.runtime.block_on(async {
            let store = SqliteStore::open_path(&self.sandbox.db())
                .await
                .expect("the store opens");
            let summary = backout_store::verify_store(&store, 500)
                .await
                .expect("the journal reads")
                .unwrap_or_else(|broken| panic!("the journal's chain is broken: {broken:?}"));
            eprintln!("journal chain verified: {summary:?}");
        });
    }
}

fn reference_plan() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid/checkout.yaml")
}

/// A `backout watch` running in the background, killed if the test ends before it does.
struct Watch {
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    /// Standard output, line by line, with when each line was read.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

/// How a `backout watch` ended.
struct Finished {
    status: ExitStatus,
    exited_at: Instant,
    lines: Vec<(Instant, String)>,
    stderr: String,
}

impl Finished {
    fn stdout(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        lines.join("\n")
    }

    /// When the first line containing `text` was read.
    fn first(&self, text: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(text))
            .map(|(at, _)| *at)
    }

    #[track_caller]
    fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{what}: unexpected exit\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{what} panicked:\n{}",
            self.stderr
        );
    }
}

impl Watch {
    /// Waits until `ready` holds for the lines printed so far; panics if the watch exits first
    /// or after `limit`.
    fn wait_until(&mut self, what: &str, limit: Duration, ready: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            let lines: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .map(|(_, l)| l.clone())
                .collect();
            if ready(&lines) {
                return;
            }
            let child = self.child.as_mut().expect("still running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited with {status} while waiting for {what}:\n{}\n{}",
                    self.what,
                    lines.join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < limit,
                "{} did not show {what} within {limit:?}:\n{}\n{}",
                self.what,
                lines.join("\n"),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the watch to exit, at most `limit` (then kills it and panics with its output).
    fn finish(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().expect("not finished yet");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.lines
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let exited_at = Instant::now();
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        Finished {
            status,
            exited_at,
            lines: self.lines.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `line` shows `criterion` as `status` (after a timestamp, in a watch's output).
fn shows(line: &str, status: &str, criterion: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().take(3).collect();
    words.windows(2).any(|w| w == [status, criterion])
}

/// How many lines of a watch show `criterion` measured as `status`.
fn measured(lines: &[String], status: &str, criterion: &str) -> usize {
    lines.iter().filter(|l| shows(l, status, criterion)).count()
}

/// The first line of `text` showing `criterion` as `status`.
fn line_of<'a>(text: &'a str, status: &str, criterion: &str) -> Option<&'a str> {
    text.lines().find(|l| shows(l, status, criterion))
}

/// The reason a criterion line shows: the text after the criterion id.
fn reason_in<'a>(line: &'a str, criterion: &str) -> &'a str {
    let at = line.find(criterion).expect("the criterion is on its line") + criterion.len();
    line[at..].trim_start()
}

fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn verdicts(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.kind == "verdict")
        .filter_map(|e| e.payload["verdict"].as_str())
        .collect()
}

/// The measurement events of `criterion`.
fn measurements<'a>(events: &'a [Event], criterion: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind == "measurement" && e.payload["criterion"] == criterion)
        .collect()
}

/// The plan's `window.after_close` text.
fn after_close(plan: &str) -> String {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix("after_close: \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the reference plan has window.after_close")
        .to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[test]
fn a_release_against_real_prometheus_and_alertmanager() {
    let started = Instant::now();
    let env = Monitoring::start();
    let success = success_after_the_hold(&env);
    refusals_after_the_window(&env, &success);
    an_alert_requires_a_rollback(&env);
    a_degraded_exporter_requires_a_rollback(&env);
    env.verify_chain();
    eprintln!("the whole test took {}", secs(started.elapsed()));
}

/// A healthy release turns `success` once error-rate, p99-latency and health passed for the
/// hold; the window closes with a reason saying so. Returns the release.
fn success_after_the_hold(env: &Monitoring) -> String {
    let plan = env.plan("success.yaml", SHORT_HOLD);
    let started = Instant::now();
    let release = env.start_release(&plan, &[]);
    let done = env.watch(&release).finish(VERDICT_WITHIN);
    done.assert_code(0, "watch of a healthy release");
    let took = done.exited_at - started;
    eprintln!(
        "success {} after `backout start` (hold {SHORT_HOLD}, every 1s)",
        secs(took)
    );
    assert!(
        took >= Duration::from_secs(3),
        "success before the hold of {SHORT_HOLD}: {took:?}"
    );
    let out = done.stdout();
    assert!(out.contains("verdict: healthy"), "{out}");
    let verdict = out
        .lines()
        .find(|l| l.contains("verdict: success"))
        .unwrap_or_else(|| panic!("no success verdict:\n{out}"));
    assert!(
        verdict.contains("window closed: success"),
        "the verdict says the window closed: {verdict}"
    );
    for criterion in ["error-rate", "p99-latency", "health", "payments-alert"] {
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        assert!(
            measured(&lines, "passing", criterion) >= 1,
            "{criterion} was measured passing:\n{out}"
        );
        assert_eq!(
            measured(&lines, "failing", criterion) + measured(&lines, "inconclusive", criterion),
            0,
            "{criterion} never failed nor was inconclusive:\n{out}"
        );
    }

    let status = env.status(&release);
    assert_eq!(status["verdict"], "success", "{status:#}");
    assert_eq!(status["window_closed"], true, "{status:#}");
    assert_eq!(status["state"], "closed", "{status:#}");
    let reason = status["close_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("success"), "close_reason: {reason:?}");
    let human = stdout(&env.backout(&["status", &release]));
    assert!(
        human.contains("window: closed at") && human.contains(": success: "),
        "{human}"
    );

    let events = env.journal(&release);
    assert_eq!(
        verdicts(&events),
        ["healthy", "success"],
        "{:?}",
        kinds(&events)
    );
    for criterion in ["error-rate", "p99-latency", "health", "payments-alert"] {
        let measured = measurements(&events, criterion);
        assert!(!measured.is_empty(), "no measurement of {criterion}");
        assert!(
            measured.iter().all(|e| e.payload["class"] == "passing"),
            "{criterion}: {:?}",
            measured.iter().map(|e| &e.payload).collect::<Vec<_>>()
        );
    }
    let closed: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == "window_closed")
        .collect();
    assert_eq!(closed.len(), 1, "{:?}", kinds(&events));
    assert_eq!(closed[0].payload["verdict"], "success");
    assert!(
        closed[0].payload["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("success")),
        "{}",
        closed[0].payload
    );
    release
}

/// Rollbacks are refused (exit 5, quoting the plan's `after_close`) once the window closed: by
/// success, at the point of no return, and on time; a refused request journals nothing.
fn refusals_after_the_window(env: &Monitoring, succeeded: &str) {
    let instead = after_close(&env.reference);

    let out = env.backout(&["request", succeeded, "--reason", "x"]);
    assert_code(&out, 5, "request after success");
    let message = stderr(&out);
    assert!(
        message.contains(&instead) && message.contains("success"),
        "{message}"
    );
    eprintln!("request after success: {}", message.trim());

    // The point of no return.
    let plan = env.plan("no-return.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    let out = env.backout(&["checkpoint", &release, "expand-migration"]);
    assert_code(&out, 0, "checkpoint expand-migration");
    assert_eq!(env.status(&release)["window_closed"], false);
    let out = env.backout(&["checkpoint", &release, "contract-migration"]);
    assert_code(&out, 0, "checkpoint contract-migration");
    assert!(
        stderr(&out).contains("the rollback window is now closed (point of no return"),
        "{}",
        stderr(&out)
    );
    let status = env.status(&release);
    assert_eq!(status["window_closed"], true, "{status:#}");
    assert_eq!(status["verdict"], "closed", "{status:#}");
    let out = env.backout(&["request", &release, "--reason", "x"]);
    assert_code(&out, 5, "request after the point of no return");
    let message = stderr(&out);
    assert!(
        message.contains(&instead)
            && message.contains("point of no return: checkpoint `contract-migration` reached"),
        "{message}"
    );
    let out = env.backout(&["check", &release]);
    assert_code(&out, 5, "check after the point of no return");
    assert!(
        stdout(&out).contains(
            "verdict: closed; window closed: point of no return: checkpoint \
             `contract-migration` reached"
        ),
        "{}",
        stdout(&out)
    );
    let events = env.journal(&release);
    assert_eq!(
        kinds(&events),
        [
            "release_started",
            "checkpoint_reached",
            "window_closed",
            "verdict"
        ],
        "nothing for the refused request, no measurement once closed"
    );
    assert_eq!(verdicts(&events), ["closed"], "journaled by check");
    let closed = events.iter().find(|e| e.kind == "window_closed").unwrap();
    assert_eq!(closed.payload["checkpoint"], "contract-migration");
    assert_eq!(closed.payload["point_of_no_return"], true);

    // The window ran out: deployed five hours ago, `closes_after: 4h`.
    let at = monitoring::rfc3339(SystemTime::now() - Duration::from_secs(5 * 3600));
    let release = env.start_release(&plan, &["--at", &at]);
    let out = env.backout(&["request", &release, "--reason", "x"]);
    assert_code(&out, 5, "request after the window ran out");
    assert!(stderr(&out).contains(&instead), "{}", stderr(&out));
    let out = env.backout(&["check", &release]);
    assert_code(&out, 5, "check after the window ran out");
    assert!(
        stdout(&out).contains("verdict: closed; window closed: closed on time"),
        "{}",
        stdout(&out)
    );
    let events = env.journal(&release);
    assert!(
        !kinds(&events).contains(&"rollback_requested")
            && measurements(&events, "health").is_empty(),
        "{:?}",
        kinds(&events)
    );
    assert_eq!(env.status(&release)["state"], "closed");
}

/// A critical `CheckoutPaymentsFailing` alert in Alertmanager trips `payments-alert`
/// (`trips_after: 1`): the watch exits 3. The alert is resolved afterwards.
fn an_alert_requires_a_rollback(env: &Monitoring) {
    let plan = env.plan("alert.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    let mut watch = env.watch(&release);
    watch.wait_until("a passing payments-alert", VERDICT_WITHIN, |lines| {
        measured(lines, "passing", "payments-alert") >= 1
    });
    let labels = [
        ("alertname", "CheckoutPaymentsFailing"),
        ("severity", "critical"),
        ("service", "checkout"),
    ];
    let fired = SystemTime::now();
    let posted = Instant::now();
    monitoring::post_alert(
        &env.alertmanager,
        &labels,
        fired,
        fired + Duration::from_secs(600),
    );
    let done = watch.finish(VERDICT_WITHIN);
    done.assert_code(3, "watch while the alert fires");
    let verdict_at = done
        .first("verdict: rollback_required")
        .expect("a rollback_required verdict line");
    eprintln!(
        "rollback_required {} after the alert was posted (exit after {})",
        secs(verdict_at - posted),
        secs(done.exited_at - posted)
    );
    let out = done.stdout();
    let tripped = line_of(&out, "TRIPPED", "payments-alert")
        .unwrap_or_else(|| panic!("payments-alert not TRIPPED:\n{out}"));
    assert!(
        reason_in(tripped, "payments-alert").starts_with(
            "alert CheckoutPaymentsFailing firing: {alertname=\"CheckoutPaymentsFailing\", \
             service=\"checkout\", severity=\"critical\"}"
        ),
        "{tripped}"
    );
    assert!(
        out.contains("verdict: rollback_required (payments-alert)"),
        "{out}"
    );

    let status = env.status(&release);
    assert_eq!(status["verdict"], "rollback_required", "{status:#}");
    let events = env.journal(&release);
    assert_eq!(
        verdicts(&events),
        ["healthy", "rollback_required"],
        "{:?}",
        kinds(&events)
    );

    // Resolve the alert, and wait until Alertmanager no longer lists it as active.
    monitoring::post_alert(&env.alertmanager, &labels, fired, SystemTime::now());
    let started = Instant::now();
    let path = format!(
        "/api/v2/alerts?active=true&filter={}",
        monitoring::url_encode("alertname=\"CheckoutPaymentsFailing\"")
    );
    loop {
        let answer = env.alertmanager.get(&path);
        if matches!(&answer, Ok((200, body)) if body.trim() == "[]") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the alert is still active: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The exporter degrades (5xx from 0.1/s to 1000/s next to 100/s OK) after two healthy rounds:
/// `error-rate` (`> 0.02`, `trips_after: 2`) trips, the watch exits 3 showing the value and
/// the threshold, `status` and `check` show why, and the journal has every measurement and the
/// verdict with its evidence.
fn a_degraded_exporter_requires_a_rollback(env: &Monitoring) {
    let plan = env.plan("degrade.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    let mut watch = env.watch(&release);
    watch.wait_until("two healthy rounds", VERDICT_WITHIN, |lines| {
        measured(lines, "passing", "error-rate") >= 2
    });
    env.traffic.set_degraded(true);
    let degraded = Instant::now();
    let done = watch.finish(VERDICT_WITHIN);
    done.assert_code(3, "watch of a degraded release");
    let verdict_at = done
        .first("verdict: rollback_required")
        .expect("a rollback_required verdict line");
    eprintln!(
        "rollback_required {} after the exporter degraded (exit after {})",
        secs(verdict_at - degraded),
        secs(done.exited_at - degraded)
    );
    assert!(done.exited_at - degraded < VERDICT_WITHIN);

    let out = done.stdout();
    assert!(out.contains("verdict: healthy"), "{out}");
    assert!(
        out.contains("verdict: rollback_required (error-rate)"),
        "{out}"
    );
    let failing = line_of(&out, "failing", "error-rate")
        .unwrap_or_else(|| panic!("error-rate failed once before it tripped:\n{out}"));
    assert!(failing.contains("(1 failing in a row)"), "{failing}");
    let tripped = line_of(&out, "TRIPPED", "error-rate")
        .unwrap_or_else(|| panic!("error-rate not TRIPPED:\n{out}"));
    let reason = reason_in(tripped, "error-rate");
    let (value, rest) = reason.split_once(' ').expect("value, then the condition");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("a value first: {tripped}"));
    assert!(value > 0.02 && value < 1.0, "{tripped}");
    assert!(
        rest.starts_with("is above 0.02 (2 failing in a row)"),
        "{tripped}"
    );
    eprintln!("watch showed: {tripped}");
    for criterion in ["p99-latency", "health", "payments-alert"] {
        assert!(
            line_of(&out, "passing", criterion).is_some(),
            "{criterion} still passing:\n{out}"
        );
    }

    // Status: the verdict and why, as the journal has it.
    let status = env.status(&release);
    assert_eq!(status["verdict"], "rollback_required", "{status:#}");
    assert_eq!(status["window_closed"], false, "{status:#}");
    let criteria = status["criteria"].as_array().expect("criteria");
    let state = |id: &str| {
        criteria
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {status:#}"))["state"]
            .clone()
    };
    let error_rate = state("error-rate");
    assert_eq!(error_rate["status"], "tripped", "{error_rate:#}");
    assert!(
        error_rate["consecutive_failures"].as_u64() >= Some(2),
        "{error_rate:#}"
    );
    let last_reason = error_rate["last_reason"].as_str().unwrap_or_default();
    assert!(last_reason.ends_with(" is above 0.02"), "{last_reason:?}");
    let p99 = state("p99-latency");
    assert_eq!(p99["status"], "passing", "{p99:#}");
    let latency: f64 = p99["last_reason"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("p99 as a number: {p99:#}"));
    assert!(
        (0.05..=0.1).contains(&latency),
        "p99 about 0.1 s: {latency}"
    );
    for id in ["health", "payments-alert"] {
        assert_eq!(state(id)["status"], "passing", "{status:#}");
    }
    let human = stdout(&env.backout(&["status", &release]));
    assert!(
        line_of(&human, "TRIPPED", "error-rate").is_some()
            && human.contains("verdict: rollback_required (error-rate)"),
        "{human}"
    );

    // Check measures once more: a tripped criterion stays tripped.
    let out = env.backout(&["check", &release]);
    assert_code(&out, 3, "check of a tripped release");
    let text = stdout(&out);
    let line = line_of(&text, "TRIPPED", "error-rate")
        .unwrap_or_else(|| panic!("check shows error-rate TRIPPED:\n{text}"));
    assert!(
        reason_in(line, "error-rate").contains(" is above 0.02 ("),
        "{line}"
    );
    assert!(
        text.contains("verdict: rollback_required (error-rate)"),
        "{text}"
    );

    // The journal: every measurement, and the verdict with its evidence.
    let events = env.journal(&release);
    // The first failing measurement (1 of trips_after 2) is `degrading`, never `healthy`.
    assert_eq!(
        verdicts(&events),
        ["healthy", "degrading", "rollback_required"],
        "{:?}",
        kinds(&events)
    );
    let error_rate = measurements(&events, "error-rate");
    let classes: Vec<&str> = error_rate
        .iter()
        .filter_map(|e| e.payload["class"].as_str())
        .collect();
    assert!(
        classes.starts_with(&["passing", "passing"]) && classes.ends_with(&["failing", "failing"]),
        "{classes:?}"
    );
    let verdict = events
        .iter()
        .find(|e| e.kind == "verdict" && e.payload["verdict"] == "rollback_required")
        .expect("the verdict event");
    let evidence = &verdict.payload["evidence"]["criteria"];
    assert_eq!(evidence[0]["criterion"], "error-rate", "{evidence:#}");
    assert_eq!(evidence[0]["status"], "tripped", "{evidence:#}");
    assert!(
        evidence[0]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with(" is above 0.02")),
        "{evidence:#}"
    );
    for criterion in ["p99-latency", "health", "payments-alert"] {
        assert!(
            !measurements(&events, criterion).is_empty(),
            "{criterion} measured"
        );
    }
    env.traffic.set_degraded(false);
}

/// `watch` of a release whose window is closed says so and exits 5, as `check` does (and as
/// `watch --help` says). Needs no monitoring: nothing is measured once the window is closed.
#[test]
fn watch_of_a_closed_window_exits_5() {
    let sandbox = Sandbox::new();
    let plan = reference_plan().display().to_string();
    let out = sandbox.run(&["start", &plan]);
    assert_code(&out, 0, "start");
    let release = stdout(&out).trim().to_string();
    assert_code(
        &sandbox.run(&["checkpoint", &release, "contract-migration"]),
        0,
        "checkpoint contract-migration",
    );
    let check = sandbox.run(&["check", &release]);
    assert_code(&check, 5, "check of a closed window");
    let watch = sandbox.run(&["watch", &release]);
    assert_code(&watch, 5, "watch of a closed window");
    assert!(
        stdout(&watch).contains(
            "verdict: closed; window closed: point of no return: checkpoint \
             `contract-migration` reached"
        ),
        "{}",
        stdout(&watch)
    );
}
