//! Seeded random trials: the executor of a random plan is SIGKILLed at random moments and
//! resumed until the run ends; every trial checks the promise stated in `main.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Sandbox, Status, processes_of_run_after, stderr, stdout};

/// A tiny xorshift64 generator: deterministic per seed, no dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The crash plan's DAG, in topological order: (id, needs, idempotent).
const DAG: [(&str, &[&str], bool); 12] = [
    ("s01", &[], true),
    ("s02", &["s01"], false),
    ("s03", &["s01"], true),
    ("s04", &["s02"], false),
    ("s05", &["s02", "s03"], false),
    ("s06", &["s03"], true),
    ("s07", &["s04"], false),
    ("s08", &["s05", "s06"], false),
    ("s09", &["s06"], true),
    ("s10", &["s07", "s08"], false),
    ("s11", &["s08", "s09"], true),
    ("s12", &["s10", "s11"], false),
];

/// Per-step cost beyond its sleeps (a shell, a `sleep`, two journal commits), for estimating
/// how long a run takes.
const STEP_OVERHEAD_MS: u64 = 15;
/// Time for `backout` to start and open the store.
const STARTUP_MS: u64 = 40;
/// At most this many kills per trial; then resumes run to the end.
const MAX_KILLS: u32 = 4;

/// The crash plan for one seed: every step sleeps, appends its id to `effects.log`, sleeps
/// again (20–150 ms in all), so a kill can land before or after the effect. Returns the plan
/// body and the run's expected length in milliseconds.
fn crash_plan(rng: &mut XorShift) -> (String, u64) {
    let mut body = String::from("procedure:\n  steps:\n");
    let mut finish: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, needs, idempotent) in DAG {
        let total = rng.between(20, 150);
        let before = rng.between(5, total - 5);
        let after = total - before;
        let _ = write!(
            body,
            "    - id: {id}\n      needs: [{}]\n      idempotent: {idempotent}\n      run: 'sleep {:.3}; echo {id} >> \"${{WORK}}/effects.log\"; sleep {:.3}'\n",
            needs.join(", "),
            before as f64 / 1000.0,
            after as f64 / 1000.0,
        );
        let start = needs.iter().map(|n| finish[n]).max().unwrap_or(0);
        finish.insert(id, start + total + STEP_OVERHEAD_MS);
    }
    let length = STARTUP_MS + finish.values().max().copied().unwrap_or(0);
    (body, length)
}

/// How one `backout` process of a trial ended.
enum Ended {
    Exited(i32),
    Killed,
}

