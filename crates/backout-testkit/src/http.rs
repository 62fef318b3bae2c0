//! A real HTTP/1.1 server on a loopback port for tests of webhooks and other HTTP channels. It
//! parses each request, records it (with the instant it arrived), and answers as the test
//! scripted: a status with headers and a body, after a delay, or never (a hung receiver).
//!
//! It runs on its own threads, so blocking tests and async tests (on any tokio runtime flavour)
//! use it alike. It does not interpret what it receives: the assertions stay in the tests.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the sink answers one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: &'static str,
    /// Wait this long before answering (to provoke a client timeout).
    pub delay: Duration,
    /// Never answer: hold the connection open until the client gives up or the sink is dropped,
    /// so the sender waits in the request (and can be killed there).
    pub hang: bool,
}

impl Answer {
    /// `status` with no headers and an empty body, at once.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: "",
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// Read the request, then never answer.
    pub fn hang() -> Answer {
        Answer {
            hang: true,
            ..Answer::status(200)
        }
    }
}

/// One request as the sink saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request line as sent, e.g. `POST /hook HTTP/1.1`.
    pub line: String,
    pub method: String,
    pub path: String,
    /// Names in lowercase, in the order they came.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the whole request had arrived.
    pub at: Instant,
}

impl Request {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Idempotency-Key` every backout delivery sends.
    pub fn key(&self) -> String {
        self.header("idempotency-key")
            .expect("every delivery sends an Idempotency-Key")
            .to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the accepting thread, the connection threads and the test share.
struct Shared {
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Answer>>,
    then: Answer,
    /// Connections held open by [`Answer::hang`], closed when the sink is dropped.
    held: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
}

/// A lock that a panicking connection thread cannot make unusable for the test.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How to start an [`HttpSink`]: its path and its answers.
pub struct HttpSinkBuilder {
    path: String,
    first: VecDeque<Answer>,
    then: Answer,
}

impl HttpSinkBuilder {
    /// The path of [`HttpSink::url`] (default `/hooks/secret-token`, a path that must never
    /// appear in what backout shows or stores). The sink answers every path alike.
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_string();
        self
    }

    /// Answers for the first requests, in order, before the sink falls back to its answer.
    pub fn first(mut self, answers: impl IntoIterator<Item = Answer>) -> Self {
        self.first.extend(answers);
        self
    }

    /// Binds a free loopback port and starts serving.
    pub fn start(self) -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(self.first),
            then: self.then,
            held: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let serving = shared.clone();
        let accepting = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if serving.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = serving.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        HttpSink {
            url: format!("http://{addr}{}", self.path),
            addr,
            shared,
            accepting: Some(accepting),
        }
    }
}

/// A real HTTP/1.1 server on a loopback port; stops when dropped.
pub struct HttpSink {
    /// Where to send: `http://127.0.0.1:PORT/hooks/secret-token` unless another path was set.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl HttpSink {
    /// A sink that answers every request with `answer`.
    pub fn start(answer: Answer) -> HttpSink {
        HttpSink::answering(answer).start()
    }

    /// A sink to configure further, answering with `answer` once its script is used up.
    pub fn answering(answer: Answer) -> HttpSinkBuilder {
        HttpSinkBuilder {
            path: "/hooks/secret-token".to_string(),
            first: VecDeque::new(),
            then: answer,
        }
    }

    /// `http://127.0.0.1:PORT`, without a path.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `path` on this sink, e.g. `url_for("/healthz")`: the sink answers every path alike.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Stops listening (a service that went down): from now on, connections are refused.
    /// Connections held by [`Answer::hang`] are closed.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees `stop` and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
        for stream in lock(&self.shared.held).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// The requests received so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Blocks until `count` requests arrived (and returns them all), or panics after `limit`.
    #[track_caller]
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Request> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(requests) = self.arrived_by(count, deadline, limit) {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`HttpSink::wait_for`] for async tests: it yields to the runtime while it waits.
    pub async fn arrived(&self, count: usize, limit: Duration) -> Vec<Request> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(requests) = self.arrived_by(count, deadline, limit) {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The requests once `count` arrived, `None` before; panics once `deadline` has passed.
    fn arrived_by(&self, count: usize, deadline: Instant, limit: Duration) -> Option<Vec<Request>> {
        let requests = self.requests();
        if requests.len() >= count {
            return Some(requests);
        }
        assert!(
            Instant::now() < deadline,
            "the HTTP sink got {} requests within {limit:?}, expected {count}",
            requests.len()
        );
        None
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request, records it, and answers it as scripted.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let Some(mut request) = read_request(&mut stream) else {
        return;
    };
    request.at = Instant::now();
    lock(&shared.requests).push(request);
    let answer = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| shared.then.clone());
    if answer.hang {
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.held).push(clone);
        }
        // Returns when the client closes or the sink shuts the connection down.
        let mut rest = [0u8; 1024];
        while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
        return;
    }
    std::thread::sleep(answer.delay);
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
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// The request line, headers and `content-length` bytes of body; `None` when the client closed
/// before the head was complete.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_owned();
    let mut first = line.split(' ');
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
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    Some(Request {
        line,
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    })
}

/// A loopback URL where nothing listens (a receiver that is down).
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    drop(listener);
    format!("http://{addr}/hooks/secret-token")
}
