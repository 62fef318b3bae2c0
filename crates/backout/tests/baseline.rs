//! Baseline-relative criteria (`baseline: {offset: 1d}`, `fails_if: "> 1.5x baseline"`) against
//! a real Prometheus holding real history: the backtest and the live source.
//!
//! History: a gauge `baseline_signal{job="svc"}`, one sample a minute at hh:mm:00 from an
//! hour-aligned start 50–51 hours ago, for 47 hours (it ends 3–4 hours before now, clear of the
//! head block), backfilled with `promtool tsdb create-blocks-from openmetrics`. It is 1 except
//! two bumps a day after the first day:
//!
//! - minutes 1740..1760 at 2 (2x its value a day earlier: above 1.5x, failing);
//! - minutes 2040..2060 at 1.4 (1.4x: not above 1.5x, passing).
//!
//! A day before either bump the signal was 1, so the criterion trips exactly once, at minute
//! 1740, and never for the second bump. The live part scrapes an exporter this test serves
//! (the signal now), while the history gives the value a day ago (1: minutes 1560..1620).

#[path = "../../backout-core/tests/support/monitoring.rs"]
mod monitoring;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backout_core::criteria::{Measured, Observation, classify, sources};
use backout_core::env::Resolver;
use serde_json::Value;

const MINUTE: u64 = 60;
const SAMPLES: u64 = 47 * 60;
const TRIPPING: u64 = 1740;
const HARMLESS: u64 = 2040;
const FROM: u64 = 1500;
const TO: u64 = 2400;

fn signal_at(j: u64) -> f64 {
    if (TRIPPING..TRIPPING + 20).contains(&j) {
        2.0
    } else if (HARMLESS..HARMLESS + 20).contains(&j) {
        1.4
    } else {
        1.0
    }
}

