//! `backout migrate SOURCE TARGET` end to end: a SQLite store filled through the CLI (a release
//! started, checkpointed, a rollback requested, approved and executed, an ad-hoc run, a
//! rehearsal with its evidence, a token, the notifications these queued) is copied into a fresh
//! PostgreSQL database; `audit verify` then holds there, `status` and `report` print the same as
//! from SQLite, and a new run continues the chain. A non-empty target and a missing source are
//! refused with exit 2.

mod support;

use std::process::Output;

use backout_postgres::testing::TestDatabase;
use serde_json::Value;
use support::{Sandbox, stderr, stdout};

const BODY: &str = r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: drain, run: "echo drained", expected: 1s }
    - { id: undo, needs: [drain], run: "echo undone", expected: 1s }
communication:
  channels:
    log: { command: "cat >> \"${WORK}/notices\"" }
  notify:
    decision_requested: [log]
    decision: [log]
    completed: [log]
"#;

fn test_database() -> TestDatabase {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(TestDatabase::create())
}

/// `backout --database URL ARGS` as `user`.
fn backout(sandbox: &Sandbox, url: &str, user: &str, args: &[&str]) -> Output {
    sandbox
        .command()
        .env("BACKOUT_USER", user)
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .expect("backout runs")
}

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn json(out: &Output, what: &str) -> Value {
    let text = ok(out, what);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{text}"))
}

fn migrate(sandbox: &Sandbox, source: &str, target: &str) -> Output {
    sandbox
        .command()
        .args(["migrate", source, target])
        .output()
        .expect("backout runs")
}

/// Fills the sandbox's SQLite store through the CLI; returns (release id, run ids).
fn activity(sandbox: &Sandbox, sqlite: &str) -> (String, Vec<String>) {
    let plan = sandbox.plan("plan.yaml", BODY);
    let plan = plan.to_str().expect("utf-8 path");
    let rel = ok(
        &backout(sandbox, sqlite, "dave@example.com", &["start", plan]),
        "start",
    )
    .trim()
    .to_owned();
    ok(
        &backout(
            sandbox,
            sqlite,
            "dave@example.com",
            &["checkpoint", &rel, "expand"],
        ),
        "checkpoint",
    );
    ok(
        &backout(
            sandbox,
            sqlite,
            "erin@example.com",
            &["request", &rel, "--reason", "errors at 4%"],
        ),
        "request",
    );
    ok(
        &backout(
            sandbox,
            sqlite,
            "carol@example.com",
            &["decide", &rel, "approve", "--reason", "checkout failing"],
        ),
        "decide",
    );
    ok(
        &backout(sandbox, sqlite, "erin@example.com", &["execute", &rel]),
        "execute",
    );
    ok(
        &backout(
            sandbox,
            sqlite,
            "erin@example.com",
            &["run", "--break-glass", "--reason", "test", plan],
        ),
        "run",
    );
    ok(
        &backout(
            sandbox,
            sqlite,
            "erin@example.com",
            &["rehearse", plan, "--env", "staging"],
        ),
        "rehearse",
    );
    ok(
        &backout(
            sandbox,
            sqlite,
            "admin@example.com",
            &[
                "token",
                "create",
                "--user",
                "carol@example.com",
                "--role",
                "decider",
            ],
        ),
        "token create",
    );
    let runs = json(
        &backout(
            sandbox,
            sqlite,
            "erin@example.com",
            &["status", "--format", "json"],
        ),
        "status",
    );
    let ids = runs
        .as_array()
        .or_else(|| runs["runs"].as_array())
        .unwrap_or_else(|| panic!("a list of runs: {runs}"))
        .iter()
        .filter_map(|run| run["id"].as_str().or_else(|| run["run_id"].as_str()))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(
        ids.len(),
        3,
        "execute, run and rehearse each made a run: {runs}"
    );
    (rel, ids)
}

