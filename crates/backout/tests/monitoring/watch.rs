//! A `backout watch` in the background read line by line as it prints, how it ended, and
//! readers of what it printed and journaled.

use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backout_store::Event;

/// A `backout watch` running in the background, killed if the test ends before it does.
pub struct Watch {
    pub child: Option<Child>,
    pub readers: Vec<JoinHandle<()>>,
    /// Standard output, line by line, with when each line was read.
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub stderr: Arc<Mutex<String>>,
    pub what: String,
}

/// How a `backout watch` ended.
pub struct Finished {
    pub status: ExitStatus,
    pub exited_at: Instant,
    pub lines: Vec<(Instant, String)>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout(&self) -> String {
        let lines: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        lines.join("\n")
    }

    /// When the first line containing `text` was read.
    pub fn first(&self, text: &str) -> Option<Instant> {
        self.lines
            .iter()
            .find(|(_, l)| l.contains(text))
            .map(|(at, _)| *at)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32, what: &str) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{what}: unexpected exit\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{what} panicked:\n{}",
            self.stderr
        );
    }
}

impl Watch {
    /// Waits until `ready` holds for the lines printed so far; panics if the watch exits first
    /// or after `limit`.
    pub fn wait_until(&mut self, what: &str, limit: Duration, ready: impl Fn(&[String]) -> bool) {
        let started = Instant::now();
        loop {
            let lines: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .map(|(_, l)| l.clone())
                .collect();
            if ready(&lines) {
                return;
            }
            let child = self.child.as_mut().expect("still running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "{} exited with {status} while waiting for {what}:\n{}\n{}",
                    self.what,
                    lines.join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                started.elapsed() < limit,
                "{} did not show {what} within {limit:?}:\n{}\n{}",
                self.what,
                lines.join("\n"),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the watch to exit, at most `limit` (then kills it and panics with its output).
    pub fn finish(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().expect("not finished yet");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.lines
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let exited_at = Instant::now();
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        Finished {
            status,
            exited_at,
            lines: self.lines.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `line` shows `criterion` as `status` (after a timestamp, in a watch's output).
pub fn shows(line: &str, status: &str, criterion: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().take(3).collect();
    words.windows(2).any(|w| w == [status, criterion])
}

/// How many lines of a watch show `criterion` measured as `status`.
pub fn measured(lines: &[String], status: &str, criterion: &str) -> usize {
    lines.iter().filter(|l| shows(l, status, criterion)).count()
}

/// The first line of `text` showing `criterion` as `status`.
pub fn line_of<'a>(text: &'a str, status: &str, criterion: &str) -> Option<&'a str> {
    text.lines().find(|l| shows(l, status, criterion))
}

/// The reason a criterion line shows: the text after the criterion id.
pub fn reason_in<'a>(line: &'a str, criterion: &str) -> &'a str {
    let at = line.find(criterion).expect("the criterion is on its line") + criterion.len();
    line[at..].trim_start()
}

pub fn kinds(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

pub fn verdicts(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.kind == "verdict")
        .filter_map(|e| e.payload["verdict"].as_str())
        .collect()
}

/// The measurement events of `criterion`.
pub fn measurements<'a>(events: &'a [Event], criterion: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.kind == "measurement" && e.payload["criterion"] == criterion)
        .collect()
}

/// The plan's `window.after_close` text.
pub fn after_close(plan: &str) -> String {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix("after_close: \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the reference plan has window.after_close")
        .to_string()
}

pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
