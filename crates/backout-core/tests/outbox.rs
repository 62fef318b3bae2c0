//! The notification outbox end to end, on real components: a SQLite file, the release operations
//! and the executor writing events with their deliveries, the dispatcher sending them to a real
//! HTTP server on a loopback port, a real SMTP server (aiosmtpd, the one backout-notify's tests
//! use) and `sh`. Time for due dates and backoff comes from a clock the tests move by hand.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backout_core::clock::{Clock, SystemClock};
use backout_core::env::Resolver;
use backout_core::notify::{DispatchOptions, Dispatcher, event_id};
use backout_core::release::{self, StartRelease};
use backout_core::{Executor, Progress, ProgressEvent, RunOptions};
use backout_sqlite::SqliteStore;
use backout_store::{
    AttemptOutcome, Delivery, DeliveryKind, DeliveryState, NewEvent, Release, RunKind, Store,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// 2026-11-26T18:04:05Z.
const T: i64 = 1_795_716_245_000;

const PLAN: &str = r#"
version: 1
release:
  service: checkout
  version: "2.4.0"
  rollback_to: "2.3.9"
  environment: production
owners:
  deployment_engineer: de@example.com
people:
  deciders: [alice, bob]
  performers: [carol]
criteria:
  rollback_when:
    - id: error-rate
      title: Error rate of /pay
      command: "true"
      every: 1m
window:
  opens: deploy
  closes_after: 4h
  after_close: ship a hotfix instead
authorization:
  deciders: deciders
  quorum: 1
execution:
  performers: performers
  start_within: 5m
procedure:
  steps:
    - id: announce
      title: Tell ops the backout starts
      notify: [ops, mail]
      message: "Rolling checkout back to 2.3.9"
      expected: 1s
    - id: flip
      needs: [announce]
      run: "exit 3"
      expected: 1s
      idempotent: true
contingency:
  not_applicable: "nothing to fall back on"
workarounds:
  not_applicable: "no alternative"
expected_duration: 5s
communication:
  channels:
    ops: { webhook: "${OPS_HOOK}" }
    mail: { email: [oncall@example.com] }
    broken: { webhook: "${UNSET_HOOK}" }
    page: { command: "cat > paged.json" }
  notify:
    rollback_required: [ops, page]
    started: [ops]
    step_failed: [ops]
    failed: [ops, mail]
    window_closed: [broken]
  templates:
    failed: "FAILED {{ run.id }} after {{ run.duration }}"
testing:
  rehearse_in: staging
  max_age: 30d
"#;

/// A clock the test moves.
struct TestClock(AtomicI64);

impl TestClock {
    fn at(ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(ms)))
    }

    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Read the request, then never answer (the sender dies waiting).
    Hang,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Request {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn key(&self) -> String {
        self.header("idempotency-key")
            .expect("every delivery sends an Idempotency-Key")
            .to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A real HTTP/1.1 server on a loopback port that answers from a script (then 200) and records
/// every request.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    async fn start(script: Vec<Reply>, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/hooks/secret-token",
            listener.local_addr().expect("addr")
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (recorded, script) = (recorded.clone(), script.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    recorded.lock().unwrap().push(request);
                    let reply = script
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(Reply::Status(200));
                    tokio::time::sleep(delay).await;
                    match reply {
                        Reply::Hang => std::future::pending::<()>().await,
                        Reply::Status(status) => {
                            let response = format!(
                                "HTTP/1.1 {status} Test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(response.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        });
        Receiver { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.requests().len() < count {
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests, expected {count}",
                self.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
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
    Some(Request { headers, body })
}

/// A running `smtp_sink.py` of backout-notify's tests; killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "the email test needs a real SMTP server: `pip install aiosmtpd`"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../backout-notify/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the sink prints its port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the SMTP sink did not start (printed {line:?})")
        });
        SmtpSink { child, port, dir }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("the sink's directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("read")).expect("JSON"))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open_path(&dir.path().join("backout.db"))
            .await
            .expect("open store");
        Fixture {
            dir,
            store: Arc::new(store),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("backout.db")
    }

    async fn start_release(&self) -> Release {
        release::start(
            self.store.as_ref(),
            &StartRelease {
                source: PLAN,
                version: None,
                rollback_to: None,
                actor: "deploy-bot",
                at_ms: T,
            },
        )
        .await
        .expect("the release starts")
    }

    fn dispatcher(
        &self,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hook: &str,
        tune: impl FnOnce(&mut DispatchOptions),
    ) -> Dispatcher {
        let resolver = Resolver::from_vars([("OPS_HOOK".to_string(), hook.to_string())]);
        let hash = backout_model::lint(PLAN).hash.expect("hashed");
        let mut options = DispatchOptions::default().plan_dir(hash, self.dir.path());
        options.delivery.timeout = Duration::from_secs(5);
        tune(&mut options);
        Dispatcher::new(store, clock, Arc::new(resolver), options).expect("a valid configuration")
    }
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A person requests a rollback (the request announces `rollback_required`, with its
/// deliveries) and `check` journals the verdict (not announced again); returns the event that
/// carries the deliveries.
async fn rollback_required(fixture: &Fixture, release: &Release) -> backout_store::Event {
    release::request(
        fixture.store.as_ref(),
        &release.id,
        "customers report failed payments",
        "alice",
        T + 1_000,
    )
    .await
    .expect("the request is journaled");
    let report = release::check(
        fixture.store.as_ref(),
        &release.id,
        Arc::new(Resolver::from_env()),
        "backout:check",
        T + 2_000,
        false,
    )
    .await
    .expect("check");
    assert_eq!(
        serde_json::to_value(report.verdict).unwrap(),
        "rollback_required"
    );
    let events = fixture
        .store
        .release_events(&release.id, 0, 100)
        .await
        .expect("events");
    assert!(
        events.iter().any(|e| e.kind == "verdict"),
        "the verdict is journaled"
    );
    events
        .into_iter()
        .rfind(|e| e.kind == "rollback_requested")
        .expect("the request event")
}

async fn deliveries_of(store: &dyn Store, release_id: &str) -> Vec<Delivery> {
    let mut listed = store
        .list_deliveries(Some(release_id), 100)
        .await
        .expect("list");
    listed.reverse();
    listed
}

#[tokio::test]
async fn a_verdict_is_routed_retried_with_backoff_and_delivered_once_per_key() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver =
        Receiver::start(vec![Reply::Status(503), Reply::Status(503)], Duration::ZERO).await;
    let release = fixture.start_release().await;
    let verdict = rollback_required(&fixture, &release).await;

    // Routing: the plan's `notify.rollback_required: [ops, page]`, committed with the verdict.
    let queued = deliveries_of(fixture.store.as_ref(), &release.id).await;
    let routed: Vec<(&str, DeliveryKind, &str, u64)> = queued
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.kind,
                d.notify_event.as_str(),
                d.event_seq,
            )
        })
        .collect();
    assert_eq!(
        routed,
        [
            (
                "ops",
                DeliveryKind::Webhook,
                "rollback_required",
                verdict.seq
            ),
            (
                "page",
                DeliveryKind::Command,
                "rollback_required",
                verdict.seq
            ),
        ]
    );

    let clock = TestClock::at(T + 2_000);
    let dispatcher =
        fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |_| {});
    let first = dispatcher.dispatch_due().await.expect("round 1");
    assert_eq!(first.len(), 2, "{first:#?}");
    let (ops, page) = (&first[0], &first[1]);
    assert_eq!(ops.state, DeliveryState::Pending);
    assert_eq!(ops.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        ops.next_attempt_at_ms,
        Some(T + 3_000),
        "1 s after the first failure"
    );
    assert_eq!(page.state, DeliveryState::Delivered, "{page:#?}");

    // Nothing is sent before its time; then 2 s after the second failure; then delivered.
    clock.set(T + 2_999);
    assert!(dispatcher.dispatch_due().await.expect("early").is_empty());
    clock.set(T + 3_000);
    let second = dispatcher.dispatch_due().await.expect("round 2");
    assert_eq!(second[0].next_attempt_at_ms, Some(T + 5_000));
    clock.set(T + 4_999);
    assert!(dispatcher.dispatch_due().await.expect("early").is_empty());
    clock.set(T + 5_000);
    let third = dispatcher.dispatch_due().await.expect("round 3");
    assert_eq!(third[0].state, DeliveryState::Delivered);
    clock.set(T + 60_000);
    assert!(dispatcher.dispatch_due().await.expect("done").is_empty());

    let ops = fixture.store.get_delivery(ops.id).await.expect("ops");
    let attempts: Vec<(i64, AttemptOutcome, &str)> = ops
        .attempts
        .iter()
        .map(|a| (a.at_ms, a.outcome, a.detail.as_str()))
        .collect();
    assert_eq!(
        attempts,
        [
            (T + 2_000, AttemptOutcome::Retry, "HTTP 503"),
            (T + 3_000, AttemptOutcome::Retry, "HTTP 503"),
            (T + 5_000, AttemptOutcome::Delivered, "HTTP 200"),
        ]
    );
    assert_eq!(ops.delivered_at_ms, Some(T + 5_000));
    assert!(ops.attempts.iter().all(|a| a.by == dispatcher.claimant()));

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "three attempts, one delivery");
    let key = event_id(&verdict);
    assert_eq!(key, format!("evt-{}-{}", verdict.seq, &verdict.hash[..12]));
    assert!(
        requests.iter().all(|r| r.key() == key),
        "the same Idempotency-Key every time"
    );
    let body = requests[2].json();
    assert_eq!(body["event"], "rollback_required");
    assert_eq!(body["event_id"], key.as_str());
    assert_eq!(
        body["at"], "2026-11-26T18:04:06Z",
        "the time of the request"
    );
    assert_eq!(body["release"]["id"], release.id.as_str());
    assert_eq!(body["release"]["version"], "2.4.0");
    assert_eq!(
        body["release"]["window"]["after_close"],
        "ship a hotfix instead"
    );
    assert_eq!(body["verdict"]["verdict"], "rollback_required");
    assert_eq!(body["verdict"]["requested"]["by"], "alice");
    assert_eq!(
        body["verdict"]["requested"]["reason"],
        "customers report failed payments"
    );
    assert_eq!(body["deciders"], serde_json::json!(["alice", "bob"]));
    assert_eq!(
        body["summary"],
        "checkout 2.4.0 in production: rollback required (requested by alice)"
    );

    // The command channel ran in the plan's directory with the notice on standard input.
    let paged: Value = serde_json::from_slice(
        &std::fs::read(fixture.dir.path().join("paged.json")).expect("the command wrote"),
    )
    .expect("JSON");
    assert_eq!(paged["event_id"], key.as_str());
}

#[tokio::test]
async fn a_client_error_or_a_missing_variable_gives_up_at_once() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(vec![Reply::Status(400)], Duration::ZERO).await;
    let release = fixture.start_release().await;
    rollback_required(&fixture, &release).await;
    // The window closes on time: `window_closed` goes to a channel whose URL is not set.
    let closes = release.closes_at_ms.expect("a window");
    release::check(
        fixture.store.as_ref(),
        &release.id,
        Arc::new(Resolver::from_env()),
        "backout:check",
        closes,
        false,
    )
    .await
    .expect("check at the close");

    let clock = TestClock::at(closes);
    let dispatcher =
        fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |_| {});
    let settled = dispatcher.dispatch_due().await.expect("round");
    let by_channel = |name: &str| {
        settled
            .iter()
            .find(|d| d.channel == name)
            .unwrap_or_else(|| panic!("a delivery to {name}: {settled:#?}"))
    };
    let ops = by_channel("ops");
    assert_eq!(ops.state, DeliveryState::Failed);
    assert_eq!(ops.attempts.len(), 1);
    assert_eq!(ops.attempts[0].outcome, AttemptOutcome::GaveUp);
    assert!(
        ops.last_error.as_deref().unwrap().starts_with("HTTP 400"),
        "{ops:#?}"
    );
    let broken = by_channel("broken");
    assert_eq!(broken.notify_event, "window_closed");
    assert_eq!(broken.state, DeliveryState::Failed);
    assert_eq!(
        broken.last_error.as_deref(),
        Some(
            "channel `broken`: environment variable `UNSET_HOOK` is not set (the plan references it as ${UNSET_HOOK})"
        )
    );
    assert_eq!(receiver.requests().len(), 1, "the 400 was not retried");
    clock.set(closes + 24 * 3_600_000);
    assert!(dispatcher.dispatch_due().await.expect("round").is_empty());
}