fn plan(dir: &Path, baseline: &str) -> std::path::PathBuf {
    let text = format!(
        r#"version: 1
release: {{ service: svc, version: "2", rollback_to: "1", environment: test }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  sources: {{ prometheus: {{ url: "${{PROMETHEUS_URL}}" }} }}
  rollback_when:
    - id: latency
      prometheus: max(baseline_signal)
      baseline: {baseline}
      fails_if: "> 1.5x baseline"
      every: 1m
window: {{ closes_after: 4h }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure: {{ not_applicable: "t" }}
contingency: {{ not_applicable: "t" }}
workarounds: []
expected_duration: {{ not_applicable: "t" }}
communication: {{ not_applicable: "t" }}
testing: {{ not_applicable: "t" }}
"#
    );
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Backfills the history and starts Prometheus on it, scraping `exporter` (if any) every 1s.
fn prometheus(exporter: Option<std::net::SocketAddr>) -> (monitoring::Server, u64) {
    monitoring::require("promtool");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = (now - 50 * 3600) / 3600 * 3600;
    let mut text = String::from("# TYPE baseline_signal gauge\n");
    for j in 0..SAMPLES {
        writeln!(
            text,
            "baseline_signal{{job=\"svc\"}} {} {}",
            signal_at(j),
            start + j * MINUTE
        )
        .unwrap();
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
    let mut config = String::from("global:\n  scrape_interval: 1s\n");
    if let Some(address) = exporter {
        config.push_str(&format!(
            "scrape_configs:\n  - job_name: live\n    static_configs:\n      - targets: [\"{address}\"]\n"
        ));
    }
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = monitoring::free_port();
    let args = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.tsdb.path={}", data.display()),
        "--storage.tsdb.retention.time=30d".to_string(),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    monitoring::require(monitoring::PROMETHEUS);
    let mut server = monitoring::start(monitoring::PROMETHEUS, &args, dir, port);
    server.wait_ready("prometheus", "/-/ready", Duration::from_secs(30));
    (server, start)
}

fn at(start: u64, minute: u64) -> String {
    monitoring::rfc3339(UNIX_EPOCH + Duration::from_secs(start + minute * MINUTE))
}

#[test]
fn backtest_trips_only_above_one_and_a_half_times_a_day_earlier() {
    let (prometheus, start) = prometheus(None);
    let dir = tempfile::tempdir().unwrap();
    let run = |baseline: &str| {
        Command::new(assert_cmd::cargo::cargo_bin("backout"))
            .args(["criteria", "backtest"])
            .arg(plan(dir.path(), baseline))
            .args(["--from", &at(start, FROM), "--to", &at(start, TO)])
            .args(["--format", "json"])
            .env("PROMETHEUS_URL", &prometheus.url)
            .env("NO_COLOR", "1")
            .output()
            .expect("backout runs")
    };
    let out = run("{ offset: 1d }");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        prometheus.log_tail()
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &json["criteria"][0];
    assert_eq!(c["measurements"], TO - FROM + 1, "{c:#}");
    assert_eq!(c["failing"], 20, "only the 2x bump fails: {c:#}");
    assert_eq!(c["no_data"], 0, "{c:#}");
    let trips = c["trips"].as_array().unwrap();
    assert_eq!(trips.len(), 1, "{c:#}");
    assert_eq!(trips[0]["at"], at(start, TRIPPING), "{c:#}");
    assert_eq!(
        trips[0]["reason"], "2 is above 1.5x baseline 1 (2x)",
        "{c:#}"
    );

    // A before_deploy baseline is fixed per release: the backtest says it skips it.
    let out = run("{ before_deploy: 1h }");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("criterion `latency` is skipped"),
        "{stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["criteria"].as_array().unwrap().len(), 0, "{json:#}");
}

#[test]
fn live_source_compares_with_the_value_a_day_earlier() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let now_value = Arc::new(Mutex::new(2.0_f64));
    let served = now_value.clone();
    let exporter = runtime.block_on(monitoring::exporter(move |_path| {
        monitoring::Reply::ok(format!(
            "# TYPE baseline_signal gauge\nbaseline_signal {}\n",
            served.lock().unwrap()
        ))
    }));
    let (mut prometheus, _start) = prometheus(Some(exporter));
    let dir = tempfile::tempdir().unwrap();
    let opened_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        - 30 * 60 * 1000;
    let observe = |prometheus: &mut monitoring::Server, baseline: &str, want: f64| {
        let linted = backout_model::lint(
            &std::fs::read_to_string(plan(dir.path(), baseline))
                .unwrap()
                .replace("${PROMETHEUS_URL}", &prometheus.url),
        );
        let plan = linted.plan.expect("the test plan lints");
        let criterion = plan.criterion("latency").unwrap().clone();
        let source = sources::for_criterion_at(
            &criterion,
            &sources::of_plan(&plan),
            Arc::new(Resolver::default()),
            Some(opened_ms),
        )
        .unwrap();
        let started = Instant::now();
        loop {
            prometheus.check_alive("prometheus");
            let observation = runtime.block_on(source.observe());
            if let Observation::Values { series } = &observation
                && series.len() == 1
                && series[0].value == want
            {
                assert_eq!(series[0].baseline, Some(1.0), "{observation:?}");
                return classify(&criterion, &observation);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "still {observation:?}; log:\n{}",
                prometheus.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert_eq!(
        observe(&mut prometheus, "{ offset: 1d }", 2.0),
        (
            Measured::Failing,
            "2 is above 1.5x baseline 1 (2x)".to_string()
        )
    );
    assert_eq!(
        observe(&mut prometheus, "{ before_deploy: 1d }", 2.0).0,
        Measured::Failing
    );
    *now_value.lock().unwrap() = 1.4;
    assert_eq!(
        observe(&mut prometheus, "{ offset: 1d }", 1.4),
        (Measured::Passing, "1.4 (baseline 1, 1.4x)".to_string())
    );
    assert_eq!(
        observe(&mut prometheus, "{ before_deploy: 1d }", 1.4).0,
        Measured::Passing
    );
}
