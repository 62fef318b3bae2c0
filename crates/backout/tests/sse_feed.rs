//! The change feed end to end: a write through [`Feed`] wakes its subscribers, the store
//! conformance stories pass through the decorator unchanged, a write on one PostgreSQL handle
//! wakes the LISTEN/NOTIFY listener of another, and SSE clients of a run (500 at once on one
//! server; one on a replica whose store did not make the write) receive each step event within
//! milliseconds of the write. Latencies are printed (`--nocapture`); the asserted bound (1 s)
//! is generous so a loaded machine does not fail the test, the printed numbers are the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_server::ServeOptions;
use backout_store::{
    ExecutorInfo, Feed, NewEvent, NewRun, Role, RunKind, RunState, StepRecord, StepState, Store,
    conformance,
};
use tokio::sync::{mpsc, oneshot, watch};

const T0: i64 = 1_732_000_000_000;
/// What every latency must stay under (the target is 100 ms; this only catches a broken feed).
const BOUND: Duration = Duration::from_secs(1);

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.path().join("feed.db").display());
    Arc::new(
        backout_sqlite::SqliteStore::open(&url)
            .await
            .expect("a SQLite store"),
    )
}

fn new_run(id: &str, steps: &[&str]) -> NewRun {
    NewRun {
        id: id.to_owned(),
        plan_hash: "blake3:feed".to_owned(),
        plan_source: "release: {}\n".to_owned(),
        kind: RunKind::Adhoc,
        release_id: None,
        environment: "staging".to_owned(),
        actor: "alice".to_owned(),
        state: RunState::Running,
        checkpoints: Vec::new(),
        executor: Some(ExecutorInfo {
            pid: std::process::id(),
            hostname: "localhost".to_owned(),
        }),
        steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        created_at_ms: T0,
    }
}

fn started(run: &str, step: &str, at_ms: i64) -> (StepRecord, NewEvent) {
    let mut record = StepRecord::pending(run, step, at_ms);
    record.state = StepState::Running;
    record.attempt = 1;
    record.started_at_ms = Some(at_ms);
    let event = NewEvent::new("step_started", "alice", at_ms)
        .run(run)
        .step(step);
    (record, event)
}