/// Runs `backout ARGS`, killing it with SIGKILL after `kill_after` if it is still running then.
/// Its standard error goes to `log` in the sandbox for diagnosis.
fn execute(sandbox: &Sandbox, args: &[&str], kill_after: Option<Duration>, log: &str) -> Ended {
    let err = std::fs::File::create(sandbox.file(log)).expect("create log");
    let mut child = sandbox
        .command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("backout starts");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Ended::Exited(status.code().unwrap_or(-1));
        }
        if kill_after.is_some_and(|k| start.elapsed() >= k) {
            // `Child::kill` is SIGKILL on Unix: the executor gets no chance to clean up.
            child.kill().expect("SIGKILL the executor");
            child.wait().expect("reap the executor");
            return Ended::Killed;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("backout {} did not finish within 30 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How often each step's line appears in `effects.log`.
fn effects(sandbox: &Sandbox) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in sandbox.read("effects.log").lines() {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

/// `PRAGMA integrity_check` of an SQLite file, with the sqlite3 shell or Python's module.
fn integrity_check(db: &std::path::Path) -> String {
    let sqlite3 = Command::new("sqlite3")
        .arg(db)
        .arg("pragma integrity_check;")
        .output();
    let out = match sqlite3 {
        Ok(out) if out.status.success() => out,
        _ => Command::new("python3")
            .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])"])
            .arg(db)
            .output()
            .expect("python3 runs"),
    };
    format!("{}{}", stdout(&out).trim(), stderr(&out).trim())
}

/// What one trial did, for the per-trial line.
struct Trial {
    seed: u64,
    kills: u32,
    in_doubt: usize,
    processes: u32,
    took: Duration,
}

/// A trial's sandbox and what happened so far, to explain a failure.
struct Story {
    seed: u64,
    sandbox: Sandbox,
    run: Option<String>,
    history: Vec<String>,
}

impl Story {
    /// The failure message: why, the history, the run's status, effects.log, and the standard
    /// error of every `backout` process of the trial.
    fn fail(&self, why: impl std::fmt::Display) -> String {
        let mut text = format!(
            "seed {}: {why}\n  history: {}\n",
            self.seed,
            self.history.join(" → ")
        );
        if let Some(run) = &self.run {
            let _ = writeln!(
                text,
                "  status:\n{}",
                stdout(&self.sandbox.run(&["status", run]))
            );
        }
        let _ = writeln!(text, "  effects.log: {:?}", effects(&self.sandbox));
        for n in 0.. {
            let log = format!("backout-{n}.err");
            if !self.sandbox.exists(&log) {
                break;
            }
            let _ = writeln!(
                text,
                "  --- backout #{n} stderr:\n{}",
                self.sandbox.read(&log)
            );
        }
        text
    }
}

/// One trial: run the seed's plan, kill and resume until it finishes, resolve honestly, check.
fn trial(seed: u64) -> Result<Trial, String> {
    let started = Instant::now();
    let mut rng = XorShift::new(seed);
    let sandbox = Sandbox::new();
    let (body, length) = crash_plan(&mut rng);
    let plan = sandbox.plan("plan.yaml", &body);
    let plan = plan.to_str().expect("utf-8 path").to_string();
    let mut story = Story {
        seed,
        sandbox,
        run: None,
        history: Vec::new(),
    };
    let sandbox = &story.sandbox;

    let (mut kills, mut in_doubt, mut processes) = (0, 0, 0);
    loop {
        if processes > 40 {
            return Err(story.fail("no end after 40 executor processes"));
        }
        // The first start is always killed; resumes are killed half of the time, up to a budget.
        let kill = (story.run.is_none() && kills == 0) || (kills < MAX_KILLS && rng.chance(50));
        let kill_after = kill.then(|| Duration::from_millis(rng.between(0, length)));
        let args: Vec<&str> = match &story.run {
            None => vec!["run", "--break-glass", "--reason", "test", &plan],
            Some(id) => vec!["resume", id],
        };
        let ended = execute(
            sandbox,
            &args,
            kill_after,
            &format!("backout-{processes}.err"),
        );
        processes += 1;
        match ended {
            Ended::Killed => {
                kills += 1;
                let after = kill_after.map_or(0, |k| k.as_millis());
                story
                    .history
                    .push(format!("{} killed after {after}ms", args[0]));
            }
            Ended::Exited(code) => {
                story.history.push(format!("{} exited {code}", args[0]));
                if code != 0 && code != 7 {
                    return Err(story.fail(format!("backout {} exited {code}", args[0])));
                }
            }
        }
        if story.run.is_none() {
            // Killed before the run was created: start again, as an operator would.
            story.run = sandbox.run_ids().into_iter().next();
            if story.run.is_none() {
                continue;
            }
        }
        let id = story.run.clone().expect("a run");
        let status = sandbox.status(&id);
        match status.run_state() {
            "succeeded" => break,
            // Its executor died: resume it.
            "running" => continue,
            "waiting" => {
                let doubtful: Vec<String> = status
                    .steps()
                    .iter()
                    .filter(|s| s["state"] == "in_doubt")
                    .map(|s| s["step_id"].as_str().expect("step id").to_string())
                    .collect();
                if doubtful.is_empty() {
                    // A resume killed before it took the run over leaves it `waiting` although
                    // the steps it waited for were resolved: resume again. An executor that
                    // chose to wait must have had a reason.
                    if matches!(ended, Ended::Killed) {
                        continue;
                    }
                    return Err(story.fail("waiting, but no step is in doubt"));
                }
                let seen = effects(sandbox);
                for step in &doubtful {
                    let happened = seen.get(step).copied().unwrap_or(0) > 0;
                    let (outcome, note) = if happened {
                        ("done", "its line is in effects.log")
                    } else {
                        ("retry", "no line in effects.log")
                    };
                    let out = sandbox.run(&["resolve", &id, step, outcome, "--note", note]);
                    if out.status.code() != Some(0) {
                        return Err(story
                            .fail(format!("resolve {step} {outcome} failed: {}", stderr(&out))));
                    }
                    story.history.push(format!("resolve {step} {outcome}"));
                }
                in_doubt += doubtful.len();
            }
            other => return Err(story.fail(format!("the run ended {other}"))),
        }
    }
    let id = story.run.clone().expect("a run");

    // Every step finished exactly as the plan allows.
    let status = sandbox.status(&id);
    let seen = effects(sandbox);
    let mut problems = Vec::new();
    for (step, _, idempotent) in DAG {
        let count = seen.get(step).copied().unwrap_or(0);
        if !idempotent && count != 1 {
            problems.push(format!("non-idempotent {step} took effect {count} times"));
        }
        if idempotent && count == 0 {
            problems.push(format!("idempotent {step} never took effect"));
        }
        if status.state(step) != "succeeded" {
            problems.push(format!("{step} ended {}", status.state(step)));
        }
    }
    if status.run_state() != "succeeded" {
        problems.push(format!("run state {}", status.run_state()));
    }
    problems.extend(journal_problems(sandbox, &id, &status, &seen));
    let integrity = integrity_check(&sandbox.db());
    if integrity != "ok" {
        problems.push(format!("integrity_check: {integrity}"));
    }
    let left = processes_of_run_after(&id, Duration::from_millis(500));
    if !left.is_empty() {
        problems.push(format!("processes of the run still alive: {left:?}"));
    }
    if !problems.is_empty() {
        return Err(story.fail(problems.join("; ")));
    }
    Ok(Trial {
        seed,
        kills,
        in_doubt,
        processes,
        took: started.elapsed(),
    })
}

/// The journal agrees with the step records: one `step_started` per attempt, and no step took
/// effect more often than it was started.
fn journal_problems(
    sandbox: &Sandbox,
    run: &str,
    status: &Status,
    seen: &BTreeMap<String, usize>,
) -> Vec<String> {
    let out = sandbox.run(&["report", run]);
    if out.status.code() != Some(0) {
        return vec![format!("report failed: {}", stderr(&out))];
    }
    let report = stdout(&out);
    let Some(timeline) = report.split("## Timeline").nth(1) else {
        return vec!["the report has no timeline".into()];
    };
    let mut started: BTreeMap<String, u64> = BTreeMap::new();
    for line in timeline.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(2) == Some(&"step_started")
            && let Some(step) = words.get(3)
        {
            *started.entry((*step).to_string()).or_default() += 1;
        }
    }
    let mut problems = Vec::new();
    for (step, _, _) in DAG {
        let attempts = status.attempt(step);
        let starts = started.get(step).copied().unwrap_or(0);
        if starts != attempts {
            problems.push(format!(
                "{step}: {starts} step_started events for {attempts} attempts"
            ));
        }
        let effects = seen.get(step).copied().unwrap_or(0) as u64;
        if effects > starts {
            problems.push(format!(
                "{step}: took effect {effects} times in {starts} starts"
            ));
        }
    }
    problems
}

