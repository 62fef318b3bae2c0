//! Two `backout serve` replicas sharing one PostgreSQL database through leases (real binaries on
//! loopback ports, a database of their own per test, a short lease time):
//!
//! - the replica executing a run is killed with SIGKILL: the other takes the run over within
//!   the lease time, finishes it without running a finished step again, and every
//!   notification reaches the webhook once per idempotency key;
//! - the replica sending a notification is killed while the receiver hangs: the other sends
//!   it, once its claim expired, with the same idempotency key;
//! - split brain: the replica executing a run is paused (SIGSTOP) past its lease, the other
//!   takes over, and once resumed (SIGCONT) the paused one writes nothing for that run (its
//!   writes are fenced) while the run's steps ran once.
//!
//! Each test prints the failover time it measured (kill → the other replica's `run_resumed`).

mod support;

use std::time::{Duration, Instant};

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_store::{DeliveryState, Event, RunState, StepState, Store};
use backout_testkit::{Answer, HttpSink};
use serde_json::{Value, json};
use support::Sandbox;
use support::server::{Server, call, client};

/// The lease time of the replicas: short, so a takeover happens within seconds.
const LEASE_TTL: Duration = Duration::from_secs(4);

/// How long any awaited condition may take on a loaded machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);

/// One `backout serve` replica of the database at `url`, with a short lease time.
fn replica(sandbox: &Sandbox, url: &str, env: &[(&str, &str)]) -> Server {
    let mut command = sandbox.command();
    command
        .env("BACKOUT_DATABASE_URL", url)
        .env("BACKOUT_LEASE_TTL", format!("{}ms", LEASE_TTL.as_millis()))
        .envs(env.iter().copied());
    Server::from_command(command)
}

/// The pid in a replica's or dispatcher's id (`host:pid:…`).
fn pid_in(owner: &str) -> u32 {
    owner
        .split(':')
        .nth(1)
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in `{owner}`"))
}

/// Every replica's log, for failure messages.
fn logs_of(replicas: &[Server]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- replica {}:\n{}", r.pid(), r.log()))
        .collect()
}

/// Which of `replicas` is `owner` (a replica's or dispatcher's id, `host:pid:…`).
fn index_of(replicas: &[Server], owner: &str) -> usize {
    replicas
        .iter()
        .position(|r| r.pid() == pid_in(owner))
        .unwrap_or_else(|| panic!("`{owner}` is not one of the replicas"))
}

/// One request as the webhook receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    key: String,
    event: String,
    at: Instant,
}

/// A webhook receiver on a loopback port that answers 200, or (with `hang_first`) never
/// answers the first request so its sender hangs in it.
fn webhook(hang_first: bool) -> HttpSink {
    let hang = hang_first.then(Answer::hang);
    HttpSink::answering(Answer::status(200))
        .path("/hook")
        .first(hang)
        .start()
}

/// What the webhook received so far: each request's idempotency key, event and arrival.
fn seen_by(receiver: &HttpSink) -> Vec<Seen> {
    receiver
        .requests()
        .iter()
        .map(|r| Seen {
            key: r.header("idempotency-key").unwrap_or("").to_string(),
            event: serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null)["event"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            at: r.at,
        })
        .collect()
}

/// A plan whose rollback runs `first` (not idempotent: appends a line to `$WORK/first`), then
/// `slow` (idempotent, long), then `last` (not idempotent: appends to `$WORK/last`), and tells
/// the webhook when a rollback is required, started and completed.
fn plan(hook: &str, slow_secs: u32) -> String {
    support::plan(&format!(
        r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: {{ closes_after: 1h }}
authorization: {{ deciders: release-managers, quorum: 1 }}
execution: {{ performers: ops-oncall }}
communication:
  channels:
    hook: {{ webhook: "{hook}" }}
  notify:
    rollback_required: [hook]
    started: [hook]
    completed: [hook]
procedure:
  steps:
    - {{ id: first, run: "echo once >> \"${{WORK}}/first\"", expected: 1s }}
    - {{ id: slow, needs: [first], run: "sleep {slow_secs}", idempotent: true, expected: {slow_secs}s }}
    - {{ id: last, needs: [slow], run: "echo once >> \"${{WORK}}/last\"", expected: 1s }}
"#
    ))
}

