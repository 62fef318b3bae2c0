//! The CLI decodes a server's answers into the types of `backout_api`, so an answer that lacks
//! a field those types require (a server of another version) is an error naming the field,
//! never a silent default. A real `backout serve` cannot drop a field, so the server here is a
//! hand-written HTTP/1.1 responder on a loopback port that answers each path with fixed JSON:
//! once complete (the command works and prints the server's numbers), once with a field taken
//! out (the command exits 1 and names it). The `backout` binary is the real one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::{Value, json};

/// A decision as `POST /api/v1/releases/{id}/decisions` answers it.
fn decision() -> Value {
    json!({
        "release_id": "rel-1", "decision": "approve", "actor": "carol@example.com",
        "approvals": 2, "quorum": 3, "approved": false, "as_fallback": false,
        "override_window": false
    })
}

/// A release's status as `GET /api/v1/releases/{id}` answers it.
fn status() -> Value {
    json!({
        "id": "rel-1", "plan_hash": "ab", "service": "checkout", "version": "2",
        "rollback_to": "1", "environment": "production", "actor": "dana@example.com",
        "state": "open", "opened_at_ms": 1, "closes_at_ms": null, "closed_at_ms": null,
        "close_reason": null, "checkpoints": [], "outcome": "open", "window_closed": false
    })
}

fn without(mut value: Value, field: &str) -> Value {
    value.as_object_mut().expect("an object").remove(field);
    value
}

/// Serves `answers` (path → 200 with that JSON; anything else → the API's 404 body) until the
/// test process ends; returns its URL.
fn server(answers: Vec<(&'static str, Value)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(read) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(read);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, answer) = match answers.iter().find(|(p, _)| *p == path) {
                Some((_, answer)) => ("200 OK", answer.to_string()),
                None => (
                    "404 Not Found",
                    json!({ "error": { "code": "not_found", "message": format!("no {path}") } })
                        .to_string(),
                ),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

fn backout(url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    Command::new(assert_cmd::cargo::cargo_bin("backout"))
        .current_dir(dir.path())
        .env_remove("BACKOUT_DATABASE_URL")
        .env_remove("BACKOUT_USER")
        .env("BACKOUT_SERVER", url)
        .env("BACKOUT_TOKEN", "tok-1.secret")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("backout runs")
}

fn check(out: &Output, code: i32, says: &str, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(says) || stderr.contains(says),
        "{what}: the output lacks {says:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
fn complete_answers_are_printed_and_answers_lacking_a_field_name_it() {
    let decide = [
        "decide", "rel-1", "approve", "--reason", "errors", "--format", "json",
    ];
    let path = "/api/v1/releases/rel-1/decisions";
    let complete = server(vec![
        (path, decision()),
        ("/api/v1/releases/rel-1", status()),
    ]);
    let out = backout(&complete, &decide);
    check(&out, 0, "\"approvals\":2", "a complete decision");
    check(&out, 0, "\"quorum\":3", "a complete decision");
    check(
        &backout(&complete, &["status", "rel-1"]),
        0,
        "rel-1  open",
        "a complete status",
    );

    let lacking = server(vec![
        (path, without(decision(), "approvals")),
        ("/api/v1/releases/rel-1", without(status(), "window_closed")),
        ("/api/v1/audit/verify", json!({ "ok": true, "head": null })),
    ]);
    // Once printed as 0 approvals of a quorum of 1.
    check(
        &backout(&lacking, &decide),
        1,
        "`approvals`",
        "a decision without approvals",
    );
    check(
        &backout(&lacking, &["status", "rel-1"]),
        1,
        "`window_closed`",
        "a status without window_closed",
    );
    check(
        &backout(&lacking, &["status", "rel-1", "--format", "json"]),
        1,
        "`window_closed`",
        "a status without window_closed, as JSON",
    );
    // Once printed as "0 events verified".
    check(
        &backout(&lacking, &["audit", "verify"]),
        1,
        "`events`",
        "a verified chain without its event count",
    );
}