/// Seeds 1..=60 by default; `BACKOUT_CRASH_SEEDS=500` soaks longer.
#[test]
fn kill_9_at_random_moments_then_resume_until_done() {
    const WORKERS: usize = 3;
    let seeds: u64 = std::env::var("BACKOUT_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let started = Instant::now();
    let next = AtomicU64::new(1);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (kills, in_doubt) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed > seeds {
                        break;
                    }
                    match trial(seed) {
                        Ok(t) => {
                            kills.fetch_add(u64::from(t.kills), Ordering::SeqCst);
                            in_doubt.fetch_add(t.in_doubt as u64, Ordering::SeqCst);
                            println!(
                                "seed {:>2}: ok   kills {} in_doubt {} processes {} in {:.1}s",
                                t.seed,
                                t.kills,
                                t.in_doubt,
                                t.processes,
                                t.took.as_secs_f64()
                            );
                        }
                        Err(e) => {
                            println!(
                                "seed {seed:>2}: FAIL {}",
                                e.lines().next().unwrap_or_default()
                            );
                            failures.lock().expect("lock").push(e);
                        }
                    }
                }
            });
        }
    });
    println!(
        "{seeds} trials in {:.1}s: {} kills, {} in-doubt steps resolved",
        started.elapsed().as_secs_f64(),
        kills.load(Ordering::SeqCst),
        in_doubt.load(Ordering::SeqCst)
    );
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "{} of {seeds} trials failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