#[tokio::test]
async fn a_write_through_the_feed_wakes_its_subscribers_and_a_failed_one_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = Feed::new(sqlite(&dir).await);
    let mut first = feed.subscribe();
    let mut second = feed.subscribe();
    let event = feed
        .create_run(
            &new_run("r-1", &["a"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .expect("create");
    for receiver in [&mut first, &mut second] {
        tokio::time::timeout(BOUND, receiver.changed())
            .await
            .expect("woken within 1 s")
            .expect("the feed is alive");
        assert_eq!(*receiver.borrow_and_update(), event.seq);
    }
    // A batch announces its last event.
    let (record, step_event) = started("r-1", "a", T0 + 1);
    let events = feed
        .record_steps(&[
            (record.clone(), step_event.clone()),
            (record, step_event.clone()),
        ])
        .await
        .expect("batch");
    assert_eq!(*first.borrow_and_update(), events[1].seq);
    // A refused write (the run exists) appends nothing and announces nothing.
    let refused = feed
        .create_run(
            &new_run("r-1", &["a"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await;
    assert!(refused.is_err());
    assert!(!first.has_changed().expect("alive"));
    // Reads go through unchanged.
    assert_eq!(feed.run_events("r-1", 0, 10).await.expect("read").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_stories_pass_through_the_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = Feed::new(sqlite(&dir).await);
    let receiver = feed.subscribe();
    conformance::run_all(Arc::new(feed))
        .await
        .expect("every story passes through the decorator");
    assert!(*receiver.borrow() > 0, "the stories' writes were announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_postgres_handle_wakes_the_listener_of_another() {
    let db = TestDatabase::create().await;
    let writer = PostgresStore::open(db.url()).await.expect("writer");
    let reader = PostgresStore::open(db.url()).await.expect("reader");
    let (sender, mut receiver) = watch::channel(0);
    let listening = backout_postgres::listen(db.url(), sender)
        .await
        .expect("listening");
    receiver.borrow_and_update();
    let mut latencies = Vec::new();
    for i in 0..5 {
        let at = Instant::now();
        let event = writer
            .append_event(&NewEvent::new("note", "alice", T0 + i))
            .await
            .expect("append");
        loop {
            tokio::time::timeout(BOUND, receiver.changed())
                .await
                .expect("the other handle's listener woke within 1 s")
                .expect("listening");
            if *receiver.borrow_and_update() >= event.seq {
                break;
            }
        }
        latencies.push(at.elapsed());
        // The listener's process reads what it was told about through its own handle.
        let seen = reader.events(event.seq - 1, 10).await.expect("read");
        assert_eq!(seen.first().map(|e| e.seq), Some(event.seq));
    }
    println!("LISTEN/NOTIFY wake-up after a commit on another handle: {latencies:?}");

    // The listener's connection is killed (a server restart, a proxy's idle timeout): it
    // reconnects and announces what was committed meanwhile.
    let mut admin = db.raw().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'backout-listen' AND datname = current_database()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate the listener's session");
    assert!(!killed.is_empty(), "the listener has a session of its own");
    let event = writer
        .append_event(&NewEvent::new("note", "alice", T0 + 10))
        .await
        .expect("append while the listener reconnects");
    let at = Instant::now();
    while *receiver.borrow_and_update() < event.seq {
        tokio::time::timeout(Duration::from_secs(10), receiver.changed())
            .await
            .expect("the listener came back within 10 s")
            .expect("listening");
    }
    println!(
        "after its session was killed, the listener announced seq {} in {:?}",
        event.seq,
        at.elapsed()
    );
    let _ = sqlx::Connection::close(admin).await;
    listening.abort();
    writer.close().await;
    reader.close().await;
}

/// A server on a free port over `store`, woken by `feed`; stopped when the sender is dropped.
struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(store: Arc<dyn Store>, feed: Option<watch::Receiver<u64>>) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions {
            background: false,
            feed,
            ..ServeOptions::default()
        };
        let task = tokio::spawn(async move {
            backout_server::serve(store, listener, options, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        Server {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
    }
}

/// Follows `/api/v1/runs/{run}/events` and reports `(seq, when received)` of each journal event.
async fn watch_run(
    client: reqwest::Client,
    url: String,
    bearer: String,
    seen: mpsc::UnboundedSender<(u64, Instant)>,
) {
    let mut response = client
        .get(&url)
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let journal = block.lines().any(|line| line == "event: journal");
            let id = block
                .lines()
                .find_map(|line| line.strip_prefix("id:"))
                .and_then(|id| id.trim().parse::<u64>().ok());
            if let (true, Some(seq)) = (journal, id)
                && seen.send((seq, at)).is_err()
            {
                return;
            }
        }
    }
}

/// Waits until every one of `clients` watchers has reported `seq`; returns the slowest delay
/// after `since`.
async fn all_received(
    seen: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    clients: usize,
    seq: u64,
    since: Instant,
) -> Duration {
    let mut count = 0;
    let mut slowest = Duration::ZERO;
    while count < clients {
        let (got, at) = tokio::time::timeout(BOUND * 5, seen.recv())
            .await
            .unwrap_or_else(|_| panic!("{count} of {clients} clients got seq {seq}"))
            .expect("watchers alive");
        if got == seq {
            count += 1;
            slowest = slowest.max(at.saturating_duration_since(since));
        }
    }
    slowest
}

async fn viewer_token(store: &dyn Store) -> String {
    backout_server::auth::create(store, "viewer@example.com", Role::Viewer, "admin", T0)
        .await
        .expect("a token")
        .bearer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sse_clients_receive_each_step_event_within_milliseconds() {
    const CLIENTS: usize = 500;
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = Feed::new(sqlite(&dir).await);
    let receiver = feed.subscribe();
    let store: Arc<dyn Store> = Arc::new(feed);
    let bearer = viewer_token(store.as_ref()).await;
    let server = Server::start(store.clone(), Some(receiver)).await;
    let steps = ["s1", "s2", "s3", "s4", "s5"];
    let first = store
        .create_run(
            &new_run("r-live", &steps),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .expect("create");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("{}/api/v1/runs/r-live/events", server.base);
    let (report, mut seen) = mpsc::unbounded_channel();
    for _ in 0..CLIENTS {
        tokio::spawn(watch_run(
            client.clone(),
            url.clone(),
            bearer.clone(),
            report.clone(),
        ));
    }
    // Every client has its history (the run's first event) before the steps start.
    all_received(&mut seen, CLIENTS, first.seq, Instant::now()).await;
    let mut slowest = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (record, event) = started("r-live", step, T0 + 1 + i as i64);
        let at = Instant::now();
        let written = store.record_step(&record, &event).await.expect("record");
        let committed = at.elapsed();
        let delay = all_received(&mut seen, CLIENTS, written.seq, at).await;
        slowest.push((committed, delay));
        assert!(
            delay < BOUND,
            "step {step}: the slowest of {CLIENTS} clients got it after {delay:?}"
        );
    }
    println!(
        "{CLIENTS} SSE clients, one run, in-process feed: per step event, (the write's \
         commit, the slowest client), both from the write's start: {slowest:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_of_one_replica_gets_the_events_another_replica_wrote() {
    let db = TestDatabase::create().await;
    // Replica A serves the stream; replica B (another handle, as in another process) writes.
    let a = PostgresStore::open(db.url()).await.expect("replica a");
    let b: Arc<dyn Store> = Arc::new(PostgresStore::open(db.url()).await.expect("replica b"));
    let feed = Feed::new(Arc::new(a.clone()));
    let _listening = backout_postgres::listen(db.url(), feed.sender())
        .await
        .expect("listening");
    let receiver = feed.subscribe();
    let served: Arc<dyn Store> = Arc::new(feed);
    let bearer = viewer_token(served.as_ref()).await;
    let server = Server::start(served, Some(receiver)).await;
    let first = b
        .create_run(
            &new_run("r-far", &["s1", "s2", "s3"]),
            &NewEvent::new("run_started", "alice", T0),
        )
        .await
        .expect("create on b");
    let (report, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(watch_run(
        reqwest::Client::new(),
        format!("{}/api/v1/runs/r-far/events", server.base),
        bearer,
        report,
    ));
    all_received(&mut seen, 1, first.seq, Instant::now()).await;
    let mut delays = Vec::new();
    for (i, step) in ["s1", "s2", "s3"].iter().enumerate() {
        let (record, event) = started("r-far", step, T0 + 1 + i as i64);
        let at = Instant::now();
        let written = b.record_step(&record, &event).await.expect("record on b");
        let committed = at.elapsed();
        let delay = all_received(&mut seen, 1, written.seq, at).await;
        assert!(delay < BOUND, "step {step} arrived after {delay:?}");
        delays.push((committed, delay));
    }
    println!(
        "SSE on replica A of events written by replica B (PostgreSQL): per step event, (the \
         write's commit, the client), both from the write's start: {delays:?}"
    );
    server.stop().await;
    a.close().await;
}
