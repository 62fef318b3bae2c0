//! `backout start`, `checkpoint` and `status REL` against a real SQLite file.

mod support;

use std::path::Path;

use support::{Cli, Ran, cli};

/// `backout` on the store `db`, as `deploy-bot`.
fn backout_on(db: &Path) -> Cli {
    cli()
        .env("BACKOUT_DATABASE_URL", format!("sqlite://{}", db.display()))
        .user("deploy-bot")
}

/// Runs `backout ARGS` on the store `db` as `deploy-bot`.
fn backout(db: &Path, args: &[&str]) -> Ran {
    backout_on(db).args(args).run()
}

fn checkout_plan() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/plans/valid/checkout.yaml")
        .display()
        .to_string()
}

fn status_json(db: &Path, release: &str) -> serde_json::Value {
    backout(db, &["status", release, "--format", "json"])
        .code(0)
        .json()
}

#[test]
fn start_opens_a_window_and_checkpoints_close_it_at_the_point_of_no_return() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let release = backout(&db, &["start", &checkout_plan(), "--version", "2.14.1"])
        .code(0)
        .stdout()
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

    backout(&db, &["checkpoint", &release, "expand-migration"]).code(0);
    let undeclared = backout(&db, &["checkpoint", &release, "expand-migrations"]).code(2);
    assert!(
        undeclared
            .stderr()
            .contains("declares no checkpoint `expand-migrations`")
    );
    // Reached twice.
    backout(&db, &["checkpoint", &release, "expand-migration"]).code(5);

    backout(&db, &["checkpoint", &release, "contract-migration"]).code(0);
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

    // The window is closed.
    backout(&db, &["checkpoint", &release, "traffic-shifted"]).code(5);
    let text = backout(&db, &["status", &release]).stdout();
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
    let release = backout(&db, &["start", &plan.display().to_string()])
        .code(0)
        .stdout()
        .trim()
        .to_string();
    let status = status_json(&db, &release);
    assert_eq!(status["closes_at_ms"], serde_json::Value::Null);
    assert_eq!(
        status["version"], "5.2.0",
        "the plan's version when --version is not given"
    );
    let missing = backout(&db, &["status", "rel-nope"]).code(2);
    assert!(missing.stderr().contains("no release `rel-nope`"));
}

#[test]
fn an_invalid_plan_opens_no_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let plan = dir.path().join("broken.yaml");
    std::fs::write(&plan, "version: 1\nrelease: {}\n").expect("write plan");
    backout(&db, &["start", &plan.display().to_string()]).code(2);
}

/// A plan whose criteria read files in `dir`, so a test can make them pass or fail.
fn criteria_plan(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    let plan = format!(
        r#"version: 1
release: {{ service: demo, version: "2.0.0", rollback_to: "1.9.0", environment: test }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  rollback_when:
    - {{ id: errors, command: "cat {d}/errors", fails_if: "> 5", passes_if: "<= 1", trips_after: 2 }}
    - {{ id: health, command: "test -f {d}/healthy" }}
  success_when: {{ hold: 1s, checks: [errors, health] }}
window: {{ closes_after: 1h }}
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
    std::fs::write(&path, plan).expect("write plan");
    path
}

fn start(db: &Path, plan: &Path) -> String {
    backout_on(db)
        .arg("start")
        .arg(plan)
        .run()
        .code(0)
        .stdout()
        .trim()
        .to_string()
}

fn check(db: &Path, release: &str) -> (Option<i32>, serde_json::Value) {
    let out = backout(db, &["check", release, "--format", "json"]);
    (out.output().status.code(), out.json())
}

#[test]
fn check_trips_after_consecutive_failures_across_invocations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    std::fs::write(dir.path().join("errors"), "9\n").expect("write");
    std::fs::write(dir.path().join("healthy"), "").expect("write");
    let release = start(&db, &criteria_plan(dir.path()));
    let (code, report) = check(&db, &release);
    assert_eq!(
        code,
        Some(0),
        "one failure of trips_after 2 is not yet a trip: {report}"
    );
    assert_eq!(report["criteria"][0]["state"]["status"], "failing");
    let (code, report) = check(&db, &release);
    assert_eq!(
        code,
        Some(3),
        "the second failure in a row trips it (state replayed from the journal)"
    );
    assert_eq!(report["verdict"], "rollback_required");
    assert_eq!(report["criteria"][0]["state"]["status"], "tripped");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let (code, _) = check(&db, &release);
    assert_eq!(code, Some(3), "a tripped criterion stays tripped");
}

#[test]
fn check_reports_inconclusive_then_success_closes_the_window_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    std::fs::write(dir.path().join("errors"), "3\n").expect("write");
    std::fs::write(dir.path().join("healthy"), "").expect("write");
    let release = start(&db, &criteria_plan(dir.path()));
    let (code, report) = check(&db, &release);
    assert_eq!(code, Some(4), "3 is between the bands: {report}");
    assert_eq!(report["verdict"], "inconclusive");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let (code, report) = check(&db, &release);
    assert_eq!(
        (code, report["verdict"].as_str()),
        (Some(0), Some("healthy")),
        "passing, but not for 1s yet"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, report) = check(&db, &release);
    assert_eq!(
        (code, report["verdict"].as_str()),
        (Some(0), Some("success"))
    );
    let status = status_json(&db, &release);
    assert_eq!(status["state"], "closed");
    assert!(
        status["close_reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("success")
    );
    let (code, report) = check(&db, &release);
    assert_eq!(
        (code, report["verdict"].as_str()),
        (Some(0), Some("success")),
        "a success stays a success after its window closed"
    );
    assert_eq!(
        report["criteria"][0]["measured"], false,
        "nothing is measured once the window is closed"
    );
}

#[test]
fn watch_measures_at_each_criterions_cadence_until_a_verdict_needs_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    let plan = criteria_plan(dir.path());
    let text = std::fs::read_to_string(&plan)
        .expect("read plan")
        .replace("trips_after: 2 }", "trips_after: 2, every: 300ms }")
        .replace("healthy\" }", "healthy\", every: 300ms }")
        .replace("hold: 1s", "hold: 600ms");
    std::fs::write(&plan, text).expect("write plan");
    std::fs::write(dir.path().join("healthy"), "").expect("write");

    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let release = start(&db, &plan);
    let started = std::time::Instant::now();
    let text = backout(&db, &["watch", &release]).code(0).stdout();
    assert!(
        text.trim_end().ends_with(
            "verdict: success; window closed: success: every success_when check passed for its hold"
        ),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "measured every 300ms, not every minute"
    );
    assert_eq!(
        text.matches("verdict: healthy").count(),
        1,
        "a verdict is printed when it changes: {text}"
    );
    assert!(
        text.matches("passing       errors").count() >= 2,
        "several rounds before the hold was met: {text}"
    );

    std::fs::write(dir.path().join("errors"), "9\n").expect("write");
    let release = start(&db, &plan);
    backout(&db, &["watch", &release])
        .code(3)
        .stdout_has("TRIPPED");
}