#[tokio::test]
async fn a_crash_between_the_commit_and_the_send_loses_nothing() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(vec![Reply::Hang], Duration::ZERO).await;
    let release = fixture.start_release().await;
    // The verdict and its deliveries are committed; the process "dies" before any dispatcher
    // ran: only the file is left.
    let verdict = rollback_required(&fixture, &release).await;
    let Fixture { dir, store } = fixture;
    drop(store);
    let fixture = Fixture {
        store: Arc::new(
            SqliteStore::open_path(&dir.path().join("backout.db"))
                .await
                .expect("reopen"),
        ),
        dir,
    };

    // The restarted process's dispatcher claims the webhook and sends it; the receiver never
    // answers, and the process dies again mid-send (its task is aborted, nothing is recorded).
    let clock = TestClock::at(T + 10_000);
    let lease = Duration::from_secs(60);
    let first = fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |o| {
        o.lease = lease;
        o.delivery.timeout = Duration::from_secs(30);
    });
    let crashed = tokio::spawn(async move { first.dispatch_due().await });
    receiver.wait_for(1).await;
    crashed.abort();
    assert!(crashed.await.expect_err("aborted").is_cancelled());

    let ops = deliveries_of(fixture.store.as_ref(), &release.id)
        .await
        .into_iter()
        .find(|d| d.channel == "ops")
        .expect("the ops delivery");
    assert_eq!(ops.state, DeliveryState::Pending);
    assert!(
        ops.attempts.is_empty(),
        "the crashed attempt recorded nothing"
    );
    assert_eq!(ops.claimed_until_ms, Some(T + 10_000 + 60_000));

    // Another process on the same file: nothing to do while the dead claim runs, then it
    // delivers, with the same key.
    let other_store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_path(&fixture.db())
            .await
            .expect("open again"),
    );
    let second = fixture.dispatcher(other_store, clock.clone(), &receiver.url, |_| {});
    clock.set(T + 10_000 + 59_999);
    assert!(
        second.dispatch_due().await.expect("round").is_empty(),
        "a live claim keeps others off"
    );
    clock.set(T + 10_000 + 60_000);
    let settled = second.dispatch_due().await.expect("round");
    let ops = settled
        .iter()
        .find(|d| d.channel == "ops")
        .expect("the expired claim was taken over");
    assert_eq!(ops.state, DeliveryState::Delivered);
    assert_eq!(ops.attempts.len(), 1);
    assert_eq!(ops.attempts[0].by, second.claimant());
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        2,
        "at least once: sent again after the crash"
    );
    let key = event_id(&verdict);
    assert_eq!(requests[0].key(), key);
    assert_eq!(
        requests[1].key(),
        key,
        "with the same key, so the receiver drops it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_file_send_each_delivery_once() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Vec::new(), Duration::from_millis(50)).await;
    let release = fixture.start_release().await;
    let plan = backout_model::lint(PLAN).plan.expect("lints");
    let events: Vec<NewEvent> = (0..24)
        .map(|i| {
            backout_core::notify::routed(
                &plan,
                NewEvent::new("verdict", "backout:watch", T + i)
                    .release(&release.id)
                    .payload(serde_json::json!({
                        "verdict": "rollback_required",
                        "evidence": { "requested": false, "criteria": [] },
                    })),
            )
        })
        .collect();
    fixture.store.append_events(&events).await.expect("append");

    let clock: Arc<dyn Clock> = TestClock::at(T + 1_000);
    let other: Arc<dyn Store> = Arc::new(
        SqliteStore::open_path(&fixture.db())
            .await
            .expect("second handle"),
    );
    let a = fixture.dispatcher(fixture.store.clone(), clock.clone(), &receiver.url, |o| {
        o.concurrency = 3;
    });
    let b = fixture.dispatcher(other, clock.clone(), &receiver.url, |o| o.concurrency = 3);
    let drive = |d: Dispatcher| async move {
        let mut sent = Vec::new();
        loop {
            let round = d.dispatch_due().await.expect("round");
            if round.is_empty() {
                return sent;
            }
            sent.extend(round.into_iter().map(|d| d.id));
        }
    };
    let (from_a, from_b) = tokio::join!(tokio::spawn(drive(a)), tokio::spawn(drive(b)));
    let (from_a, from_b) = (from_a.expect("a"), from_b.expect("b"));
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both took a share"
    );
    let all: BTreeSet<u64> = from_a.iter().chain(&from_b).copied().collect();
    assert_eq!(
        all.len(),
        from_a.len() + from_b.len(),
        "no delivery sent by both"
    );

    let listed = deliveries_of(fixture.store.as_ref(), &release.id).await;
    let ops: Vec<&Delivery> = listed.iter().filter(|d| d.channel == "ops").collect();
    assert_eq!(ops.len(), 24);
    assert!(
        ops.iter()
            .all(|d| d.state == DeliveryState::Delivered && d.attempts.len() == 1)
    );
    let keys: Vec<String> = receiver.requests().iter().map(Request::key).collect();
    assert_eq!(keys.len(), 24, "one request per delivery");
    assert_eq!(
        keys.iter().collect::<BTreeSet<_>>().len(),
        24,
        "one key per event"
    );
}

struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: &ProgressEvent) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_notifies_its_channels_by_webhook_and_email() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = Receiver::start(Vec::new(), Duration::ZERO).await;
    let sink = SmtpSink::start();
    let executor = Executor::new(
        fixture.store.clone(),
        Arc::new(SystemClock),
        Resolver::from_vars(Vec::new()),
        Arc::new(Quiet),
    );
    let dispatcher = fixture.dispatcher(
        fixture.store.clone(),
        Arc::new(SystemClock),
        &receiver.url,
        |o| {
            o.delivery.smtp_url = Some(sink.url());
            o.delivery.from = "backout@ops.example.com".into();
            o.poll = Duration::from_millis(20);
        },
    );
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let dispatching = tokio::spawn(async move {
        dispatcher
            .run(
                async {
                    let _ = finished.await;
                },
                move |d| seen.lock().unwrap().push((d.notify_event.clone(), d.state)),
            )
            .await
    });
    let options = RunOptions {
        kind: RunKind::Adhoc,
        environment: "production".into(),
        checkpoints: Vec::new(),
        actor: "carol".into(),
        release_id: None,
        workaround: None,
        wait_for_people: false,
        extra_env: Vec::new(),
        break_glass: None,
    };
    let summary = executor.start(PLAN, &options).await.expect("the run ends");
    assert_eq!(summary.run.state.as_str(), "failed", "`flip` exits 3");
    // The run is over: the dispatcher drains what is due and stops.
    done.send(()).expect("the dispatcher listens");
    dispatching.await.expect("joined").expect("no store error");

    let run_id = summary.run.id.clone();
    let deliveries = fixture
        .store
        .list_deliveries(None, 100)
        .await
        .expect("list");
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Delivered),
        "{deliveries:#?}"
    );
    let mut routed: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| (d.notify_event.clone(), d.channel.clone()))
        .collect();
    routed.sort();
    assert_eq!(
        routed,
        [
            ("failed", "mail"),
            ("failed", "ops"),
            ("message", "mail"),
            ("message", "ops"),
            ("started", "ops"),
            ("step_failed", "ops"),
        ]
        .map(|(e, c)| (e.to_string(), c.to_string()))
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.run_id.as_deref() == Some(run_id.as_str()))
    );
    assert_eq!(
        attempts.lock().unwrap().len(),
        6,
        "every attempt was reported"
    );

    // Webhook: one request per delivery.
    let requests = receiver.requests();
    let mut events: Vec<String> = requests
        .iter()
        .map(|r| r.json()["summary"].as_str().unwrap_or("").to_string())
        .collect();
    events.sort();
    // The run's duration is measured (`59ms` below a second, as backout_model::Duration::measured
    // spells it), so only its form is fixed; the rest is compared exactly.
    let took = events[0]
        .strip_prefix(&format!("FAILED {run_id} after "))
        .map(str::to_string)
        .expect("the failed notice's summary");
    assert!(
        backout_model::Duration::parse(&took).is_some(),
        "`{took}` is a duration"
    );
    // The plan's `templates.failed` is the `failed` notice's summary too.
    assert_eq!(
        events,
        [
            format!("FAILED {run_id} after {took}"),
            "checkout in production: Rolling checkout back to 2.3.9".to_string(),
            format!("checkout in production: backout started (run {run_id})"),
            "checkout in production: step flip failed: exit status 3".to_string(),
        ]
    );
    let failed = requests
        .iter()
        .map(Request::json)
        .find(|b| b["event"] == "failed")
        .expect("the failed notice");
    assert_eq!(failed["run"]["id"], run_id.as_str());
    assert_eq!(failed["run"]["state"], "failed");
    assert_eq!(failed["run"]["step"]["id"], "flip");
    assert_eq!(failed["run"]["steps"]["total"], 2);
    assert_eq!(failed["run"]["steps"]["failed"], 1);

    // Email: the notify step's message and the failure, with the plan's template for it.
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let subjects: BTreeSet<String> = messages
        .iter()
        .map(|m| m["headers"]["Subject"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "Backout FAILED: checkout".to_string(),
            "checkout in production: Tell ops the backout starts".to_string(),
        ])
    );
    for m in &messages {
        assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
        assert!(
            m["headers"]["X-Backout-Event-Id"]
                .as_str()
                .unwrap()
                .starts_with("evt-")
        );
    }
    let text_of = |subject: &str| {
        let m = messages
            .iter()
            .find(|m| m["headers"]["Subject"] == subject)
            .expect("the message");
        m["parts"][0]["content"].as_str().unwrap().to_string()
    };
    let failure = text_of("Backout FAILED: checkout");
    assert!(
        failure.contains(&format!("FAILED {run_id} after ")),
        "the plan's template: {failure}"
    );
    let announce = text_of("checkout in production: Tell ops the backout starts");
    assert!(
        announce.starts_with("Rolling checkout back to 2.3.9"),
        "{announce}"
    );
    assert!(
        announce.contains(&format!("backout status {run_id}")),
        "{announce}"
    );
}