/// The number after `label` in the migrate summary.
fn copied(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` count in:\n{summary}"))
}

#[test]
fn a_sqlite_store_moves_to_postgres_with_its_chain_intact() {
    let sandbox = Sandbox::new();
    let sqlite = sandbox.database_url();
    let (rel, runs) = activity(&sandbox, &sqlite);
    let before = ok(
        &backout(&sandbox, &sqlite, "erin@example.com", &["audit", "verify"]),
        "verify sqlite",
    );
    let db = test_database();
    let pg = db.url().to_owned();

    let out = migrate(&sandbox, &sqlite, &pg);
    let summary = ok(&out, "migrate");
    println!("{summary}");
    assert!(
        summary.contains("events verified on the target: the hash chain holds"),
        "{summary}"
    );
    assert_eq!(copied(&summary, "runs"), 3, "{summary}");
    assert_eq!(copied(&summary, "releases"), 1, "{summary}");
    assert_eq!(copied(&summary, "checkpoints"), 1, "{summary}");
    assert_eq!(copied(&summary, "tokens (digests)"), 1, "{summary}");
    assert_eq!(copied(&summary, "evidence"), 1, "{summary}");
    assert!(copied(&summary, "deliveries") >= 3, "{summary}");
    assert!(copied(&summary, "delivery attempts") >= 1, "{summary}");
    assert!(copied(&summary, "step states") >= 6, "{summary}");

    // The same chain, head included, verifies on PostgreSQL.
    let after = ok(
        &backout(&sandbox, &pg, "erin@example.com", &["audit", "verify"]),
        "verify postgres",
    );
    assert_eq!(before, after, "the same events and head");

    // Every view prints the same from either store.
    let views: Vec<Vec<&str>> = vec![
        vec!["status", "--format", "json"],
        vec!["status", &rel],
        vec!["status", &rel, "--format", "json"],
        vec!["status", &runs[0]],
        vec!["report", &runs[0]],
        vec!["report", &runs[1]],
        vec!["report", &runs[2]],
        vec!["deliveries", &rel],
        vec!["token", "list"],
        vec!["evidence", "list", "plan.yaml"],
    ];
    for view in &views {
        let from_sqlite = ok(
            &backout(&sandbox, &sqlite, "erin@example.com", view),
            &format!("{view:?} on SQLite"),
        );
        let from_pg = ok(
            &backout(&sandbox, &pg, "erin@example.com", view),
            &format!("{view:?} on PostgreSQL"),
        );
        assert_eq!(from_sqlite, from_pg, "{view:?} differs");
    }

    // New work appends after the copied events, and the chain still holds.
    let last = |url: &str| -> u64 {
        let text = ok(
            &backout(
                &sandbox,
                url,
                "erin@example.com",
                &["audit", "verify", "--format", "json"],
            ),
            "verify json",
        );
        let value: Value = serde_json::from_str(&text).expect("JSON");
        value["head"]["seq"].as_u64().expect("a head")
    };
    let copied_head = last(&pg);
    ok(
        &backout(
            &sandbox,
            &pg,
            "erin@example.com",
            &["run", "--break-glass", "--reason", "test", "plan.yaml"],
        ),
        "run on postgres",
    );
    let new_head = last(&pg);
    assert!(new_head > copied_head, "{new_head} after {copied_head}");
    assert_eq!(last(&sqlite), copied_head, "the source is unchanged");

    // A target that holds records is refused, and left as it was.
    let out = migrate(&sandbox, &sqlite, &pg);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("migrate copies into an empty store only"),
        "{}",
        stderr(&out)
    );
    assert_eq!(last(&pg), new_head);
}

#[test]
fn a_missing_source_or_a_wrong_target_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let missing = format!("sqlite://{}", sandbox.file("nope.db").display());
    let out = migrate(
        &sandbox,
        &missing,
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not exist") && stderr(&out).contains("nope.db"),
        "{}",
        stderr(&out)
    );
    assert!(
        !sandbox.file("nope.db").exists(),
        "no empty store was created"
    );

    let out = migrate(&sandbox, &missing, "sqlite:///tmp/other.db");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the target must be a PostgreSQL URL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_source_whose_chain_is_broken_is_refused_and_nothing_is_copied() {
    let sandbox = Sandbox::new();
    let sqlite = sandbox.database_url();
    let plan = sandbox.plan("plan.yaml", BODY);
    ok(
        &backout(
            &sandbox,
            &sqlite,
            "erin@example.com",
            &[
                "run",
                "--break-glass",
                "--reason",
                "test",
                plan.to_str().expect("utf-8 path"),
            ],
        ),
        "run",
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&sqlite)
                .await
                .expect("open the file");
            sqlx::query("DROP TRIGGER IF EXISTS events_are_append_only_update")
                .execute(&mut conn)
                .await
                .expect("drop guard");
            sqlx::query("UPDATE events SET actor = 'mallory' WHERE seq = 2")
                .execute(&mut conn)
                .await
                .expect("tamper");
            conn.close().await.expect("close");
        });
    let db = test_database();
    let out = migrate(&sandbox, &sqlite, db.url());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the source's hash chain is broken at event seq 2"),
        "{}",
        stderr(&out)
    );
    let verify = backout(&sandbox, db.url(), "erin@example.com", &["audit", "verify"]);
    assert!(
        stdout(&verify).contains("0 events verified"),
        "nothing was copied: {}",
        stdout(&verify)
    );
}
