//! What every failover story shares: a PostgreSQL database of its own, `backout serve`
//! replicas of it with a short lease, a webhook, tokens, the release operations over HTTP,
//! and waits on the store with a deadline.

use std::time::{Duration, Instant};

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_store::{DeliveryState, Event, RunState, StepState, Store};
use backout_testkit::{Answer, HttpSink};
use serde_json::{Value, json};

use crate::support::server::{Server, call};
use crate::support::{self, Sandbox};

/// The lease time of the replicas: short, so a takeover happens within seconds.
pub const LEASE_TTL: Duration = Duration::from_secs(4);

/// How long any awaited condition may take on a loaded machine before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// One `backout serve` replica of the database at `url`, with a short lease time.
pub fn replica(sandbox: &Sandbox, url: &str, env: &[(&str, &str)]) -> Server {
    let mut command = sandbox.command();
    command
        .env("BACKOUT_DATABASE_URL", url)
        .env("BACKOUT_LEASE_TTL", format!("{}ms", LEASE_TTL.as_millis()))
        .envs(env.iter().copied());
    Server::from_command(command)
}

/// The pid in a replica's or dispatcher's id (`host:pid:…`).
pub fn pid_in(owner: &str) -> u32 {
    owner
        .split(':')
        .nth(1)
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in `{owner}`"))
}

/// Every replica's log, for failure messages.
pub fn logs_of(replicas: &[Server]) -> String {
    replicas
        .iter()
        .map(|r| format!("--- replica {}:\n{}", r.pid(), r.log()))
        .collect()
}

/// Which of `replicas` is `owner` (a replica's or dispatcher's id, `host:pid:…`).
pub fn index_of(replicas: &[Server], owner: &str) -> usize {
    replicas
        .iter()
        .position(|r| r.pid() == pid_in(owner))
        .unwrap_or_else(|| panic!("`{owner}` is not one of the replicas"))
}

/// One request as the webhook receiver saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub key: String,
    pub event: String,
    pub at: Instant,
}

/// A webhook receiver on a loopback port that answers 200, or (with `hang_first`) never
/// answers the first request so its sender hangs in it.
pub fn webhook(hang_first: bool) -> HttpSink {
    let hang = hang_first.then(Answer::hang);
    HttpSink::answering(Answer::status(200))
        .path("/hook")
        .first(hang)
        .start()
}

/// What the webhook received so far: each request's idempotency key, event and arrival.
pub fn seen_by(receiver: &HttpSink) -> Vec<Seen> {
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

/// The body of a plan (see `support::plan`) whose rollback runs `first` (not idempotent: appends a line to `$WORK/first`), then
/// `slow` (idempotent, long), then `last` (not idempotent: appends to `$WORK/last`), and tells
/// the webhook when a rollback is required, started and completed.
pub fn plan(hook: &str, slow_secs: u32) -> String {
    format!(
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
    )
}

/// What every test shares: a database, a sandbox, tokens, a store to look into the database.
pub struct Setup {
    pub store: PostgresStore,
    pub sandbox: Sandbox,
    pub performer: String,
    pub decider: String,
    /// The plans' deployment engineer, who accepts them.
    pub owner: String,
    // Last: dropped after the store's pool is closed.
    pub db: TestDatabase,
}

impl Setup {
    /// The journal of the release of `run` once it records how its rollback ended
    /// (`execution_finished`), read again a moment later so that a second end would show.
    pub async fn release_settled(&self, run: &str, logs: &dyn Fn() -> String) -> Vec<Event> {
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

    pub async fn new() -> Setup {
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

    pub fn replica(&self, env: &[(&str, &str)]) -> Server {
        replica(&self.sandbox, self.db.url(), env)
    }

    /// Opens a release of the plan around `body` through `replica` and requests its rollback;
    /// returns its id.
    pub async fn requested(
        &self,
        client: &reqwest::Client,
        replica: &Server,
        body: &str,
    ) -> String {
        let plan = &support::plan(body);
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
    pub async fn executed(&self, client: &reqwest::Client, replica: &Server, body: &str) -> String {
        let (_, run) = support::server::approved_and_executed(
            client,
            replica,
            body,
            &self.performer,
            &self.decider,
            &self.owner,
        )
        .await;
        run
    }

    /// Waits until step `step` of `run` is `running`.
    pub async fn wait_running(&self, run: &str, step: &str, logs: &dyn Fn() -> String) {
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
    pub async fn holder(&self, run: &str) -> String {
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
    pub async fn resumed_by_other(
        &self,
        run: &str,
        gone: &str,
        logs: &dyn Fn() -> String,
    ) -> Event {
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
    pub async fn finished(&self, run: &str, logs: &dyn Fn() -> String) -> RunState {
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
    pub async fn all_delivered(&self, logs: &dyn Fn() -> String) -> usize {
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
pub fn lines(sandbox: &Sandbox, name: &str) -> usize {
    sandbox.read(name).lines().count()
}

/// The events of `step` after `seq`, as `kind attempt` strings.
pub fn step_story(events: &[Event], step: &str, after: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.seq > after && e.step_id.as_deref() == Some(step))
        .map(|e| format!("{} {}", e.kind, e.payload["attempt"]))
        .collect()
}

pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms")
}