/// A plan whose channels are the ones people act on: PagerDuty, Teams, a signed webhook.
const PAGED: &str = r#"
version: 1
release:
  service: checkout
  version: "2.4.0"
  rollback_to: "2.3.9"
  environment: production
  change_ticket: CHG0031415
owners:
  deployment_engineer: de@example.com
people:
  deciders: [alice, bob]
  performers: [carol]
criteria:
  rollback_when:
    - id: error-rate
      title: Error rate of /pay
      command: "true"
      every: 1m
window:
  opens: deploy
  closes_after: 4h
authorization:
  deciders: deciders
  quorum: 1
execution:
  performers: performers
  start_within: 5m
procedure:
  steps:
    - id: flip
      run: "true"
      expected: 1s
      idempotent: true
contingency:
  not_applicable: "nothing to fall back on"
workarounds:
  not_applicable: "no alternative"
expected_duration: 5s
communication:
  channels:
    pager: { pagerduty: { routing_key: "${PD_KEY}", url: "${PD_URL}" } }
    team: { teams: "${TEAMS_HOOK}" }
    audit:
      webhook: "${AUDIT_HOOK}"
      headers: { X-Team: payments, Authorization: "Bearer ${AUDIT_TOKEN}" }
      secret: "${AUDIT_SECRET}"
  notify:
    rollback_required: [pager, team, audit]
    rolled_back: [pager, team, audit]