#[test]
fn a_person_can_request_a_rollback_until_the_window_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    std::fs::write(dir.path().join("healthy"), "").expect("write");
    let release = start(&db, &criteria_plan(dir.path()));
    backout(
        &db,
        &["request", &release, "--reason", "checkout emails are empty"],
    )
    .code(0);
    let (code, report) = check(&db, &release);
    assert_eq!(
        (code, report["verdict"].as_str()),
        (Some(3), Some("rollback_required")),
        "no criterion needed"
    );

    let checkout = start(&db, Path::new(&checkout_plan()));
    backout(&db, &["checkpoint", &checkout, "contract-migration"]).code(0);
    let message = backout(&db, &["request", &checkout, "--reason", "too late"])
        .code(5)
        .stderr();
    assert!(
        message.contains("Roll forward with a hotfix"),
        "quotes after_close: {message}"
    );
}

#[test]
fn start_at_takes_the_deployment_time_and_refuses_the_future_or_nonsense() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    let plan = criteria_plan(dir.path());
    let plan = plan.display().to_string();
    let out = backout(&db, &["start", &plan, "--at", "2026-01-02T03:04:05+01:00"]).code(0);
    let release = out.stdout().trim().to_string();
    assert!(
        out.stderr()
            .contains("already closed at 2026-01-02T03:04:05Z"),
        "a deployment older than its 1h window: {}",
        out.stderr()
    );
    let status = status_json(&db, &release);
    assert_eq!(status["opened_at_ms"], 1_767_319_445_000_i64);
    assert_eq!(status["window_closed"], true);
    for (at, needle) in [
        ("2999-01-01T00:00:00Z", "is in the future"),
        ("yesterday", "is not an RFC 3339 time"),
    ] {
        backout(&db, &["start", &plan, "--at", at])
            .code(2)
            .stderr_has(needle);
    }
}

#[test]
fn watch_all_reports_verdict_changes_until_terminated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("backout.db");
    std::fs::write(dir.path().join("errors"), "0\n").expect("write");
    std::fs::write(dir.path().join("healthy"), "").expect("write");
    let plan = criteria_plan(dir.path());
    let text = std::fs::read_to_string(&plan)
        .expect("read plan")
        .replace("trips_after: 2 }", "trips_after: 1, every: 200ms }")
        .replace("hold: 1s", "hold: 1h");
    std::fs::write(&plan, text).expect("write plan");
    let first = start(&db, &plan);
    let watch = cli()
        .env("BACKOUT_DATABASE_URL", format!("sqlite://{}", db.display()))
        .args(["watch", "--all"])
        .into_command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("watch starts");
    std::thread::sleep(std::time::Duration::from_millis(800));
    let second = start(&db, &plan);
    std::thread::sleep(std::time::Duration::from_millis(800));
    std::fs::write(dir.path().join("errors"), "9\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1_000));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let out = watch.wait_with_output().expect("watch ends");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for release in [&first, &second] {
        assert!(
            text.lines()
                .any(|l| l.contains(release.as_str()) && l.contains("verdict: healthy")),
            "{release} healthy: {text}"
        );
        assert!(
            text.lines().any(|l| l.contains(release.as_str())
                && l.contains("verdict: rollback_required (errors)")),
            "{release} tripped: {text}"
        );
    }
}
