//! Real monitoring servers for tests: Prometheus and Alertmanager from the Debian packages
//! `prometheus` and `prometheus-alertmanager` (which `scripts/test` installs), started on free
//! loopback ports in temporary directories and killed when their guard drops, and a small HTTP
//! server (an "exporter") whose replies a test computes per path.
//!
//! A missing binary fails the test with what to install; it never skips. The helpers speak
//! HTTP with the standard library only, so every test crate of the workspace can include this
//! file (`#[path = …] mod monitoring;`) whatever its own dependencies.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const PROMETHEUS: &str = "prometheus";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// How long a server may take to answer its readiness endpoint after it started.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A server process, killed when the guard drops (also when an assertion panics).
pub struct Server {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// The last 30 lines the server logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Panics with the server's log when it exited already.
    pub fn check_alive(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{what} exited with {status}:\n{}", self.log_tail());
        }
    }

    /// The server's temporary directory (its configuration and data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Polls `GET path` until it answers 200, or panics with the log after `within`.
    pub fn wait_ready(&mut self, what: &str, path: &str, within: Duration) {
        let started = Instant::now();
        loop {
            self.check_alive(what);
            if matches!(self.get(path), Ok((200, _))) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{what} not ready after {within:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` on this server: the status and the body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        http(&self.url, "GET", path, None)
    }

    /// `POST path` with a JSON body: the status and the body.
    pub fn post_json(&self, path: &str, body: &str) -> Result<(u16, String), String> {
        http(&self.url, "POST", path, Some(body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails the test, saying what to install, when `binary` cannot run.
pub fn require(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{binary}` is not installed: run scripts/test, which installs the Debian packages \
         prometheus and prometheus-alertmanager (or: apt-get install -y prometheus \
         prometheus-alertmanager)"
    );
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `binary ARGS` with its output in `server.log` of `dir`; it listens on `port`.
pub fn start(binary: &str, args: &[String], dir: tempfile::TempDir, port: u16) -> Server {
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {binary}: {e}; run scripts/test"));
    Server {
        child,
        log,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// `1s`, `500ms`: a duration as Prometheus' configuration writes it.
fn prometheus_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A ready Prometheus scraping each `(job_name, address)` of `targets` every `scrape_interval`
/// (rules are evaluated at the same interval), loading `rule_files`.
pub fn start_prometheus(
    targets: &[(&str, SocketAddr)],
    scrape_interval: Duration,
    rule_files: &[&Path],
) -> Server {
    require(PROMETHEUS);
    let dir = tempfile::tempdir().unwrap();
    let interval = prometheus_duration(scrape_interval);
    let mut config =
        format!("global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n");
    if !rule_files.is_empty() {
        config.push_str("rule_files:\n");
        for file in rule_files {
            config.push_str(&format!("  - {:?}\n", file.display().to_string()));
        }
    }
    config.push_str("scrape_configs:\n");
    for (job, address) in targets {
        config.push_str(&format!(
            "  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{address}\"]\n"
        ));
    }
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let port = free_port();
    let args = vec![
        format!("--config.file={}", path.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    let mut server = start(PROMETHEUS, &args, dir, port);
    server.wait_ready("prometheus", "/-/ready", READY_WITHIN);
    server
}

/// A ready Alertmanager that routes every alert to a receiver doing nothing, without clustering.
pub fn start_alertmanager() -> Server {
    require(ALERTMANAGER);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    let mut server = start(ALERTMANAGER, &args, dir, port);
    server.wait_ready("alertmanager", "/-/ready", READY_WITHIN);
    server
}

/// The values of an instant query's result (one per series, or the scalar), from
/// `/api/v1/query` of a Prometheus; an error for a failed request or a non-success answer.
pub fn prometheus_values(prometheus: &Server, query: &str) -> Result<Vec<f64>, String> {
    let (status, body) = prometheus.get(&format!("/api/v1/query?query={}", url_encode(query)))?;
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
    if json["status"] != "success" {
        return Err(format!("HTTP {status}: {body}"));
    }
    let number = |sample: &serde_json::Value| {
        sample[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("unexpected sample {sample} in {body}"))
    };
    let result = &json["data"]["result"];
    match json["data"]["resultType"].as_str() {
        Some("scalar") => Ok(vec![number(result)?]),
        Some("vector") => result
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|s| number(&s["value"]))
            .collect(),
        _ => Err(format!("not an instant vector or scalar: {body}")),
    }
}

/// Posts one alert with `labels` to an Alertmanager's `/api/v2/alerts`, active from `starts`
/// until `ends` (an `ends` in the past resolves it).
pub fn post_alert(
    alertmanager: &Server,
    labels: &[(&str, &str)],
    starts: SystemTime,
    ends: SystemTime,
) {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let alerts = serde_json::json!([{
        "labels": labels,
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }]);
    let answer = alertmanager.post_json("/api/v2/alerts", &alerts.to_string());
    assert!(
        matches!(answer, Ok((200, _))),
        "posting {alerts} to alertmanager: {answer:?}\n{}",
        alertmanager.log_tail()
    );
}

/// RFC 3339 UTC time of `at`, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 request (so the answer is never chunked) to `base` (`http://host:port`), with
/// a 5 s bound on connecting and on each read and write.
fn http(base: &str, method: &str, path: &str, json: Option<&str>) -> Result<(u16, String), String> {
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// URLs are supported"))?
        .trim_end_matches('/');
    let address = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let timeout = Duration::from_secs(5);
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("{base}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\n");
    if let Some(body) = json {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(json.unwrap_or_default());
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{method} {base}{path}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{method} {base}{path}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {base}{path}: no HTTP answer: {answer:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {base}{path}: bad status line in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// What the exporter answers to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// 200 with `body` (served as Prometheus' text format, version 0.0.4).
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
        }
    }
}

/// Serves HTTP on a loopback port of the current tokio runtime (which must keep running, e.g.
/// a multi-threaded one): each request gets `reply(path)` (the request target, with its query),
/// so one exporter can serve `/metrics` and `/healthz` from state the test changes.
pub async fn exporter(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/");
                let Reply { status, body } = reply(path);
                let reason = match status {
                    200 => "OK",
                    404 => "Not Found",
                    500 => "Internal Server Error",
                    503 => "Service Unavailable",
                    _ => "Status",
                };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}
