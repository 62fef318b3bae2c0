//! A `backout serve` of a sandbox on a free loopback port, tokens made by `backout token
//! create`, and a JSON client: what the server's end-to-end tests share.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Sandbox;

/// Every JSON answer [`call`] receives is checked against the server's OpenAPI document.
#[path = "openapi.rs"]
pub mod openapi;

/// A `backout serve` on a free port; killed (and continued first, if stopped) when dropped.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// The server of `sandbox`'s store.
    pub fn start(sandbox: &Sandbox) -> Server {
        Server::from_command(sandbox.command())
    }

    /// `backout serve --listen 127.0.0.1:0` run from `command` (a sandbox's command with its
    /// environment adjusted: another database, a lease time, …).
    pub fn from_command(command: Command) -> Server {
        Server::with_args(command, &[])
    }

    /// [`Server::from_command`] with more arguments of `serve` (`--header-timeout 1s`).
    pub fn with_args(mut command: Command, args: &[&str]) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("BACKOUT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backout serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("backout serve: listening on ") {
                    let _ = found.send(url.to_string());
                }
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        // Generous: a loaded 2-core machine may take long to start a debug binary.
        let base = address
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not say where it listens:\n{}",
                    log.lock().expect("log")
                )
            });
        Server {
            child: Some(child),
            base,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. `-STOP`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// SIGKILL, as a machine that dies.
    pub fn kill_9(&mut self) {
        self.signal("-KILL");
        if let Some(child) = &mut self.child {
            let _ = child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(mut self, limit: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.log());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("the server did not stop within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn token(sandbox: &Sandbox, user: &str, role: &str) -> String {
    let out = sandbox.run(&["token", "create", "--user", user, "--role", role]);
    super::assert_code(&out, 0, "token create");
    super::stdout(&out).trim().to_string()
}

/// One HTTP client for the test, with the ring provider installed (reqwest is built without
/// one, as the binary is).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        other => panic!("method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = response.text().await.expect("a body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if json {
        openapi::assert_documented(client, method, url, status, &value).await;
    }
    (status, value)
}

pub fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {body}")),
        body["error"]["message"].as_str().unwrap_or(""),
    )
}

/// Opens a release, requests and approves its rollback, and executes it; returns (release,
/// run).
pub async fn approved_and_executed(
    client: &reqwest::Client,
    server: &Server,
    body: &str,
    performer: &str,
    decider: &str,
    owner: &str,
) -> (String, String) {
    let plan = super::plan(body);
    accept(client, &server.url("/api/v1/plans/accept"), owner, &plan).await;
    let (status, body) = call(
        client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(performer),
        Some(json!({ "plan": plan, "version": "2.0.1" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let rel = body["id"].as_str().expect("release id").to_string();
    let (status, body) = call(
        client,
        "POST",
        &server.url(&format!("/api/v1/releases/{rel}/request")),
        Some(performer),
        Some(json!({ "reason": "checkout emails are empty" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        client,
        "POST",
        &server.url(&format!("/api/v1/releases/{rel}/decisions")),
        Some(decider),
        Some(json!({ "decision": "approve", "reason": "customers affected" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approved"], true, "{body}");
    let (status, body) = call(
        client,
        "POST",
        &server.url(&format!("/api/v1/releases/{rel}/execute")),
        Some(performer),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let run = body["run_id"].as_str().expect("run id").to_string();
    (rel, run)
}

/// Reads a server-sent event stream until `end` (or `limit`); returns `(event, data)` pairs.
/// `on_event` may act on each (e.g. confirm a step once it waits).
pub async fn follow(
    mut response: reqwest::Response,
    limit: Duration,
    mut on_event: impl AsyncFnMut(&str, &Value),
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + limit;
    let url = response.url().clone();
    let mut buffer = String::new();
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no `end` within {limit:?}; got {events:?}"))
            .expect("the stream reads");
        let Some(chunk) = chunk else {
            return events;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buffer.find("\n\n") {
            let block: String = buffer.drain(..at + 2).collect();
            let mut name = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            let value: Value = serde_json::from_str(&data).expect("SSE data is JSON");
            openapi::assert_event_documented(&url, &name, &value).await;
            on_event(&name, &value).await;
            let end = name == "end";
            events.push((name, value));
            if end {
                return events;
            }
        }
    }
}

/// Accepts `plan` (its text) through `POST /api/v1/plans/accept` with `token` (its deployment
/// engineer's, or an admin's): only then does a server run its commands or execute it.
pub async fn accept(client: &reqwest::Client, url: &str, token: &str, plan: &str) {
    let (status, body) = call(
        client,
        "POST",
        url,
        Some(token),
        Some(serde_json::json!({ "plan": plan })),
    )
    .await;
    assert_eq!(status, 200, "accept: {body}");
}
