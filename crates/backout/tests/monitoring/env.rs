//! The monitoring environment every scenario shares: the checkout service's traffic as its
//! exporter counts it, a real Prometheus scraping that exporter and a real Alertmanager, the
//! reference plan adapted to them, and a sandbox whose `backout` is pointed at them.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backout_sqlite::SqliteStore;
use backout_store::{Event, Store};
use serde_json::Value;

use crate::monitoring::{self, Reply, Server};
use crate::support::{Cli, Ran, Sandbox};
use crate::watch::Watch;

/// The most a verdict may take to show after its cause. Expected: about a scrape (1 s) plus
/// `trips_after` measurements `every: 1s`, 1–3 s; the bound is generous for a loaded machine.
pub const VERDICT_WITHIN: Duration = Duration::from_secs(30);

/// Requests per second the exporter counts: OK ones, and 5xx ones while healthy (an error
/// rate of 0.001, passing `<= 0.005`) and degraded. The degraded rate is high enough that the
/// first scrape after the change lifts the `[5m]` error rate over `> 0.02` even with five
/// minutes of healthy history: a rate that climbed through the band between the thresholds
/// would (rightly) be measured inconclusive, and `watch` would stop there with exit 4.
pub const OK_PER_S: f64 = 100.0;
pub const ERRORS_PER_S_HEALTHY: f64 = 0.1;
pub const ERRORS_PER_S_DEGRADED: f64 = 1000.0;

/// The `success_when.hold` of the release that is to succeed, and of those that must not
/// succeed before their failure is seen.
pub const SHORT_HOLD: &str = "3s";
pub const LONG_HOLD: &str = "10m";

/// The checkout service's traffic, as its exporter counts it: counters that grow with wall
/// time at the current rates.
pub struct Traffic {
    counters: Mutex<Counters>,
}

pub struct Counters {
    at: Instant,
    ok: f64,
    errors: f64,
    degraded: bool,
}

impl Counters {
    pub fn advance(&mut self) {
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
    pub fn new() -> Traffic {
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
    pub fn set_degraded(&self, degraded: bool) {
        self.counters.lock().unwrap().degraded = degraded;
    }

    /// `/metrics` in Prometheus' text format. Every request takes between 50 and 100 ms, so
    /// `histogram_quantile(0.99, …)` is about 0.1 s. No `job` label: Prometheus attaches
    /// `job="checkout"` from the scrape job, as it does for a real target.
    pub fn metrics(&self) -> String {
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
pub struct Monitoring {
    /// First to drop: kills any `backout` a failed scenario left running.
    pub sandbox: Sandbox,
    pub runtime: tokio::runtime::Runtime,
    pub traffic: Arc<Traffic>,
    pub exporter: SocketAddr,
    pub prometheus: Server,
    pub alertmanager: Server,
    pub reference: String,
}

impl Monitoring {
    pub fn start() -> Monitoring {
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
    pub fn wait_for_data(&self) {
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
    pub fn plan(&self, name: &str, hold: &str) -> PathBuf {
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
        self.backout(&["lint", name]).code(0);
        path
    }

    /// `backout` on the sandbox's store, with the test's Prometheus in `PROMETHEUS_URL`.
    pub fn command(&self) -> Command {
        let mut cmd = self.sandbox.command();
        cmd.env("PROMETHEUS_URL", &self.prometheus.url)
            .env_remove("ALERTMANAGER_URL")
            .env("BACKOUT_USER", "deploy-bot");
        cmd
    }

    pub fn backout(&self, args: &[&str]) -> Ran {
        Cli::from_command(self.command()).args(args).run()
    }

    /// `backout start PLAN [ARGS]`: the release id it prints.
    pub fn start_release(&self, plan: &Path, args: &[&str]) -> String {
        let plan = plan.display().to_string();
        let mut all = vec!["start", plan.as_str()];
        all.extend_from_slice(args);
        let id = self.backout(&all).code(0).stdout().trim().to_string();
        assert!(
            id.starts_with("rel-"),
            "start prints the release id: {id:?}"
        );
        id
    }

    /// `backout status REL --format json`.
    pub fn status(&self, release: &str) -> Value {
        self.backout(&["status", release, "--format", "json"])
            .code(0)
            .json()
    }

    /// `backout watch REL` in the background, its output read as it comes.
    pub fn watch(&self, release: &str) -> Watch {
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
    pub fn journal(&self, release: &str) -> Vec<Event> {
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
    pub fn verify_chain(&self) {
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

pub fn reference_plan() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid/checkout.yaml")
}
