//! `backout start`, `checkpoint` and `status REL` against a real SQLite file.

use std::path::Path;
use std::process::Output;

fn backout(db: &Path, args: &[&str]) -> Output {
    assert_cmd::Command::cargo_bin("backout")
        .expect("the backout binary is built")
        .env("BACKOUT_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("BACKOUT_USER", "deploy-bot")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("backout runs")
}

fn checkout_plan() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/plans/valid/checkout.yaml")
        .display()
        .to_string()
}

fn status_json(db: &Path, release: &str) -> serde_json::Value {
    let out = backout(db, &["status", release, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --format json is JSON")
}

#[test]
fn start_opens_a_window_and_checkpoints_close_it_at_the_point_of_no_return() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let out = backout(&db, &["start", &checkout_plan(), "--version", "2.14.1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(
        release.starts_with("rel-"),
        "start prints the release id alone: {release:?}"
    );

    let status = status_json(&db, &release);
    assert_eq!(
        status["version"], "2.14.1",
        "--version overrides the plan's"
    );
    assert_eq!(status["rollback_to"], "2.13.4");
    assert_eq!(status["state"], "open");
    assert_eq!(status["window_closed"], false);
    let opened = status["opened_at_ms"].as_i64().expect("opened_at_ms");
    assert_eq!(
        status["closes_at_ms"].as_i64(),
        Some(opened + 4 * 3_600_000),
        "closes_after: 4h"
    );

    assert!(
        backout(&db, &["checkpoint", &release, "expand-migration"])
            .status
            .success()
    );
    let undeclared = backout(&db, &["checkpoint", &release, "expand-migrations"]);
    assert_eq!(undeclared.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&undeclared.stderr)
            .contains("declares no checkpoint `expand-migrations`")
    );
    assert_eq!(
        backout(&db, &["checkpoint", &release, "expand-migration"])
            .status
            .code(),
        Some(5),
        "reached twice"
    );

    assert!(
        backout(&db, &["checkpoint", &release, "contract-migration"])
            .status
            .success()
    );
    let status = status_json(&db, &release);
    assert_eq!(status["state"], "closed");
    assert_eq!(status["window_closed"], true);
    assert!(
        status["close_reason"]
            .as_str()
            .unwrap_or("")
            .contains("point of no return")
    );
    let names: Vec<&str> = status["checkpoints"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["expand-migration", "contract-migration"]);
    assert_eq!(status["checkpoints"][0]["actor"], "deploy-bot");

    let late = backout(&db, &["checkpoint", &release, "traffic-shifted"]);
    assert_eq!(late.status.code(), Some(5), "the window is closed");
    let human = backout(&db, &["status", &release]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("window: closed") && text.contains("(point of no return)"),
        "{text}"
    );
}

#[test]
fn a_plan_without_a_window_never_closes_on_time_and_unknown_releases_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let plan =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid/search-flag.yaml");
    let out = backout(&db, &["start", &plan.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let status = status_json(&db, &release);
    assert_eq!(status["closes_at_ms"], serde_json::Value::Null);
    assert_eq!(
        status["version"], "5.2.0",
        "the plan's version when --version is not given"
    );
    let missing = backout(&db, &["status", "rel-nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no release `rel-nope`"));
}

#[test]
fn an_invalid_plan_opens_no_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let plan = dir.path().join("broken.yaml");
    std::fs::write(&plan, "version: 1\nrelease: {}\n").expect("write plan");
    let out = backout(&db, &["start", &plan.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
}
