//! Store benchmark: PostgreSQL against SQLite on the same machine, in the same run. Prints
//! numbers and ratios; asserts nothing.
//!
//! ```text
//! cargo run --release -p backout-postgres --example bench_store [-- --cli target/release/backout]
//! ```
//!
//! 1. A 200-step chain as the executor journals it: `create_run`, then one `record_steps`
//!    commit per step (the step's finish together with the next step's start), then
//!    `update_run`: journal appends (events) per second.
//! 2. Status reads (`get_run` + `list_steps` + the run's last 50 events, what `status RUN`
//!    reads) per second, from 1 task and from 4 concurrent tasks.
//! 3. With `--cli PATH`: `backout run` of a 200-step chain plan (each step `true`) end to end,
//!    events per second of wall time, processes and all.
//!
//! PostgreSQL is `BACKOUT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each measurement uses a database created for it and dropped afterwards. SQLite uses a file in
//! a temporary directory (WAL, synchronous=FULL, as in production).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backout_postgres::PostgresStore;
use backout_postgres::testing::TestDatabase;
use backout_sqlite::SqliteStore;
use backout_store::{
    ExecutorInfo, NewEvent, NewRun, RunKind, RunState, RunUpdate, StepRecord, StepState, Store,
};

const STEPS: usize = 200;
const READ_SECONDS: f64 = 3.0;
const T0: i64 = 1_732_000_000_000;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cli = std::env::args()
        .skip_while(|a| a != "--cli")
        .nth(1)
        .map(std::path::PathBuf::from);

    println!("store benchmark: {STEPS}-step chain, status reads for {READ_SECONDS}s");
    println!();

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open_path(&dir.path().join("bench.db"))
        .await
        .expect("open sqlite");
    let pg_db = TestDatabase::create().await;
    let postgres = PostgresStore::open(pg_db.url())
        .await
        .expect("open postgres");
    let stores: [(&str, Arc<dyn Store>); 2] = [
        ("sqlite", Arc::new(sqlite)),
        ("postgres", Arc::new(postgres)),
    ];

    let mut appends = Vec::new();
    let mut reads_1 = Vec::new();
    let mut reads_4 = Vec::new();
    for (name, store) in &stores {
        let (events, elapsed) = chain_run(store.as_ref(), "bench-chain").await;
        let rate = events as f64 / elapsed.as_secs_f64();
        println!(
            "{name:>8}  chain run: {events} events in {:.0} ms = {rate:.0} appends/s ({:.2} ms per commit)",
            elapsed.as_secs_f64() * 1e3,
            elapsed.as_secs_f64() * 1e3 / (STEPS as f64 + 1.0)
        );
        appends.push(rate);
        let one = status_reads(Arc::clone(store), "bench-chain", 1).await;
        let four = status_reads(Arc::clone(store), "bench-chain", 4).await;
        println!("{name:>8}  status reads: {one:.0}/s (1 task), {four:.0}/s (4 tasks)");
        reads_1.push(one);
        reads_4.push(four);
    }
    println!();
    println!(
        "postgres / sqlite: appends {:.2}x, status reads {:.2}x (1 task), {:.2}x (4 tasks)",
        appends[1] / appends[0],
        reads_1[1] / reads_1[0],
        reads_4[1] / reads_4[0]
    );

    if let Some(binary) = cli {
        println!();
        let plan_dir = tempfile::tempdir().expect("temp dir");
        let plan = plan_dir.path().join("chain.yaml");
        std::fs::write(&plan, chain_plan(STEPS)).expect("write plan");
        let sqlite_url = format!("sqlite://{}", plan_dir.path().join("cli.db").display());
        let cli_db = TestDatabase::create().await;
        let mut rates = Vec::new();
        for (name, url) in [("sqlite", sqlite_url.as_str()), ("postgres", cli_db.url())] {
            let (events, elapsed) = cli_run(&binary, url, &plan).await;
            let rate = events as f64 / elapsed.as_secs_f64();
            println!(
                "{name:>8}  `backout run` of the chain: {events} events in {:.0} ms = {rate:.0} appends/s",
                elapsed.as_secs_f64() * 1e3
            );
            rates.push(rate);
        }
        println!("postgres / sqlite: {:.2}x", rates[1] / rates[0]);
    }
}

