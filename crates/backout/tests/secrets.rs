//! Issue 15, item 3: no secret in any output. A secret the plan references (`${SECRET}`) shows up
//! in an HTTP criterion's mismatch message, a command criterion's stderr, a step's stdout and its
//! output; variables of backout's environment the plan does not name (`AWS_SECRET_ACCESS_KEY`,
//! `BACKOUT_TOKEN`, an unreferenced one) are dumped by a step running `env`. None of the values
//! may appear in the store's bytes (the SQLite file and its WAL), `status`/`report`/`audit
//! export`, or the webhook bodies the rollback_required notice sent.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Sandbox, assert_code, stdout};

const SECRET: &str = "s3cr3t-evidence-value-7f3a";
const UNREFERENCED: &str = "unreferenced-value-91c2";
const AWS: &str = "aws-secret-access-key-44d1";
const TOKEN: &str = "tok-leak.0123456789abcdef";

/// A loopback HTTP server: `/health` answers `healthy` (not the expected body), `/hook` records
/// the request's body. Returns the base URL and the bodies received.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut length = 0usize;
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                if request.starts_with("POST /hook") {
                    sink.lock().expect("lock").push(format!(
                        "{request}{head}\n{}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                let text = "healthy\n";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    (base, bodies)
}

fn body(base: &str) -> String {
    format!(
        r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
criteria:
  rollback_when:
    - id: health
      http: {{ url: "{base}/health", expect_body: "${{SECRET}}" }}
      every: 1s
    - id: probe
      command: 'echo "probe saw ${{SECRET}}" >&2; exit 1'
      every: 1s
window: {{ closes_after: 1h }}
authorization: {{ deciders: release-managers, quorum: 1 }}
execution: {{ performers: ops-oncall }}
procedure:
  steps:
    - id: leak
      run: 'printf "%s" "${{SECRET}}"'
      outputs: {{ value: stdout }}
      idempotent: true
      expected: 1s
    - id: dump
      needs: [leak]
      run: 'echo "got $BACKOUT_OUTPUT_LEAK_VALUE"; env; echo "the secret is ${{SECRET}}" >&2'
      idempotent: true
      expected: 1s
communication:
  channels:
    hook: {{ webhook: "{base}/hook" }}
  notify:
    rollback_required: [hook]
"#
    )
}

/// `backout ARGS` with the secrets in its environment.
fn run(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    sandbox
        .command()
        .env("SECRET", SECRET)
        .env("UNREFERENCED", UNREFERENCED)
        .env("AWS_SECRET_ACCESS_KEY", AWS)
        .env("BACKOUT_TOKEN", TOKEN)
        .args(args)
        .output()
        .expect("backout runs")
}

fn assert_clean(what: &str, text: &str) {
    for (name, value) in [
        ("SECRET", SECRET),
        ("UNREFERENCED", UNREFERENCED),
        ("AWS_SECRET_ACCESS_KEY", AWS),
        ("BACKOUT_TOKEN", TOKEN),
    ] {
        assert!(
            !text.contains(value),
            "{what} shows the value of {name}:\n{text}"
        );
    }
}

fn assert_bytes_clean(what: &str, bytes: &[u8]) {
    for value in [SECRET, UNREFERENCED, AWS, TOKEN] {
        assert!(
            !bytes
                .windows(value.len())
                .any(|window| window == value.as_bytes()),
            "{what} holds the bytes of {value}"
        );
    }
}

#[test]
fn secrets_appear_in_no_journal_status_report_export_or_webhook() {
    let sandbox = Sandbox::new();
    let (base, hooks) = receiver();
    sandbox.plan("plan.yaml", &body(&base));

    // The release's criteria trip: the HTTP mismatch message and the command's stderr both
    // quote the secret.
    let out = run(&sandbox, &["start", "plan.yaml", "--version", "2.0.1"]);
    assert_code(&out, 0, "start");
    let release = stdout(&out).trim().to_string();
    let out = run(&sandbox, &["check", &release]);
    let checked = format!("{}{}", stdout(&out), support::stderr(&out));
    assert_clean("check", &checked);
    assert!(
        checked.contains("${SECRET}"),
        "the evidence is there, redacted:\n{checked}"
    );
    // The rollback_required notice reaches the webhook.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hooks.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "no webhook delivery");
        let _ = run(&sandbox, &["deliveries", "--send"]);
        std::thread::sleep(Duration::from_millis(200));
    }

    // The procedure: a step prints the secret and makes it an output; the next dumps its
    // environment.
    let out = run(
        &sandbox,
        &[
            "--as",
            "erin@example.com",
            "rehearse",
            "plan.yaml",
            "--env",
            "staging",
        ],
    );
    let rehearsed = format!("{}{}", stdout(&out), support::stderr(&out));
    assert_code(&out, 0, "rehearse");
    assert_clean("rehearse", &rehearsed);

    let out = run(&sandbox, &["status", "--format", "json"]);
    let listed = stdout(&out);
    let run_id = serde_json::from_str::<serde_json::Value>(&listed)
        .ok()
        .and_then(|v| {
            v["runs"][0]["id"]
                .as_str()
                .or_else(|| v[0]["id"].as_str())
                .map(str::to_string)
        });
    let mut shown = listed.clone();
    for target in [Some(release.clone()), run_id.clone()]
        .into_iter()
        .flatten()
    {
        for args in [
            vec!["status", target.as_str(), "--format", "json"],
            vec!["report", target.as_str(), "--format", "json"],
            vec!["report", target.as_str()],
        ] {
            let out = run(&sandbox, &args);
            shown.push_str(&stdout(&out));
            shown.push_str(&support::stderr(&out));
        }
    }
    let out = run(&sandbox, &["audit", "export"]);
    shown.push_str(&stdout(&out));
    assert_clean("status, report and audit export", &shown);
    // What was shown is the redacted form: the step ran, its output said `${SECRET}`, the
    // environment dump has PATH but nothing of backout's own.
    let export = stdout(&out);
    assert!(export.contains("${SECRET}"), "evidence, redacted: {export}");
    assert!(run_id.is_some(), "the rehearsal's run is listed: {listed}");
    assert!(
        shown.contains("got ${SECRET}"),
        "the output reached the next step redacted: {shown}"
    );
    assert!(
        shown.contains("PATH="),
        "the env dump was recorded: {shown}"
    );
    for name in [
        "BACKOUT_DATABASE_URL=",
        "WORK=",
        "UNREFERENCED=",
        "AWS_SECRET",
    ] {
        assert!(!shown.contains(name), "{name} reached a step: {shown}");
    }

    let bodies = hooks.lock().expect("lock").join("\n---\n");
    assert!(bodies.contains("rollback_required"), "{bodies}");
    assert_clean("webhook bodies", &bodies);

    // The store's bytes, WAL included.
    for name in ["backout.db", "backout.db-wal"] {
        if let Ok(bytes) = std::fs::read(sandbox.file(name)) {
            assert_bytes_clean(name, &bytes);
        }
    }
}
