//! A fluent `backout` command for end-to-end tests, so a test reads as what a person types and
//! what they see:
//!
//! ```ignore
//! sandbox.break_glass(&plan).arg("--format").arg("json").run().code(0).stdout_has("run_started");
//! cli().args(["lint", "plan.yaml"]).current_dir(dir).run().code(2).stdout_has("B004");
//! ```
//!
//! Every finished command is checked for the exact exit code and for the absence of a Rust
//! panic; a failed assertion shows the whole command line with its standard output and error.
//! It only runs and asserts: what a story checks beyond the output stays in the test.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Background, Sandbox, Status, stderr, stdout};

/// `backout` without a sandbox (no store, no `WORK`): for commands that need neither.
pub fn cli() -> Cli {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("backout"));
    command.env("NO_COLOR", "1");
    Cli::from_command(command)
}

impl Sandbox {
    /// `backout` with this sandbox's store, `WORK` and no colour (see [`Sandbox::command`]).
    pub fn cli(&self) -> Cli {
        Cli::from_command(self.command())
    }

    /// `backout run --break-glass --reason test PLAN`: a run outside a release, as most executor
    /// stories start one; more arguments can follow.
    pub fn break_glass(&self, plan: impl AsRef<Path>) -> Cli {
        self.cli()
            .args(["run", "--break-glass", "--reason", "test"])
            .arg(plan.as_ref())
    }
}

impl Sandbox {
    /// Runs `backout ARGS` with this sandbox's store to completion, for assertions: the short
    /// form of `sandbox.cli().args(ARGS).run()`.
    pub fn backout(&self, args: &[&str]) -> Ran {
        self.cli().args(args).run()
    }

    /// `backout start PLAN`: starts a release, asserts that it started, and returns its id.
    #[track_caller]
    pub fn start_release(&self, plan: impl AsRef<Path>) -> String {
        self.cli()
            .arg("start")
            .arg(plan.as_ref())
            .run()
            .code(0)
            .stdout()
            .trim()
            .to_string()
    }
}

/// A `backout` command being put together.
pub struct Cli {
    command: Command,
    /// The arguments as text, to name the command in failures.
    words: Vec<String>,
    /// How long [`Cli::run`] lets the command take before it kills it and fails the test.
    timeout: Option<Duration>,
}

impl Cli {
    /// Wraps a prepared command (its environment and directory are kept).
    pub fn from_command(command: Command) -> Cli {
        Cli {
            command,
            words: vec!["backout".to_string()],
            timeout: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.words.push(arg.as_ref().to_string_lossy().into_owned());
        self.command.arg(arg);
        self
    }

    pub fn args<A: AsRef<OsStr>>(self, args: impl IntoIterator<Item = A>) -> Cli {
        args.into_iter().fold(self, Cli::arg)
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Cli {
        self.command.env(name, value);
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Cli {
        self.command.envs(vars);
        self
    }

    /// Acts as `who` (`BACKOUT_USER`).
    pub fn user(self, who: &str) -> Cli {
        self.env("BACKOUT_USER", who)
    }

    /// Fails the test (after killing the command) when it takes longer than `limit`: for a
    /// command that could hang on bad input.
    pub fn timeout(mut self, limit: Duration) -> Cli {
        self.timeout = Some(limit);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cli {
        self.command.current_dir(dir);
        self
    }

    /// The command, for a test that must start it itself (in the background, with a pipe).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Starts the command in the background, its output piped; killed if the test ends first.
    pub fn start(mut self) -> Background {
        let child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backout starts");
        Background {
            child: Some(child),
            what: self.words.join(" "),
        }
    }

    /// Runs the command to completion.
    pub fn run(mut self) -> Ran {
        let what = self.words.join(" ");
        let Some(limit) = self.timeout else {
            let output = self.command.output().expect("backout runs");
            return Ran { output, what };
        };
        let output = run_within(self.command, limit, &what);
        Ran { output, what }
    }
}

/// Runs `command` with its output read as it comes (a full pipe cannot stall it), killing it
/// and failing the test when it takes longer than `limit`.
fn run_within(mut command: Command, limit: Duration, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("backout starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A finished `backout`: assertions on what it printed and how it exited, each returning the
/// same value so they chain.
pub struct Ran {
    output: Output,
    what: String,
}

impl Ran {
    /// Asserts the exact exit code, and that nothing panicked.
    #[track_caller]
    pub fn code(self, code: i32) -> Ran {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "`{}`: unexpected exit\n{}",
            self.what,
            self.shown()
        );
        assert!(
            !self.stderr().contains("panicked"),
            "`{}` panicked:\n{}",
            self.what,
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Ran {
        assert!(
            self.stdout().contains(needle),
            "`{}`: standard output lacks {needle:?}\n{}",
            self.what,
            self.shown()
        );
        self
    }

    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Ran {
        assert!(
            !self.stdout().contains(needle),
            "`{}`: standard output shows {needle:?}\n{}",
            self.what,
            self.shown()
        );
        self
    }

    /// Asserts the whole standard output.
    #[track_caller]
    pub fn stdout_is(self, expected: &str) -> Ran {
        assert_eq!(self.stdout(), expected, "`{}`: standard output", self.what);
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Ran {
        assert!(
            self.stderr().contains(needle),
            "`{}`: standard error lacks {needle:?}\n{}",
            self.what,
            self.shown()
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Ran {
        assert!(
            !self.stderr().contains(needle),
            "`{}`: standard error shows {needle:?}\n{}",
            self.what,
            self.shown()
        );
        self
    }

    /// Asserts `needle` on either stream: for messages whose stream is not the point.
    #[track_caller]
    pub fn text_has(self, needle: &str) -> Ran {
        assert!(
            self.text().contains(needle),
            "`{}`: the output lacks {needle:?}\n{}",
            self.what,
            self.shown()
        );
        self
    }

    pub fn stdout(&self) -> String {
        stdout(&self.output)
    }

    pub fn stderr(&self) -> String {
        stderr(&self.output)
    }

    /// Standard output and error together.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Standard output parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.output.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}`: standard output is not JSON ({e})\n{}",
                self.what,
                self.shown()
            )
        })
    }

    /// Standard output parsed as one JSON document a line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("`{}`: not JSON ({e}): {l}", self.what))
            })
            .collect()
    }

    pub fn output(&self) -> &Output {
        &self.output
    }

    fn shown(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }
}

impl Background {
    /// Waits for the background `backout` to exit (at most `limit`), for assertions on how.
    pub fn ended(self, limit: Duration) -> Ran {
        let what = self.what.clone();
        Ran {
            output: self.finish(limit),
            what,
        }
    }
}

impl Status {
    /// The note of step `id` (why it failed, was skipped or waits), empty when it has none.
    pub fn note(&self, id: &str) -> String {
        self.step(id)["note"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}
