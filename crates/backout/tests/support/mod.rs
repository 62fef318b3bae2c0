//! Shared helpers of the executor's end-to-end tests: a sandbox (temporary directory, its own
//! SQLite file, plans written into it), the `backout` command pointed at that store, readers of
//! `status --format json`, and a scan of `/proc` for processes a run left behind.
//!
//! Steps reach the sandbox through the `WORK` variable of the executor's environment (commands
//! inherit it), never through text pasted into their scripts.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cli;
pub mod server;

#[allow(unused_imports)] // Each test crate uses a different subset.
pub use cli::{Cli, Ran, cli};

/// The sections every plan must answer (the nine questions; Q6 has two); those a test does not
/// write are `not_applicable`.
const SECTIONS: [&str; 10] = [
    "criteria",
    "window",
    "authorization",
    "execution",
    "procedure",
    "contingency",
    "workarounds",
    "expected_duration",
    "communication",
    "testing",
];

/// A complete plan around `body`: release, owners, and `not_applicable` for every section of
/// [`SECTIONS`] that `body` does not write at the top level.
pub fn plan(body: &str) -> String {
    let has = |section: &str| body.lines().any(|l| l.starts_with(&format!("{section}:")));
    let mut out = String::from(
        "version: 1\n\
         release:\n  service: svc\n  version: \"2.0.0\"\n  rollback_to: \"1.9.0\"\n  environment: test\n  checkpoints: [expand, contract]\n\
         owners: { deployment_engineer: owner@example.com }\n",
    );
    if !has("people") {
        out.push_str("people:\n  ops: [ops@example.com]\n");
    }
    out.push_str(body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    for section in SECTIONS {
        if !has(section) {
            out.push_str(&format!(
                "{section}: {{ not_applicable: \"end-to-end test\" }}\n"
            ));
        }
    }
    out
}

/// A temporary directory with its own store.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// When a test fails half-way, its executor may be gone while its steps still run (or sleep):
/// everything started in this sandbox carries `WORK=<its directory>` and is killed with it.
impl Drop for Sandbox {
    fn drop(&mut self) {
        let pids = processes_marked(&format!("WORK={}", self.path().display()));
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .status();
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh directory whose store already exists (created and migrated by one `status`).
    ///
    /// Creating it up front matters: two processes opening a brand-new SQLite file at the same
    /// moment (a background `run` and a polling `status`) can fail with "database is locked",
    /// which is a separate issue from the ones these tests are about.
    pub fn new() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        assert_code(&sandbox.run(&["status"]), 0, "status on a new store");
        sandbox
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.file("backout.db")
    }

    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.file(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes a plan built by [`plan`] and checks that it lints without errors.
    pub fn plan(&self, name: &str, body: &str) -> PathBuf {
        let path = self.write(name, &plan(body));
        let out = self.run(&["lint", name]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "plan {name} does not lint:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        path
    }

    /// Writes `mark`, a script steps call as `"$WORK/mark" start|end` to append
    /// `<start|end> <step id> <nanoseconds since the epoch>` to `times`.
    pub fn install_mark(&self) {
        let path = self.write(
            "mark",
            "#!/bin/sh\necho \"$1 $BACKOUT_STEP_ID $(date +%s%N)\" >> \"${WORK}/times\"\n",
        );
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod runs");
        assert!(status.success());
    }

    /// The intervals recorded by `mark`: step id → (start ns, end ns).
    pub fn intervals(&self) -> std::collections::BTreeMap<String, (u128, u128)> {
        let mut map: std::collections::BTreeMap<String, (u128, u128)> = Default::default();
        for line in self.read("times").lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            let [what, step, ns] = parts[..] else {
                panic!("bad times line {line:?}")
            };
            let ns: u128 = ns
                .parse()
                .unwrap_or_else(|_| panic!("bad time in {line:?}"));
            let entry = map.entry(step.to_string()).or_default();
            match what {
                "start" => entry.0 = ns,
                "end" => entry.1 = ns,
                _ => panic!("bad times line {line:?}"),
            }
        }
        map
    }

    /// The content of a file in the sandbox, empty when it does not exist.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// `backout` with this sandbox's store, `WORK` pointing at the sandbox, and no colour.
    /// Commands do not wait for notifications that cannot go out yet
    /// (`BACKOUT_DELIVERY_GRACE=0s`: the reference plan's pager command does not exist here);
    /// a test of that grace sets it again.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("backout"));
        cmd.current_dir(self.path())
            .env("BACKOUT_DATABASE_URL", self.database_url())
            .env("BACKOUT_DELIVERY_GRACE", "0s")
            .env("WORK", self.path())
            .env("NO_COLOR", "1")
            .env_remove("MY_SECRET");
        cmd
    }

    /// Runs `backout ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("backout runs")
    }

    /// `backout status RUN --format json`.
    /// `backout ARGS` as `who` (`BACKOUT_USER`).
    pub fn run_as(&self, who: &str, args: &[&str]) -> Output {
        self.command()
            .env("BACKOUT_USER", who)
            .args(args)
            .output()
            .expect("backout runs")
    }

    pub fn status(&self, run: &str) -> Status {
        let out = self.run(&["status", run, "--format", "json"]);
        let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status of {run} is not JSON ({e}):\n{}\n{}",
                stdout(&out),
                stderr(&out)
            )
        });
        Status(value)
    }

    /// The ids of the runs in this sandbox's store (newest first).
    pub fn run_ids(&self) -> Vec<String> {
        let out = self.run(&["status", "--format", "json"]);
        let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status list is not JSON ({e}):\n{}\n{}",
                stdout(&out),
                stderr(&out)
            )
        });
        value
            .as_array()
            .expect("a list of runs")
            .iter()
            .map(|r| r["id"].as_str().expect("run id").to_string())
            .collect()
    }

    /// The one run of this sandbox's store.
    pub fn only_run(&self) -> String {
        let ids = self.run_ids();
        assert_eq!(ids.len(), 1, "expected exactly one run, found {ids:?}");
        ids[0].clone()
    }

    /// Polls `status RUN` until `ready` holds, or panics after `limit`.
    pub fn wait_for(
        &self,
        run: &str,
        limit: Duration,
        what: &str,
        ready: impl Fn(&Status) -> bool,
    ) -> Status {
        let start = Instant::now();
        loop {
            let status = self.status(run);
            if ready(&status) {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; last status:\n{:#}",
                status.0
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the store until a run exists, or panics after `limit`.
    pub fn wait_for_run(&self, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(id) = self.run_ids().into_iter().next() {
                return id;
            }
            assert!(start.elapsed() < limit, "no run appeared within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `status RUN --format json`.
pub struct Status(pub Value);

impl Status {
    pub fn run_state(&self) -> &str {
        self.0["run"]["state"].as_str().expect("run.state")
    }

    pub fn steps(&self) -> &[Value] {
        self.0["steps"].as_array().expect("steps").as_slice()
    }

    /// The record of step `id`, if the run has one.
    pub fn find(&self, id: &str) -> Option<&Value> {
        self.steps().iter().find(|s| s["step_id"] == id)
    }

    pub fn step(&self, id: &str) -> &Value {
        self.find(id)
            .unwrap_or_else(|| panic!("no step {id} in {:#}", self.0))
    }

    /// The state of step `id` (`pending` when the run has no record of it).
    pub fn state(&self, id: &str) -> String {
        self.find(id).map_or("pending".into(), |s| {
            s["state"].as_str().expect("state").to_string()
        })
    }

    pub fn attempt(&self, id: &str) -> u64 {
        self.step(id)["attempt"].as_u64().expect("attempt")
    }

    pub fn ms(&self, id: &str, field: &str) -> i64 {
        self.step(id)[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{id}.{field} in {:#}", self.step(id)))
    }
}

/// Standard output and error together, for assertions on what a person reads.
pub fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Polls `ready` every 10 ms until it holds, or panics naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code of a finished `backout`, showing its output otherwise.
#[track_caller]
pub fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: unexpected exit\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    assert!(
        !stderr(out).contains("panicked"),
        "{what} panicked:\n{}",
        stderr(out)
    );
}

/// Live (not zombie) processes whose environment carries `mark` (`NAME=value`).
pub fn processes_marked(mark: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
            matches!(state, Some(s) if s != 'Z' && s != 'X')
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
        })
        .collect()
}

/// Live processes whose environment carries `BACKOUT_RUN_ID=<run>`, as `pid: command line`.
pub fn processes_of_run(run: &str) -> Vec<String> {
    processes_marked(&format!("BACKOUT_RUN_ID={run}"))
        .into_iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            format!("{pid}: {}", cmdline.join(" ").trim())
        })
        .collect()
}

/// Waits up to `limit` for the processes of a run to be gone; returns those still alive.
pub fn processes_of_run_after(run: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = processes_of_run(run);
        if left.is_empty() || start.elapsed() >= limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `backout` started in the background; killed if the test ends before it does.
pub struct Background {
    child: Option<Child>,
    what: String,
}

impl Background {
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Background {
        let child = sandbox
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backout starts");
        Background {
            child: Some(child),
            what: format!("backout {}", args.join(" ")),
        }
    }

    /// Kills the process with SIGKILL (`Child::kill` on Unix), as a crash would, and reaps it.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().expect("not finished yet");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().expect("not finished yet");
        let start = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if start.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    stdout(&out),
                    stderr(&out)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
