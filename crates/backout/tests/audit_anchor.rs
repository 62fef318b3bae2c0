//! Issue 15, item 4: an audit trail that cannot be quietly rewritten. Someone with write access to
//! the store's file (the triggers dropped) truncates the journal, edits an event and recomputes
//! the chain, forges an event into the history, edits `step_states`, and plants a duplicate JSON
//! key. `audit verify` without an anchor misses the first three (the chain is consistent) and
//! catches the last two; with an anchor made before the attack by `audit anchor`, every one is
//! detected.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use sqlx::Row;
use support::{Sandbox, assert_code, stderr, stdout};

const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

const BODY: &str = r#"procedure:
  steps:
    - { id: one, run: "true", idempotent: true, expected: 1s }
    - { id: two, needs: [one], run: "true", idempotent: true, expected: 1s }
    - { id: three, needs: [two], run: "exit 3", idempotent: true, expected: 1s, on_failure: continue }
"#;

fn audit(sandbox: &Sandbox, db: &Path, args: &[&str]) -> std::process::Output {
    sandbox
        .command()
        .env("BACKOUT_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("BACKOUT_AUDIT_KEY", KEY)
        .arg("audit")
        .args(args)
        .output()
        .expect("backout runs")
}

/// A copy of the sandbox's store for one attack.
fn copy_store(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let target = sandbox.file(name);
    std::fs::copy(sandbox.db(), &target).expect("copy the store");
    let wal = sandbox.file("backout.db-wal");
    if wal.exists() {
        let mut to = target.as_os_str().to_owned();
        to.push("-wal");
        std::fs::copy(&wal, to).expect("copy the WAL");
    }
    target
}

async fn open(db: &Path) -> sqlx::SqlitePool {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the copy");
    for statement in [
        "DROP TRIGGER IF EXISTS events_are_append_only_update",
        "DROP TRIGGER IF EXISTS events_are_append_only_delete",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect("drop a trigger");
    }
    pool
}

/// Recomputes every event's prev_hash and hash in seq order, as an attacker who knows the
/// (public) chain encoding would after editing history.
async fn recompute_chain(pool: &sqlx::SqlitePool) {
    let rows = sqlx::query(
        "SELECT seq, at_ms, kind, run_id, step_id, release_id, actor, payload FROM events ORDER BY seq",
    )
    .fetch_all(pool)
    .await
    .expect("read events");
    // Hashes are unique: move them out of the way first.
    sqlx::query("UPDATE events SET hash = 'tmp-' || seq")
        .execute(pool)
        .await
        .expect("clear hashes");
    let mut prev = "0".repeat(64);
    for row in rows {
        let seq: i64 = row.get("seq");
        let payload: String = row.get("payload");
        let canonical = backout_store::canonical_json(&json!({
            "actor": row.get::<String, _>("actor"),
            "at_ms": row.get::<i64, _>("at_ms"),
            "kind": row.get::<String, _>("kind"),
            "payload": serde_json::from_str::<Value>(&payload).expect("payload"),
            "release_id": row.get::<Option<String>, _>("release_id"),
            "run_id": row.get::<Option<String>, _>("run_id"),
            "seq": seq,
            "step_id": row.get::<Option<String>, _>("step_id"),
            "v": 1,
        }));
        let mut hasher = blake3::Hasher::new();
        hasher.update(prev.as_bytes());
        hasher.update(canonical.as_bytes());
        let hash = hasher.finalize().to_hex().to_string();
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(pool)
            .await
            .expect("rewrite a link");
        prev = hash;
    }
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_detects_truncation_rewrites_and_forgeries_and_verify_checks_the_records() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);
    let out = sandbox.run(&["start", "plan.yaml", "--version", "2.0.1"]);
    assert_code(&out, 0, "start");
    let out = sandbox.run(&["rehearse", "plan.yaml", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The anchor: the head, signed with a key the store does not hold.
    let db = sandbox.db();
    let out = audit(&sandbox, &db, &["anchor"]);
    assert_code(&out, 0, "audit anchor");
    let anchor: Value = serde_json::from_str(stdout(&out).trim()).expect("anchor JSON");
    let anchored_seq = anchor["seq"].as_u64().expect("seq");
    assert!(anchored_seq >= 8, "{anchor}");
    assert_eq!(anchor["mac"].as_str().map(str::len), Some(64), "{anchor}");
    let anchor_file = sandbox.write("anchor.json", &stdout(&out));
    let anchor_arg = anchor_file.to_str().expect("utf-8 path");
    let raw = std::fs::read(&db).expect("the store");
    assert!(
        !raw.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the key is not in the store"
    );

    // Untouched: everything holds, and the journal may grow after the anchor.
    let out = sandbox.run(&["start", "plan.yaml", "--version", "2.0.2"]);
    assert_code(&out, 0, "start after the anchor");
    let out = audit(&sandbox, &db, &["verify", "--anchor", anchor_arg]);
    assert_code(&out, 0, "verify --anchor of the untouched store");
    assert!(
        text(&out).contains("holds: nothing up to it"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("records agree"), "{}", text(&out));

    // No key: a usage error that says where the key comes from; a wrong key: forged.
    let out = sandbox
        .command()
        .env_remove("BACKOUT_AUDIT_KEY")
        .args(["audit", "verify", "--anchor", anchor_arg])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("BACKOUT_AUDIT_KEY"), "{}", text(&out));
    let out = sandbox
        .command()
        .env("BACKOUT_AUDIT_KEY", "another-key-of-enough-length")
        .args(["audit", "verify", "--anchor", anchor_arg])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("signature does not hold"),
        "{}",
        text(&out)
    );
    let mut edited: Value = anchor.clone();
    edited["seq"] = json!(anchored_seq - 2);
    let edited_file = sandbox.write("edited-anchor.json", &edited.to_string());
    let out = audit(
        &sandbox,
        &db,
        &["verify", "--anchor", edited_file.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("signature does not hold"));

    // 1. Truncation: the last events (the anchored head among them) are deleted.
    let truncated = copy_store(&sandbox, "truncated.db");
    let pool = open(&truncated).await;
    sqlx::query("DELETE FROM events WHERE seq >= ?")
        .bind(i64::try_from(anchored_seq).expect("seq") - 1)
        .execute(&pool)
        .await
        .expect("truncate");
    pool.close().await;
    let out = audit(&sandbox, &truncated, &["verify"]);
    assert!(
        text(&out).contains("hash chain holds"),
        "without an anchor the chain alone still holds: {}",
        text(&out)
    );
    let out = audit(&sandbox, &truncated, &["verify", "--anchor", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("truncated"), "{}", text(&out));

    // 2. A rewritten history: an early event edited, the chain recomputed.
    let rewritten = copy_store(&sandbox, "rewritten.db");
    let pool = open(&rewritten).await;
    sqlx::query("UPDATE events SET actor = 'mallory' WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("edit");
    recompute_chain(&pool).await;
    pool.close().await;
    let out = audit(&sandbox, &rewritten, &["verify"]);
    assert_code(&out, 0, "without an anchor a recomputed chain passes");
    let out = audit(&sandbox, &rewritten, &["verify", "--anchor", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rewritten"), "{}", text(&out));

    // 3. A forged event slipped into the history (a decision nobody made), later seqs moved up,
    // the chain recomputed.
    let forged = copy_store(&sandbox, "forged.db");
    let pool = open(&forged).await;
    sqlx::query("UPDATE events SET seq = seq + 100000")
        .execute(&pool)
        .await
        .expect("make room");
    sqlx::query("UPDATE events SET seq = seq - 100000 + 1 WHERE seq > 100002")
        .execute(&pool)
        .await
        .expect("shift");
    sqlx::query("UPDATE events SET seq = seq - 100000 WHERE seq > 100000")
        .execute(&pool)
        .await
        .expect("keep the first two");
    sqlx::query(
        "INSERT INTO events (seq, at_ms, kind, actor, payload, prev_hash, hash, release_id) \
         SELECT 3, at_ms, 'decision', 'mallory@example.com', \
         '{\"approved\":true,\"decision\":\"approve\",\"reason\":\"forged\"}', '', 'forged', release_id \
         FROM events WHERE seq = 1",
    )
    .execute(&pool)
    .await
    .expect("forge");
    recompute_chain(&pool).await;
    pool.close().await;
    let out = audit(&sandbox, &forged, &["verify", "--format", "json"]);
    let verdict: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(
        verdict["events"].as_u64(),
        Some(anchored_seq + 2),
        "{verdict}"
    );
    let out = audit(&sandbox, &forged, &["verify", "--anchor", anchor_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rewritten"), "{}", text(&out));

    // 4. A derived table edited: the failed step marked succeeded.
    let edited = copy_store(&sandbox, "edited.db");
    let pool = open(&edited).await;
    let changed = sqlx::query("UPDATE step_states SET state = 'succeeded' WHERE step_id = 'three'")
        .execute(&pool)
        .await
        .expect("edit a step");
    assert_eq!(changed.rows_affected(), 1);
    pool.close().await;
    let out = audit(&sandbox, &edited, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("/three is `succeeded` but the journal says `failed`"),
        "{}",
        text(&out)
    );
    let out = audit(&sandbox, &edited, &["verify", "--format", "json"]);
    let verdict: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(
        verdict["records"].as_array().map(Vec::len),
        Some(1),
        "{verdict}"
    );

    // 5. A duplicate key: SQL would read the first value, serde the last (which the hash
    // covers). Refused on read.
    let doubled = copy_store(&sandbox, "doubled.db");
    let pool = open(&doubled).await;
    let (seq, payload): (i64, String) = sqlx::query_as(
        "SELECT seq, payload FROM events WHERE kind = 'step_succeeded' ORDER BY seq LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a step event");
    let planted = payload.replacen('{', "{\"attempt\":99,", 1);
    sqlx::query("UPDATE events SET payload = ? WHERE seq = ?")
        .bind(&planted)
        .bind(seq)
        .execute(&pool)
        .await
        .expect("plant");
    let sql_reads: i64 =
        sqlx::query_scalar("SELECT json_extract(payload, '$.attempt') FROM events WHERE seq = ?")
            .bind(seq)
            .fetch_one(&pool)
            .await
            .expect("json_extract");
    assert_eq!(sql_reads, 99, "SQLite reads the planted value");
    pool.close().await;
    let out = audit(&sandbox, &doubled, &["verify"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("duplicate key"), "{}", text(&out));
}
