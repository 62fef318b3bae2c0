//! `backout import argo|flagger`: criteria from Argo Rollouts and Flagger manifests (fixtures
//! under tests/fixtures/, written from those projects' documented schemas). The imported block
//! must lint clean inside a plan (warnings denied); what cannot be imported exits 2 by name.
//! That the imported criteria evaluate as the source would is tested on real history in
//! tests/backtest.rs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn import(args: &[&str]) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .arg("import")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("backout runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lints `criteria` inside an otherwise complete plan, warnings denied.
fn lints_clean(criteria: &str) {
    let dir = tempfile::tempdir().unwrap();
    let body =
        format!("{criteria}authorization: {{ deciders: ops }}\nexecution: {{ performers: ops }}\n");
    let file = dir.path().join("plan.yaml");
    std::fs::write(&file, support::plan(&body)).unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .args(["lint", "--deny-warnings"])
        .arg(&file)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imported criteria do not lint clean:\n{}\n{}",
        std::fs::read_to_string(&file).unwrap(),
        stdout(&out)
    );
}

#[test]
fn an_argo_analysis_template_becomes_criteria_with_every_field_accounted_for() {
    let file = fixture("argo/error-rate.yaml");
    let out = import(&[
        "argo",
        file.to_str().unwrap(),
        "--arg",
        "service-name=checkout",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    for want in [
        "    prometheus: { url: \"http://prometheus.monitoring:9090\" }",
        "    - id: error-rate\n",
        r#"job=\"checkout\",code=~\"5..\""#,
        "      fails_if: \"> 0.02\"   # failureCondition: result[0] > 0.02",
        "      passes_if: \"<= 0.005\"   # successCondition: result[0] <= 0.005",
        "      every: 1m   # interval: 1m",
        "      trips_after_total: 2   # failureLimit: 1",
        "      errors_after: 3   # consecutiveErrorLimit: 2",
        "      # not imported: count: 240 does not map",
        "    - id: p99-latency\n",
        "      delay: 5m   # initialDelay: 5m",
        "      trips_after_total: 3   # failureLimit: 2",
        "      shadow: true   # dryRun",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("{{args."), "{text}");
    lints_clean(&text);
}

#[test]
fn an_argument_without_a_value_is_named() {
    let file = fixture("argo/error-rate.yaml");
    let out = import(&["argo", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(
            "metric `error-rate` of `checkout-health`: argument(s) service-name have no value"
        ) && err.contains("--arg NAME=VALUE"),
        "{err}"
    );
}

#[test]
fn what_cannot_be_imported_exits_2_by_name_and_the_rest_is_printed() {
    let file = fixture("argo/unsupported.yaml");
    let out = import(&["argo", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("metric `smoke-test` of `smoke`: provider `web`"),
        "{err}"
    );
    assert!(
        err.contains(
            "metric `empty-or-low` of `smoke`: successCondition `len(result) == 0 || result[0] >= 0.9` is not of the form `result[0] OP NUMBER`"
        ),
        "{err}"
    );
    let text = stdout(&out);
    assert!(text.contains("    - id: queue-depth\n"), "{text}");
    assert!(text.contains("fails_if: \">= 1000\""), "{text}");
    assert!(!text.contains("smoke-test") && !text.contains("empty-or-low"));
    lints_clean(&text);
}

#[test]
fn a_flagger_canary_and_its_metric_templates_become_criteria() {
    let templates = fixture("flagger/metric-templates.yaml");
    let canary = fixture("flagger/canary.yaml");
    let out = import(&[
        "flagger",
        templates.to_str().unwrap(),
        canary.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    for want in [
        "    - id: error-rate\n",
        r#"namespace=\"test\",job=\"checkout\",code!~\"5..\"}[1m]"#,
        "      passes_if: \"<= 1\"   # thresholdRange.max: 1",
        "      every: 1m   # analysis.interval",
        "      trips_after_total: 5   # analysis.threshold: 5",
        // Two bounds, two criteria: outside either is failing, as for Flagger.
        "    - id: latency-min\n",
        "      passes_if: \">= 1\"   # thresholdRange.min: 1",
        "    - id: latency-max\n",
        "      passes_if: \"<= 500\"   # thresholdRange.max: 500",
        "[30s]",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("{{"), "{text}");
    lints_clean(&text);
}

#[test]
fn a_flagger_builtin_metric_is_named() {
    let canary = fixture("flagger/canary-builtin.yaml");
    let out = import(&["flagger", canary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("metric `request-success-rate` of canary `search`: a builtin metric"),
        "{}",
        stderr(&out)
    );
}
