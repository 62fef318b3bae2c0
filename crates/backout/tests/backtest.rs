//! `backout criteria backtest` against a real Prometheus holding a known week of history.
//!
//! The history is the reference plan's `error-rate` signal, written as OpenMetrics counters
//! (`http_requests_total{job="checkout",code="200"|"500"}`), backfilled with `promtool tsdb
//! create-blocks-from openmetrics` (Debian's prometheus package), and served by `prometheus`
//! started on that data. Samples fall at hh:mm:30 and the backtest steps at hh:mm:00, so each
//! step's `rate(…[5m])` spans exactly the four one-minute increments before it and the ratio of
//! the two rates is (5xx in those four minutes) / 4000, whatever the version's range bounds:
//!
//! - baseline: 1000 requests a minute, 2 of them 5xx (0.002, passing `<= 0.005`);
//! - two incidents of 20 minutes at 100 5xx a minute: failing from the step after the first
//!   minute (0.0265) to 23 steps later; `trips_after: 2` trips at the second step (0.051);
//! - two bumps of 3 minutes at 30 5xx a minute: 0.009, 0.016, 0.023, 0.023, 0.016, 0.009: one
//!   trip each at 0.023 with the reference `> 0.02`: the false trips;
//! - a 30-minute scrape gap: 28 steps without data.
//!
//! The expected figures below are worked out from those numbers by hand, not recomputed.

#[path = "../../backout-core/tests/support/monitoring.rs"]
mod monitoring;
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const MINUTE: u64 = 60;
/// Samples written: from an hour-aligned start eight days ago, for eight days less two hours.
const SAMPLES: u64 = 8 * 24 * 60 - 120;
const INCIDENTS: [u64; 2] = [2000, 7000];
const BUMPS: [u64; 2] = [3500, 9000];
const GAP: u64 = 5000;
/// The backtest's range, in steps (minutes) after the start.
const FROM: u64 = 120;
const TO: u64 = 10_200;

/// 5xx responses in minute `j` of the history.
fn errors_in(j: u64) -> u64 {
    if INCIDENTS.iter().any(|i| (*i..i + 20).contains(&j)) {
        100
    } else if BUMPS.iter().any(|b| (*b..b + 3).contains(&j)) {
        30
    } else {
        2
    }
}

fn reference_plan() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid/checkout.yaml")
}

/// A week of history backfilled into a TSDB, and a Prometheus serving it.
struct History {
    prometheus: monitoring::Server,
    /// Unix seconds of minute 0.
    start: u64,
}

impl History {
    fn at(&self, minute: u64) -> String {
        monitoring::rfc3339(UNIX_EPOCH + Duration::from_secs(self.start + minute * MINUTE))
    }

    fn backtest(&self, args: &[&str]) -> Value {
        let out = self.run(&[args, &["--format", "json"]].concat());
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// `backout criteria backtest` of the reference plan over the test's range; it must
    /// succeed.
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_plan(&reference_plan(), args)
    }

    fn run_plan(&self, plan: &Path, args: &[&str]) -> std::process::Output {
        let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
            .args(["criteria", "backtest"])
            .arg(plan)
            .args(["--from", &self.at(FROM), "--to", &self.at(TO)])
            .args(args)
            .env("PROMETHEUS_URL", &self.prometheus.url)
            .env("NO_COLOR", "1")
            .output()
            .expect("backout runs");
        assert!(
            out.status.success(),
            "backtest {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.prometheus.log_tail()
        );
        out
    }
}