testing:
  rehearse_in: staging
  max_age: 30d
"#;

#[tokio::test]
async fn pagerduty_teams_and_a_signed_webhook_hear_one_release_with_links_to_the_ui() {
    install_crypto();
    let fixture = Fixture::new().await;
    let (pager, team, audit) = (
        Receiver::start(Vec::new(), Duration::ZERO).await,
        Receiver::start(Vec::new(), Duration::ZERO).await,
        Receiver::start(Vec::new(), Duration::ZERO).await,
    );
    let release = release::start(
        fixture.store.as_ref(),
        &StartRelease {
            source: PAGED,
            version: None,
            rollback_to: None,
            actor: "deploy-bot",
            at_ms: T,
        },
    )
    .await
    .expect("the release starts");
    release::request(
        fixture.store.as_ref(),
        &release.id,
        "customers report failed payments",
        "alice",
        T + 1_000,
    )
    .await
    .expect("the request is journaled");
    let plan = backout_model::lint(PAGED).plan.expect("the plan lints");
    let rolled_back = backout_core::notify::routed(
        &plan,
        NewEvent::new("rolled_back", "backout:verify", T + 60_000).release(&release.id),
    );
    assert_eq!(rolled_back.deliveries.len(), 3, "routed to every channel");
    fixture
        .store
        .append_events(&[rolled_back])
        .await
        .expect("append");

    let resolver = Resolver::from_vars(
        [
            ("PD_KEY", "R0UT1NGKEY"),
            ("PD_URL", pager.url.as_str()),
            ("TEAMS_HOOK", team.url.as_str()),
            ("AUDIT_HOOK", audit.url.as_str()),
            ("AUDIT_TOKEN", "t0k3n"),
            ("AUDIT_SECRET", "shared-s3cret"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let options = DispatchOptions::default()
        .public_url("https://backout.example.com/")
        .expect("a public URL");
    let dispatcher = Dispatcher::new(
        fixture.store.clone(),
        TestClock::at(T + 61_000),
        Arc::new(resolver),
        options,
    )
    .expect("a valid configuration");
    let sent = dispatcher.dispatch_due().await.expect("dispatch");
    assert_eq!(sent.len(), 6, "{sent:#?}");
    assert!(
        sent.iter().all(|d| d.state == DeliveryState::Delivered),
        "{sent:#?}"
    );
    let release_page = format!("https://backout.example.com/ui/releases/{}", release.id);

    // PagerDuty: trigger, then resolve, of one alert per release.
    let mut paged: Vec<Value> = pager.requests().iter().map(Request::json).collect();
    paged.sort_by_key(|p| p["event_action"] != "trigger");
    assert_eq!(paged.len(), 2);
    let (trigger, resolve) = (&paged[0], &paged[1]);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY");
    assert_eq!(trigger["dedup_key"], format!("backout-{}", release.id));
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["custom_details"]["change_ticket"],
        "CHG0031415"
    );
    let hrefs: Vec<&str> = trigger["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    assert_eq!(
        hrefs,
        [format!("{release_page}#decide-form"), release_page.clone()]
    );
    assert_eq!(resolve["links"][0]["href"], release_page.as_str());

    // Teams: a card per event, with the release page as a button.
    for card in team.requests().iter().map(Request::json) {
        let content = &card["attachments"][0]["content"];
        assert_eq!(content["type"], "AdaptiveCard");
        assert!(
            content["actions"]
                .as_array()
                .expect("buttons")
                .iter()
                .any(|a| a["url"] == release_page.as_str()),
            "{content}"
        );
    }

    // The webhook: its headers, a signature the shared secret verifies, the change ticket
    // and the links in the JSON.
    let requests = audit.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("x-team"), Some("payments"));
        assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
        assert_eq!(
            request.header("x-backout-signature-256"),
            Some(backout_notify::signature("shared-s3cret", &request.body).as_str())
        );
        let body = request.json();
        assert_eq!(body["release"]["change_ticket"], "CHG0031415");
        assert!(
            body["links"]
                .as_array()
                .expect("links")
                .iter()
                .any(|l| l["label"] == "Release" && l["url"] == release_page.as_str()),
            "{body}"
        );
    }
}
