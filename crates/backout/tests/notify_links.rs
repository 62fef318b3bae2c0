//! Notifications people act on, through the binary: with `BACKOUT_PUBLIC_URL` (a command) or
//! `serve --public-url` (the server's dispatcher), the webhook a real receiver gets links the
//! web UI's release and decision pages, and names the release's change ticket.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Sandbox;
use support::server::{Server, token};

/// A webhook receiver on a loopback port that answers 200 and keeps every JSON body.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let record = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if let Ok(json) = serde_json::from_slice(&body) {
                    record.lock().expect("lock").push(json);
                }
            }
        });
        Receiver { url, bodies }
    }

    /// The first body, waiting for it at most 30 s.
    fn first(&self) -> Value {
        let started = Instant::now();
        loop {
            if let Some(body) = self.bodies.lock().expect("lock").first() {
                return body.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no notification arrived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_plan(sandbox: &Sandbox, hook: &str) -> String {
    let text = support::plan(&format!(
        r#"people:
  release-managers: [carol@example.com]
  ops: [erin@example.com]
window: {{ closes_after: 1h }}
authorization: {{ deciders: release-managers }}
execution: {{ performers: ops }}
communication:
  channels:
    hook: {{ webhook: "{hook}" }}
  notify:
    rollback_required: [hook]
"#
    ))
    .replacen("release:\n", "release:\n  change_ticket: CHG0031415\n", 1);
    let path = sandbox.write("plan.yaml", &text);
    let out = sandbox.run(&["lint", "plan.yaml"]);
    support::assert_code(&out, 0, "lint");
    path.to_str().expect("utf-8").to_string()
}

fn start(sandbox: &Sandbox, plan: &str) -> String {
    let out = sandbox.run(&["start", plan]);
    support::assert_code(&out, 0, "start");
    support::stdout(&out).trim().to_string()
}

fn assert_actionable(body: &Value, base: &str, release: &str) {
    assert_eq!(body["event"], "rollback_required", "{body}");
    assert_eq!(body["release"]["change_ticket"], "CHG0031415", "{body}");
    let links: Vec<(&str, &str)> = body["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| (l["label"].as_str().unwrap(), l["url"].as_str().unwrap()))
        .collect();
    let page = format!("{base}/ui/releases/{release}");
    assert_eq!(
        links,
        [
            ("Decide", format!("{page}#decide-form").as_str()),
            ("Release", page.as_str())
        ],
        "{body}"
    );
}

#[test]
fn a_command_links_the_public_url_and_names_the_change_ticket() {
    let receiver = Receiver::start();
    let sandbox = Sandbox::new();
    let plan = write_plan(&sandbox, &receiver.url);
    let release = start(&sandbox, &plan);
    let out = sandbox
        .command()
        .env("BACKOUT_USER", "erin@example.com")
        .env("BACKOUT_PUBLIC_URL", "https://ops.example.com/backout/")
        .args(["request", &release, "--reason", "payments failing"])
        .output()
        .expect("runs");
    support::assert_code(&out, 0, "request");
    assert_actionable(
        &receiver.first(),
        "https://ops.example.com/backout",
        &release,
    );
}

#[test]
fn a_public_url_that_is_not_one_is_refused_by_serve_with_what_to_write() {
    let sandbox = Sandbox::new();
    let out = sandbox.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--public-url",
        "ops.example.com",
    ]);
    support::assert_code(&out, 2, "serve --public-url without a scheme");
    let error = support::stderr(&out);
    assert!(error.contains("--public-url"), "{error}");
    assert!(error.contains("https://backout.example.com"), "{error}");
}

#[test]
fn the_servers_dispatcher_links_its_public_url() {
    let receiver = Receiver::start();
    let sandbox = Sandbox::new();
    let plan = write_plan(&sandbox, &receiver.url);
    let release = start(&sandbox, &plan);
    let server = Server::with_args(
        sandbox.command(),
        &["--public-url", "https://ops.example.com"],
    );
    let erin = token(&sandbox, "erin@example.com", "performer");
    // Through the server: it journals the request and its own dispatcher sends the webhook.
    let out = sandbox
        .command()
        .env_remove("BACKOUT_DATABASE_URL")
        .env("BACKOUT_SERVER", &server.base)
        .env("BACKOUT_TOKEN", &erin)
        .args(["request", &release, "--reason", "payments failing"])
        .output()
        .expect("runs");
    support::assert_code(&out, 0, "request through the server");
    assert_actionable(&receiver.first(), "https://ops.example.com", &release);
}
