//! The binary against PostgreSQL: `--database postgres://…` (or `BACKOUT_DATABASE_URL`) selects
//! the PostgreSQL store for `run` and `status`, and a store that cannot be opened is explained
//! without echoing the password. Each test creates its own database on the test server (see
//! `backout_postgres::testing`) and drops it afterwards.

mod support;

use std::process::Output;

use backout_postgres::testing::TestDatabase;
use serde_json::Value;
use support::{Sandbox, assert_code, stderr, stdout};

fn test_database() -> TestDatabase {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(TestDatabase::create())
}

/// `backout --database URL ARGS` in the sandbox.
fn backout(sandbox: &Sandbox, url: &str, args: &[&str]) -> Output {
    sandbox
        .command()
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .expect("backout runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

#[test]
fn run_then_status_against_postgres() {
    let db = test_database();
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        "procedure:\n  steps:\n\
         \x20   - id: first\n      run: 'echo one'\n\
         \x20   - id: second\n      needs: [first]\n      run: 'printf \"two\\0bytes\"'\n\
         \x20   - id: third\n      needs: [second]\n      run: 'echo three'\n",
    );
    let out = backout(
        &sandbox,
        db.url(),
        &[
            "run",
            "--break-glass",
            "--reason",
            "test",
            plan.to_str().expect("utf-8 path"),
        ],
    );
    assert_code(&out, 0, "run");

    let runs = json(&backout(
        &sandbox,
        db.url(),
        &["status", "--format", "json"],
    ));
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_id = runs[0]["id"].as_str().expect("run id");

    let status = json(&backout(
        &sandbox,
        db.url(),
        &["status", run_id, "--format", "json"],
    ));
    assert_eq!(status["run"]["state"], "succeeded", "{status:#}");
    let steps = status["steps"].as_array().expect("steps");
    let ids: Vec<&str> = steps.iter().filter_map(|s| s["step_id"].as_str()).collect();
    assert_eq!(ids, ["first", "second", "third"]);
    assert!(
        steps.iter().all(|s| s["state"] == "succeeded"),
        "{status:#}"
    );

    // The same store through the environment variable, and the text form of status.
    let out = sandbox
        .command()
        .env("BACKOUT_DATABASE_URL", db.url())
        .args(["status", run_id])
        .output()
        .expect("backout runs");
    assert_code(&out, 0, "status");
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    // Nothing went to the sandbox's SQLite file.
    let local = json(&sandbox.run(&["status", "--format", "json"]));
    assert_eq!(local, Value::Array(Vec::new()));
}

#[test]
fn an_unreachable_server_is_a_usage_error_without_the_password() {
    let sandbox = Sandbox::new();
    let out = backout(
        &sandbox,
        "postgres://backout:hunter2@127.0.0.1:1/backout",
        &["status"],
    );
    assert_code(&out, 2, "status");
    let err = stderr(&out);
    assert!(
        err.contains("cannot open database `postgres://backout@127.0.0.1:1/backout`"),
        "{err}"
    );
    assert!(err.contains("cannot reach a PostgreSQL server"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
