//! Shared pieces of the tests: notices to send, and a small real HTTP server that records what it
//! receives and answers with the status a test chooses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_model::plan::Event;
use backout_notify::{Link, Notice, ReleaseInfo, WindowInfo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// rustls with ring, as the binary does at the top of `main`.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A notice with every part filled in, shaped as the module documentation of `notice` describes.
pub fn full_notice(event: Event) -> Notice {
    let mut notice = Notice::new(
        event,
        "rel-42.17",
        "2026-11-03T14:05:09Z",
        format!("checkout 2.4.0: {}", event.describe()),
    );
    notice.release = Some(ReleaseInfo {
        id: "rel-42".into(),
        service: "checkout".into(),
        version: "2.4.0".into(),
        rollback_to: Some("2.3.9".into()),
        environment: Some("production".into()),
        plan_hash: Some("b3f1c2".into()),
        change_ticket: None,
        window: Some(WindowInfo {
            closes_at: "2026-11-03T18:00:00Z".into(),
            closed: matches!(event, Event::WindowClosed),
            overridden: false,
            after_close: Some("roll forward with a fix; page the checkout team".into()),
        }),
    });
    notice.plan = Some("checkout".into());
    notice.verdict = Some(json!({
        "verdict": match event {
            Event::Inconclusive => "inconclusive",
            Event::Success => "success",
            _ => "rollback_required",
        },
        "criteria": if event == Event::Success {
            json!([
                { "name": "error-rate", "status": "passing", "value": "0.004", "threshold": "> 0.02" },
                { "name": "p99-latency", "status": "passing", "value": "0.41", "threshold": "> 0.8" },
            ])
        } else {
            json!([
                { "name": "error-rate", "status": "tripped", "value": "0.031", "threshold": "> 0.02",
                  "labels": { "route": "/pay" } },
                { "name": "p99-latency", "status": "passing", "value": "0.41", "threshold": "> 0.8" },
                { "name": "orders-per-minute", "status": "inconclusive", "reason": "no data" },
            ])
        },
    }));
    notice.decision = Some(json!({
        "actor": "bob", "decision": "approve", "reason": "error rate climbing on /pay",
        "override_window": false,
    }));
    notice.run = Some(json!({
        "id": "run-7", "state": "running", "duration": "4m 12s",
        "steps": { "total": 6, "done": 4, "failed": 1 },
        "step": { "id": "drain-traffic", "error": "exit 1: no such deployment",
                  "performers": ["oncall"], "instructions": "Drain the EU pool in the console." },
    }));
    notice.deciders = vec!["alice".into(), "sre-leads".into()];
    notice.links = vec![Link {
        label: "release".into(),
        url: "https://backout.example.com/releases/rel-42".into(),
    }];
    notice
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// How the test server answers.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: &'static str,
    /// Wait this long before answering (to provoke a client timeout).
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: "",
            delay: Duration::ZERO,
        }
    }
}

/// A real HTTP/1.1 server on a loopback port: parses each request, records it, answers.
pub struct HttpReceiver {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpReceiver {
    pub async fn start(answer: Answer) -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                let answer = answer.clone();
                tokio::spawn(async move { serve(stream, recorded, answer).await });
            }
        });
        HttpReceiver {
            url: format!("http://{addr}/hooks/secret-token"),
            requests,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

async fn serve(mut stream: TcpStream, recorded: Arc<Mutex<Vec<Recorded>>>, answer: Answer) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    recorded.lock().expect("not poisoned").push(Recorded {
        method,
        path,
        headers,
        body,
    });
    tokio::time::sleep(answer.delay).await;
    let mut response = format!(
        "HTTP/1.1 {} Test\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(answer.body);
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A loopback URL where nothing listens.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    drop(listener);
    format!("http://{addr}/hooks/secret-token")
}