/// Journals a chain run the way the executor does; returns the events appended and the time.
async fn chain_run(store: &dyn Store, run_id: &str) -> (usize, Duration) {
    let steps: Vec<String> = (0..STEPS).map(|i| format!("step-{i:03}")).collect();
    let run = NewRun {
        id: run_id.to_owned(),
        plan_hash: "blake3:bench".to_owned(),
        plan_source: chain_plan(STEPS),
        kind: RunKind::Adhoc,
        release_id: None,
        environment: "bench".to_owned(),
        actor: "bench".to_owned(),
        state: RunState::Running,
        checkpoints: Vec::new(),
        executor: Some(ExecutorInfo {
            pid: std::process::id(),
            hostname: "localhost".to_owned(),
        }),
        steps: steps.clone(),
        created_at_ms: T0,
    };
    let started = Instant::now();
    let mut events = 0;
    store
        .create_run(&run, &NewEvent::new("run_started", "bench", T0))
        .await
        .expect("create run");
    events += 1;
    let running = |i: usize| StepRecord {
        state: StepState::Running,
        attempt: 1,
        started_at_ms: Some(T0 + i as i64),
        ..StepRecord::pending(run_id, steps[i].as_str(), T0 + i as i64)
    };
    store
        .record_steps(&[(running(0), NewEvent::new("step_started", "executor", T0))])
        .await
        .expect("first start");
    events += 1;
    for (i, step_id) in steps.iter().enumerate() {
        let at = T0 + i as i64 + 1;
        let finished = StepRecord {
            state: StepState::Succeeded,
            finished_at_ms: Some(at),
            exit_status: Some(0),
            stdout: format!("output of {step_id}\n"),
            updated_at_ms: at,
            ..running(i)
        };
        let mut batch = vec![(
            finished,
            NewEvent::new("step_succeeded", "executor", at)
                .payload(serde_json::json!({ "exit_status": 0, "duration_ms": 1 })),
        )];
        if i + 1 < STEPS {
            batch.push((
                running(i + 1),
                NewEvent::new("step_started", "executor", at),
            ));
        }
        events += batch.len();
        store.record_steps(&batch).await.expect("record steps");
    }
    let update = RunUpdate {
        run_id: run_id.to_owned(),
        state: RunState::Succeeded,
        executor: None,
        at_ms: T0 + STEPS as i64 + 1,
    };
    store
        .update_run(
            &update,
            &NewEvent::new("run_succeeded", "executor", update.at_ms),
        )
        .await
        .expect("finish run");
    events += 1;
    (events, started.elapsed())
}

/// What `status RUN` reads, repeated by `tasks` tasks for [`READ_SECONDS`]; reads per second.
async fn status_reads(store: Arc<dyn Store>, run_id: &str, tasks: usize) -> f64 {
    let deadline = Instant::now() + Duration::from_secs_f64(READ_SECONDS);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let store = Arc::clone(&store);
        let run_id = run_id.to_owned();
        set.spawn(async move {
            let mut reads = 0u64;
            while Instant::now() < deadline {
                let run = store.get_run(&run_id).await.expect("get run");
                let steps = store.list_steps(&run_id).await.expect("list steps");
                let events = store.run_events(&run_id, 0, 50).await.expect("run events");
                assert!(run.state == RunState::Succeeded && steps.len() == STEPS);
                assert!(!events.is_empty());
                reads += 1;
            }
            reads
        });
    }
    let started = Instant::now();
    let mut total = 0;
    while let Some(reads) = set.join_next().await {
        total += reads.expect("reader");
    }
    total as f64 / started.elapsed().as_secs_f64().max(READ_SECONDS)
}

/// Runs `backout run PLAN` against `url`; the events of the run and the wall time.
async fn cli_run(binary: &Path, url: &str, plan: &Path) -> (usize, Duration) {
    let started = Instant::now();
    let out = std::process::Command::new(binary)
        .arg("--database")
        .arg(url)
        .arg("run")
        .arg(plan)
        .env("NO_COLOR", "1")
        .output()
        .expect("backout runs");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "backout run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let store: Box<dyn Store> = if url.starts_with("sqlite:") {
        Box::new(SqliteStore::open(url).await.expect("open sqlite"))
    } else {
        Box::new(PostgresStore::open(url).await.expect("open postgres"))
    };
    let events = store.events(0, u32::MAX).await.expect("events").len();
    (events, elapsed)
}

/// A plan whose procedure is a chain of `steps` steps that each run `true`.
fn chain_plan(steps: usize) -> String {
    let mut plan = String::from(
        "version: 1\n\
         release:\n  service: bench\n  version: \"2.0.0\"\n  rollback_to: \"1.9.0\"\n  environment: bench\n\
         owners: { deployment_engineer: owner@example.com }\n\
         people:\n  ops: [ops@example.com]\n\
         procedure:\n  steps:\n",
    );
    for i in 0..steps {
        plan.push_str(&format!("    - id: step-{i:03}\n      run: 'true'\n"));
        if i > 0 {
            plan.push_str(&format!("      needs: [step-{:03}]\n", i - 1));
        }
    }
    for section in [
        "criteria",
        "window",
        "authorization",
        "execution",
        "contingency",
        "workarounds",
        "expected_duration",
        "communication",
        "testing",
    ] {
        plan.push_str(&format!("{section}: {{ not_applicable: \"benchmark\" }}\n"));
    }
    plan
}