fn backfill() -> History {
    monitoring::require("promtool");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = (now - 8 * 24 * 3600) / 3600 * 3600;
    let mut text = String::from("# TYPE http_requests counter\n");
    for code in ["200", "500"] {
        let mut total: u64 = if code == "500" { 1_000 } else { 1_000_000 };
        for j in 0..SAMPLES {
            let e = errors_in(j);
            total += if code == "500" { e } else { 1000 - e };
            if (GAP..GAP + 30).contains(&j) {
                continue;
            }
            writeln!(
                text,
                "http_requests_total{{job=\"checkout\",code=\"{code}\"}} {total} {}",
                start + j * MINUTE + 30
            )
            .unwrap();
        }
    }
    text.push_str("# EOF\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.om");
    std::fs::write(&file, text).unwrap();
    let data = dir.path().join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&data)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = monitoring::free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data.display()),
        "--storage.tsdb.retention.time=30d".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    monitoring::require(monitoring::PROMETHEUS);
    let mut prometheus = monitoring::start(monitoring::PROMETHEUS, &args, dir, port);
    prometheus.wait_ready("prometheus", "/-/ready", Duration::from_secs(30));
    History { prometheus, start }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn the_reference_error_rate_on_a_backfilled_week() {
    let history = backfill();
    let incidents: Vec<String> = INCIDENTS.iter().map(|i| history.at(*i)).collect();
    let json = history.backtest(&[
        "--criterion",
        "error-rate",
        "--incident",
        &incidents[0],
        "--incident",
        &incidents[1],
    ]);
    let c = &json["criteria"][0];
    assert_eq!(c["id"], "error-rate");
    assert_eq!(
        c["measurements"],
        TO - FROM + 1,
        "one a minute, in two chunks"
    );
    assert_eq!(c["failing"], 2 * 23 + 2 * 2, "{c:#}");
    assert_eq!(c["no_data"], 28, "the gap, less the 5m lookback");
    assert_eq!(c["inconclusive"], 28 + 2 * 4, "{c:#}");
    assert!(close(&c["signal"]["p50"], 0.002), "{c:#}");
    assert!(close(&c["signal"]["max"], 0.1), "{c:#}");
    let trips: Vec<(String, f64)> = c["trips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["at"].as_str().unwrap().to_string(),
                t["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let expected = [
        (INCIDENTS[0] + 2, 0.051),
        (BUMPS[0] + 4, 0.023),
        (INCIDENTS[1] + 2, 0.051),
        (BUMPS[1] + 4, 0.023),
    ];
    assert_eq!(trips.len(), expected.len(), "{c:#}");
    for ((at, value), (minute, want)) in trips.iter().zip(expected) {
        assert_eq!(at, &history.at(minute));
        assert!((value - want).abs() < 1e-9, "{at}: {value} != {want}");
    }
    assert_eq!(c["false_trips"], 2, "the two bumps");
    assert_eq!(
        c["trips"][1]["reason"], "0.023 is above 0.02",
        "the watcher's own reason"
    );
    for (caught, incident) in c["incidents"].as_array().unwrap().iter().zip(&incidents) {
        assert_eq!(&caught["at"], incident);
        assert_eq!(caught["caught"], true);
        assert_eq!(caught["after_seconds"], 120);
    }

    // The suggestion: above the bumps' 0.023, below what both incidents reach for two steps in
    // a row (0.1), a round number near the middle: 0.05, caught one step later than before.
    let json = history.backtest(&[
        "--criterion",
        "error-rate",
        "--incident",
        &incidents[0],
        "--incident",
        &incidents[1],
        "--suggest",
    ]);
    let s = &json["criteria"][0]["suggestion"];
    assert_eq!(s["fails_if"], "> 0.05", "{s:#}");
    assert_eq!(s["trips_after"], 2);
    assert_eq!(s["false_trips"], 0);
    assert_eq!(s["trips"], 2);
    assert_eq!(s["incidents_caught"], 2);
    assert_eq!(s["caught_after_seconds"], serde_json::json!([180, 180]));
    assert!(close(&s["range"][0], 0.023), "{s:#}");
    // Allowing one false trip does not make it worse at catching.
    let json = history.backtest(&[
        "--criterion",
        "error-rate",
        "--incident",
        &incidents[0],
        "--incident",
        &incidents[1],
        "--suggest",
        "--max-false-trips",
        "1",
    ]);
    let s = &json["criteria"][0]["suggestion"];
    assert!(s["false_trips"].as_u64().unwrap() <= 1, "{s:#}");
    assert_eq!(s["incidents_caught"], 2, "{s:#}");
}

#[test]
fn releases_at_given_times_replay_their_own_delay_and_window() {
    let history = backfill();
    // Deployed 5 minutes before the first incident: tripped 2 minutes into it. Deployed in the
    // middle of a bump: its 5m delay hides both failing steps, so that release never trips.
    let before = history.at(INCIDENTS[0] - 5);
    let during = history.at(BUMPS[0] + 2);
    let json = history.backtest(&[
        "--criterion",
        "error-rate",
        "--deploy-at",
        &before,
        "--deploy-at",
        &during,
    ]);
    let trips = json["criteria"][0]["trips"].as_array().unwrap().clone();
    assert_eq!(trips.len(), 1, "{trips:#?}");
    assert_eq!(trips[0]["at"], history.at(INCIDENTS[0] + 2));
    assert_eq!(trips[0]["deployed"], before.as_str());

    // For people: which trips and why, and the patch with its figures.
    let out = history.run(&["--criterion", "error-rate", "--suggest"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "would have tripped 4 time(s)",
        &format!("{}: 0.023 is above 0.02", history.at(BUMPS[0] + 4)),
        "signal: p50 0.002",
        "    - id: error-rate\n      fails_if: \"> 0.",
        "# was \"> 0.02\": 4 trip(s), 4 outside incidents; now",
        "trips_after: ",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn a_prometheus_that_is_not_there_is_a_clear_error() {
    let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .args(["criteria", "backtest"])
        .arg(reference_plan())
        .args(["--since", "1h", "--criterion", "error-rate"])
        .env(
            "PROMETHEUS_URL",
            format!("http://127.0.0.1:{}", monitoring::free_port()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("criterion `error-rate`: could not read its history")
            && stderr.contains("could not connect"),
        "{stderr}"
    );
    let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .args(["criteria", "backtest"])
        .arg(reference_plan())
        .args(["--criterion", "health"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a prometheus criterion"));
}

/// An Argo Rollouts template, imported, judges the same history as its own conditions would:
/// `failureCondition: result[0] > 0.02` fails the same 50 measurements, and `failureLimit: 1`
/// (more than one failed measurement in the analysis: `trips_after_total: 2`) fails the
/// analysis at the same four times as the reference criterion's two in a row, since every
/// failing episode here is at least two measurements long and they lie hours apart.
#[test]
fn an_imported_argo_template_trips_where_its_conditions_fail() {
    let history = backfill();
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/argo/error-rate.yaml");
    let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .args(["import", "argo"])
        .arg(&template)
        .args(["--arg", "service-name=checkout"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let criteria = String::from_utf8_lossy(&out.stdout)
        .replace("http://prometheus.monitoring:9090", &history.prometheus.url);
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("imported.yaml");
    std::fs::write(
        &plan,
        support::plan(&format!(
            "{criteria}authorization: {{ deciders: ops }}\nexecution: {{ performers: ops }}\n"
        )),
    )
    .unwrap();
    let out = history.run_plan(&plan, &["--criterion", "error-rate", "--format", "json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &json["criteria"][0];
    assert_eq!(c["failing"], 50, "{c:#}");
    assert_eq!(c["no_data"], 28);
    let at: Vec<&str> = c["trips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["at"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = [
        INCIDENTS[0] + 2,
        BUMPS[0] + 4,
        INCIDENTS[1] + 2,
        BUMPS[1] + 4,
    ]
    .iter()
    .map(|m| history.at(*m))
    .collect();
    assert_eq!(at, expected, "{c:#}");
}