/// What every test shares: a database, a sandbox, tokens, a store to look into the database.
struct Setup {
    store: PostgresStore,
    sandbox: Sandbox,
    performer: String,
    decider: String,
    /// The plans' deployment engineer, who accepts them.
    owner: String,
    // Last: dropped after the store's pool is closed.
    db: TestDatabase,
}

impl Setup {
    /// The journal of the release of `run` once it records how its rollback ended
    /// (`execution_finished`), read again a moment later so that a second end would show.
    async fn release_settled(&self, run: &str, logs: &dyn Fn() -> String) -> Vec<Event> {
        let release = self
            .store
            .get_run(run)
            .await
            .expect("the run")
            .release_id
            .expect("a release's run");
        let start = Instant::now();
        loop {
            let events = self
                .store
                .release_events(&release, 0, 10_000)
                .await
                .expect("events");
            if events.iter().any(|e| e.kind == "execution_finished") {
                break;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the release never heard how its rollback ended: {events:#?}\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.store
            .release_events(&release, 0, 10_000)
            .await
            .expect("events")
    }

    async fn new() -> Setup {
        let db = TestDatabase::create().await;
        let sandbox = Sandbox::new();
        let store = PostgresStore::open(db.url())
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", db.url()));
        let token = |user: &str, role: &str| {
            sandbox
                .cli()
                .env("BACKOUT_DATABASE_URL", db.url())
                .args(["token", "create", "--user", user, "--role", role])
                .run()
                .code(0)
                .stdout()
                .trim()
                .to_string()
        };
        let performer = token("erin@example.com", "performer");
        let decider = token("carol@example.com", "decider");
        let owner = token("owner@example.com", "viewer");
        Setup {
            store,
            sandbox,
            performer,
            decider,
            owner,
            db,
        }
    }

    fn replica(&self, env: &[(&str, &str)]) -> Server {
        replica(&self.sandbox, self.db.url(), env)
    }

    /// Opens a release of `plan` through `replica` and requests its rollback; returns its id.
    async fn requested(&self, client: &reqwest::Client, replica: &Server, plan: &str) -> String {
        support::server::accept(
            client,
            &replica.url("/api/v1/plans/accept"),
            &self.owner,
            plan,
        )
        .await;
        let (status, body) = call(
            client,
            "POST",
            &replica.url("/api/v1/releases"),
            Some(&self.performer),
            Some(json!({ "plan": plan, "version": "2.0.1" })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let rel = body["id"].as_str().expect("release id").to_string();
        let (status, body) = call(
            client,
            "POST",
            &replica.url(&format!("/api/v1/releases/{rel}/request")),
            Some(&self.performer),
            Some(json!({ "reason": "checkout emails are empty" })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        rel
    }

    /// Requests, approves and executes the rollback of a new release; returns the run's id.
    async fn executed(&self, client: &reqwest::Client, replica: &Server, plan: &str) -> String {
        let rel = self.requested(client, replica, plan).await;
        let (status, body) = call(
            client,
            "POST",
            &replica.url(&format!("/api/v1/releases/{rel}/decisions")),
            Some(&self.decider),
            Some(json!({ "decision": "approve", "reason": "customers affected" })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = call(
            client,
            "POST",
            &replica.url(&format!("/api/v1/releases/{rel}/execute")),
            Some(&self.performer),
            None,
        )
        .await;
        assert_eq!(status, 202, "{body}");
        body["run_id"].as_str().expect("run id").to_string()
    }

    /// Waits until step `step` of `run` is `running`.
    async fn wait_running(&self, run: &str, step: &str, logs: &dyn Fn() -> String) {
        let start = Instant::now();
        loop {
            let steps = self.store.list_steps(run).await.expect("steps");
            if steps
                .iter()
                .any(|s| s.step_id == step && s.state == StepState::Running)
            {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "step `{step}` never ran: {steps:#?}\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The owner of lease `run:<run>`.
    async fn holder(&self, run: &str) -> String {
        let leases = self
            .store
            .leases(&format!("run:{run}"))
            .await
            .expect("leases");
        let lease = leases
            .first()
            .unwrap_or_else(|| panic!("run `{run}` has no lease: {leases:?}"));
        lease.owner.clone()
    }

    /// Waits for the `run_resumed` event of `run` written by another replica than `gone`.
    async fn resumed_by_other(&self, run: &str, gone: &str, logs: &dyn Fn() -> String) -> Event {
        let start = Instant::now();
        loop {
            let events = self.store.run_events(run, 0, 10_000).await.expect("events");
            if let Some(resumed) = events.iter().find(|e| {
                e.kind == "run_resumed" && e.payload["replica"].as_str().is_some_and(|r| r != gone)
            }) {
                return resumed.clone();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "nobody took run `{run}` over: {events:#?}\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `run` ended; returns its state.
    async fn finished(&self, run: &str, logs: &dyn Fn() -> String) -> RunState {
        let start = Instant::now();
        loop {
            let state = self.store.get_run(run).await.expect("run").state;
            if state.is_terminal() {
                return state;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "run `{run}` did not finish ({state}):\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every delivery was delivered; returns how many there are.
    async fn all_delivered(&self, logs: &dyn Fn() -> String) -> usize {
        let start = Instant::now();
        loop {
            let deliveries = self
                .store
                .list_deliveries(None, 100)
                .await
                .expect("deliveries");
            if !deliveries.is_empty()
                && deliveries
                    .iter()
                    .all(|d| d.state == DeliveryState::Delivered)
            {
                return deliveries.len();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "not every notification was delivered: {deliveries:#?}\n{}",
                logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Lines of a marker file a non-idempotent step appends to.
fn lines(sandbox: &Sandbox, name: &str) -> usize {
    sandbox.read(name).lines().count()
}

/// The events of `step` after `seq`, as `kind attempt` strings.
fn step_story(events: &[Event], step: &str, after: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.seq > after && e.step_id.as_deref() == Some(step))
        .map(|e| format!("{} {}", e.kind, e.payload["attempt"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_run_is_finished_by_the_other_once() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    let mut replicas = [setup.replica(&[]), setup.replica(&[])];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[0], &plan(&receiver.url, 10))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    // What was notified so far went out (the kill while sending is the next test's story).
    setup.all_delivered(&logs).await;
    let holder = setup.holder(&run).await;
    let index = index_of(&replicas, &holder);
    let killed_at = Instant::now();
    let killed_ms = now_ms();
    replicas[index].kill_9();
    let logs = || replicas[1 - index].log();

    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    let failover = resumed.at_ms - killed_ms;
    println!(
        "failover (SIGKILL → run_resumed by the other replica): {failover} ms, observed after {:?}",
        killed_at.elapsed()
    );
    assert!(
        failover <= i64::try_from((LEASE_TTL * 4).as_millis()).expect("ms"),
        "took {failover} ms with a {LEASE_TTL:?} lease"
    );
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);
    // The release is watched by the survivor now (its lease moved too).
    let survivor = replicas[1 - index].pid();
    let start = Instant::now();
    loop {
        let leases = setup.store.leases("release:").await.expect("leases");
        if leases.len() == 1 && leases[0].is_held(now_ms()) && pid_in(&leases[0].owner) == survivor
        {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the release's lease never moved to the survivor: {leases:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `first` had finished: never again. `slow` was running and is idempotent: run again.
    // `last` ran once, under the new replica.
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    let steps = setup.store.list_steps(&run).await.expect("steps");
    let attempts: Vec<(String, StepState, u32)> = steps
        .iter()
        .map(|s| (s.step_id.clone(), s.state, s.attempt))
        .collect();
    assert_eq!(
        attempts,
        [
            ("first".to_string(), StepState::Succeeded, 1),
            ("slow".to_string(), StepState::Succeeded, 2),
            ("last".to_string(), StepState::Succeeded, 1),
        ]
    );

    // The release hears how its rollback ended from the replica that finished it, once.
    let events = setup.release_settled(&run, &logs).await;
    let ends: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == "execution_finished")
        .collect();
    assert_eq!(ends.len(), 1, "one execution_finished: {events:#?}");
    assert_eq!(ends[0].payload["run_id"], run.as_str());
    assert_eq!(ends[0].payload["state"], "succeeded");

    // Every notification was delivered, each idempotency key reached the webhook once.
    let delivered = setup.all_delivered(&logs).await;
    let seen = seen_by(&receiver);
    let mut keys: Vec<&str> = seen.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), seen.len(), "a key was sent twice: {seen:#?}");
    assert_eq!(seen.len(), delivered, "{seen:#?}");
    let mut events: Vec<&str> = seen.iter().map(|s| s.event.as_str()).collect();
    events.sort_unstable();
    assert_eq!(
        events,
        ["completed", "rollback_required", "started"],
        "{seen:#?}"
    );
    let verify = backout_store::verify_store(&setup.store, 500)
        .await
        .expect("read");
    assert!(verify.is_ok(), "{verify:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_sending_loses_no_notification() {
    let setup = Setup::new().await;
    let receiver = webhook(true);
    let client = client();
    let tuning = [
        ("BACKOUT_DELIVERY_TIMEOUT", "3s"),
        ("BACKOUT_DELIVERY_LEASE", "6s"),
    ];
    let mut replicas = [setup.replica(&tuning), setup.replica(&tuning)];
    let logs = || logs_of(&replicas);
    let rel = setup
        .requested(&client, &replicas[1], &plan(&receiver.url, 1))
        .await;
    let start = Instant::now();
    while seen_by(&receiver).is_empty() {
        assert!(start.elapsed() < PATIENCE, "nothing was sent:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deliveries = setup
        .store
        .list_deliveries(Some(&rel), 10)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    let claimant = deliveries[0]
        .claimed_by
        .clone()
        .unwrap_or_else(|| panic!("a delivery being sent is claimed: {deliveries:#?}"));
    let claimed_until = deliveries[0].claimed_until_ms.expect("claimed until");
    let index = index_of(&replicas, &claimant);
    replicas[index].kill_9();
    let logs = || replicas[1 - index].log();

    let delivered = setup.all_delivered(&logs).await;
    assert_eq!(delivered, 1);
    let delivery = setup
        .store
        .get_delivery(deliveries[0].id)
        .await
        .expect("delivery");
    let attempts = &delivery.attempts;
    assert_eq!(
        attempts.len(),
        1,
        "the killed attempt recorded nothing: {delivery:#?}"
    );
    assert!(
        attempts[0].at_ms >= claimed_until,
        "sent again only after the dead replica's claim expired: {delivery:#?}"
    );
    assert_ne!(attempts[0].by, claimant, "{delivery:#?}");
    // Nothing more is sent later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen_by(&receiver);
    assert_eq!(seen.len(), 2, "sent again after the kill, once: {seen:#?}");
    assert_eq!(seen[0].key, seen[1].key, "with the same idempotency key");
    assert_eq!(seen[1].event, "rollback_required");
    assert!(seen[1].at > seen[0].at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_cannot_write_over_the_one_that_took_its_run_over() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    let replicas = [setup.replica(&[]), setup.replica(&[])];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[1], &plan(&receiver.url, 10))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    let holder = setup.holder(&run).await;
    let paused = index_of(&replicas, &holder);
    let stopped_ms = now_ms();
    replicas[paused].signal("-STOP");

    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    println!(
        "failover (SIGSTOP → run_resumed by the other replica): {} ms",
        resumed.at_ms - stopped_ms
    );
    replicas[paused].signal("-CONT");
    // Once awake, the paused replica finds its lease lost (or a write refused) and stops.
    let start = Instant::now();
    while !replicas[paused]
        .log()
        .contains("taken over by another replica")
    {
        assert!(
            start.elapsed() < PATIENCE,
            "the paused replica did not notice it lost the run:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);

    let events = setup
        .store
        .run_events(&run, 0, 10_000)
        .await
        .expect("events");
    // The takeover starts with the steps it requeued (or put in doubt), then `run_resumed`.
    let mut takeover = resumed.seq;
    while events.iter().any(|e| {
        e.seq == takeover - 1 && matches!(e.kind.as_str(), "step_requeued" | "step_in_doubt")
    }) {
        takeover -= 1;
    }
    let before_takeover = takeover - 1;
    // After the takeover, `slow`'s story is the new replica's alone: requeued (it is
    // idempotent) and run once more; nothing of the paused replica's attempt 1.
    assert_eq!(
        step_story(&events, "slow", before_takeover),
        [
            "step_requeued null",
            "step_started 2",
            "step_process 2",
            "step_succeeded 2"
        ],
        "{events:#?}"
    );
    assert_eq!(
        step_story(&events, "last", before_takeover),
        ["step_started 1", "step_process 1", "step_succeeded 1"]
    );
    assert!(step_story(&events, "first", before_takeover).is_empty());
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    // The run was resumed once: the paused replica did not take it back.
    assert_eq!(
        events.iter().filter(|e| e.kind == "run_resumed").count(),
        1,
        "{events:#?}"
    );
    // The release records one end of its rollback, by the replica that finished it, and the
    // paused one did not call it abandoned (which would let a performer execute it again).
    let events = setup.release_settled(&run, &logs).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "execution_finished").count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"execution_abandoned"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_by_sigterm_hands_its_run_over_at_once() {
    let setup = Setup::new().await;
    let receiver = webhook(false);
    let client = client();
    // A long lease: a takeover well before it expires shows the lease was given up.
    let long = [("BACKOUT_LEASE_TTL", "30s")];
    let replicas = [setup.replica(&long), setup.replica(&long)];
    let logs = || logs_of(&replicas);
    let run = setup
        .executed(&client, &replicas[0], &plan(&receiver.url, 4))
        .await;
    setup.wait_running(&run, "slow", &logs).await;
    let holder = setup.holder(&run).await;
    let index = index_of(&replicas, &holder);
    let stopped_ms = now_ms();
    replicas[index].signal("-TERM");
    let resumed = setup.resumed_by_other(&run, &holder, &logs).await;
    let handover = resumed.at_ms - stopped_ms;
    println!("handover (SIGTERM → run_resumed by the other replica): {handover} ms");
    // Without the lease given up, the takeover would wait for its expiry: 20 to 30 s.
    assert!(
        handover < 20_000,
        "took {handover} ms: the lease was not given up"
    );
    assert_eq!(setup.finished(&run, &logs).await, RunState::Succeeded);
    assert_eq!(lines(&setup.sandbox, "first"), 1, "first ran once");
    assert_eq!(lines(&setup.sandbox, "last"), 1, "last ran once");
    // The stopping replica drained: `slow`, running at the SIGTERM, finished there and was
    // journaled; then its executor gave the run's lease up, so the takeover did not wait for
    // the lease to expire and had nothing to requeue or put in doubt.
    let log = replicas[index].log();
    assert!(
        log.contains("draining") && log.contains("was handed over unfinished"),
        "{log}"
    );
    let events = setup
        .store
        .run_events(&run, 0, 10_000)
        .await
        .expect("events");
    assert_eq!(
        step_story(&events, "slow", 0),
        ["step_started 1", "step_process 1", "step_succeeded 1"],
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind.as_str(), "step_requeued" | "step_in_doubt")),
        "{events:#?}"
    );
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms")
}
