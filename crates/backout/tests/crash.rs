//! Crash safety end to end: the executor is killed with SIGKILL at seeded random moments and the
//! run is resumed (and perhaps killed again) until it finishes, with in-doubt steps resolved the
//! way an honest operator would: by looking at what the step actually did.
//!
//! The promise checked (DESIGN.md, "Execution semantics"): a finished step never runs again, a
//! non-idempotent step that was running runs again only when a person says it did not happen,
//! the journal stays consistent, the SQLite file stays sound, and no process of the run outlives
//! it.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{
    Sandbox, Status, processes_of_run, processes_of_run_after, stderr, stdout, wait_until,
};

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

// ---------------------------------------------------------------- single crash scenarios

/// Starts `backout run` of `plan` (with `extra` arguments) in the background, waits until
/// `ready` holds (`what` names it), kills the executor with SIGKILL there, and returns the run.
fn crash_when(
    sandbox: &Sandbox,
    plan: &std::path::Path,
    extra: &[&str],
    what: &str,
    ready: impl Fn(&Sandbox) -> bool,
) -> String {
    let executor = sandbox.break_glass(plan).args(extra).start();
    wait_until(Duration::from_secs(5), what, || ready(sandbox));
    executor.kill_9();
    sandbox.only_run()
}

#[test]
fn resume_kills_what_the_crashed_executor_left_running() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: migrate
      run: 'touch "${WORK}/migrating"; sleep 600 & sleep 600; touch "${WORK}/migrated"'
    - id: after
      needs: [migrate]
      run: 'touch "${WORK}/after"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the step to start", |s| {
        s.exists("migrating")
    });
    assert_eq!(sandbox.status(&run).state("migrate"), "running");
    let orphans = processes_of_run(&run);
    assert!(
        orphans.len() >= 2,
        "the step's shell and sleeps outlive a killed executor: {orphans:?}"
    );

    // Resume with a non-idempotent step that was running: it asks a person.
    sandbox.backout(&["resume", &run]).code(7);
    let left = processes_of_run_after(&run, Duration::from_millis(500));
    assert!(
        left.is_empty(),
        "resume left the crashed run's processes alive: {left:#?}"
    );
    let status = sandbox.status(&run);
    assert_eq!(status.state("migrate"), "in_doubt");
    let note = status.note("migrate");
    assert!(
        note.contains("backout resolve"),
        "the note should say how to resolve: {note:?}"
    );
    assert!(
        !sandbox.exists("after"),
        "a dependant of an in-doubt step ran"
    );

    // Resolving it runs nothing again (it is done) and lets the dependants go.
    sandbox
        .backout(&[
            "resolve",
            &run,
            "migrate",
            "done",
            "--note",
            "checked by hand",
        ])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert!(sandbox.exists("after") && !sandbox.exists("migrated"));
    assert_eq!(sandbox.status(&run).run_state(), "succeeded");
}

#[test]
fn an_idempotent_step_that_was_running_runs_again_on_resume() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: flip
      idempotent: true
      run: 'echo "attempt $BACKOUT_ATTEMPT" >> "${WORK}/attempts"; test "$BACKOUT_ATTEMPT" -gt 1 || sleep 600'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the step to start", |s| {
        s.exists("attempts")
    });
    sandbox.backout(&["resume", &run]).code(0);
    assert_eq!(sandbox.read("attempts"), "attempt 1\nattempt 2\n");
    let status = sandbox.status(&run);
    assert_eq!(status.state("flip"), "succeeded");
    assert_eq!(status.attempt("flip"), 2);
    assert!(processes_of_run_after(&run, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_crash_inside_a_contingency_branch_resumes_the_branch() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: primary
      run: "exit 1"
      on_failure: contingency.fallback
    - id: next
      needs: [primary]
      run: 'echo next >> "${WORK}/effects.log"'
contingency:
  fallback:
    description: Do it the other way.
    steps:
      - id: other-way
        run: 'echo other-way >> "${WORK}/effects.log"; sleep 600'
      - id: other-way-check
        needs: [other-way]
        run: 'echo other-way-check >> "${WORK}/effects.log"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &[], "the branch to start", |s| {
        s.read("effects.log").contains("other-way")
    });

    // Resume with a branch step in doubt.
    sandbox.backout(&["resume", &run]).code(7);
    assert_eq!(sandbox.status(&run).state("other-way"), "in_doubt");
    sandbox
        .backout(&["resolve", &run, "other-way", "done"])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert_eq!(
        sandbox.read("effects.log"),
        "other-way\nother-way-check\nnext\n"
    );
    let status = sandbox.status(&run);
    assert_eq!(status.state("primary"), "failed");
    assert_eq!(status.run_state(), "succeeded");
    assert!(processes_of_run_after(&run, Duration::from_millis(500)).is_empty());
}

#[test]
fn a_crash_between_attempts_keeps_the_remaining_retries() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: flaky
      run: 'n=$(cat "${WORK}/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${WORK}/count"; test $n -ge 2'
      retries: 2
      retry_delay: 3s
"#,
    );
    // The first attempt failed and is recorded (pending, with the retry in its note) while the
    // executor sleeps its retry_delay: it is killed there.
    let run = crash_when(&sandbox, &plan, &[], "the retry to wait", |s| {
        s.run_ids().first().is_some_and(|run| {
            s.status(run).find("flaky").is_some_and(|r| {
                r["state"] == "pending"
                    && r["note"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("attempt 1 failed"))
            })
        })
    });
    assert_eq!(sandbox.read("count").trim(), "1");

    let ran = sandbox.backout(&["resume", &run]);
    let status = sandbox.status(&run);
    // Resume with two retries left.
    ran.code(0);
    assert_eq!(status.state("flaky"), "succeeded", "{:#}", status.0);
    assert_eq!(status.attempt("flaky"), 2);
    assert_eq!(sandbox.read("count").trim(), "2");
}

#[test]
fn a_crash_while_waiting_for_a_person_keeps_the_manual_step_waiting() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: approve
      manual: { by: ops, instructions: "Confirm." }
    - id: after
      needs: [approve]
      run: 'touch "${WORK}/after"'
"#,
    );
    let run = crash_when(&sandbox, &plan, &["--wait"], "approve waiting", |s| {
        s.run_ids()
            .first()
            .is_some_and(|run| s.status(run).state("approve") == "waiting_manual")
    });

    // A manual step is a person's job, not a process: nothing is in doubt after the crash.
    sandbox.backout(&["resume", &run]).code(7);
    assert_eq!(sandbox.status(&run).state("approve"), "waiting_manual");
    sandbox
        .backout(&["--as", "ops@example.com", "confirm", &run, "approve"])
        .code(0);
    sandbox.backout(&["resume", &run]).code(0);
    assert!(sandbox.exists("after"));
}
