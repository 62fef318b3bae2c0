//! Progress bars for a run watched on a terminal (indicatif): one bar per running step filling
//! towards its `expected` time, and an overall bar of finished steps with the expected time
//! left along the remaining critical path. The plain lines of [`super::progress`] are still
//! written, above the bars (through `suspend`). Only when standard error is a terminal: a pipe
//! or a file gets exactly the plain lines.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use backout_model::Duration;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A step bar without an estimate fills against this, so it still moves.
const NO_ESTIMATE_MS: u64 = 60_000;

struct Running {
    bar: ProgressBar,
    since: Instant,
}

pub(super) struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Arc<Mutex<HashMap<String, Running>>>,
    stop: Arc<AtomicBool>,
}

impl Bars {
    /// Bars on standard error, or `None` when it is not a terminal (or `TERM=dumb`).
    pub(super) fn on_terminal(total: usize) -> Option<Bars> {
        if !std::io::stderr().is_terminal() || std::env::var("TERM").is_ok_and(|t| t == "dumb") {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} [{bar:30.green/white}] {pos}/{len} steps {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        overall.set_prefix("run");
        overall.set_message("starting");
        let running: Arc<Mutex<HashMap<String, Running>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        // Step bars fill with the time since their start: a tick moves them.
        let (ticking, stopping) = (running.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if let Ok(running) = ticking.lock() {
                    for r in running.values() {
                        let ms = r.since.elapsed().as_millis() as u64;
                        r.bar.set_position(ms.min(r.bar.length().unwrap_or(ms)));
                        r.bar.set_message(format!("{:.1}s", ms as f64 / 1000.0));
                    }
                }
                std::thread::sleep(StdDuration::from_millis(200));
            }
        });
        Some(Bars {
            multi,
            overall,
            running,
            stop,
        })
    }

    /// Writes `line` above the bars.
    pub(super) fn print(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    pub(super) fn step_started(&self, step: &str, expected_ms: Option<u64>) {
        let length = expected_ms.filter(|ms| *ms > 0).unwrap_or(NO_ESTIMATE_MS);
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(length));
        let expected = expected_ms.map_or("no estimate".to_string(), |ms| {
            format!("expected {}", Duration::from_millis(ms))
        });
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>16.bold}} [{{bar:30.cyan/blue}}] {{msg}} / {expected}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(short(step));
        bar.set_message("0.0s");
        if let Ok(mut running) = self.running.lock()
            && let Some(old) = running.insert(
                step.to_string(),
                Running {
                    bar,
                    since: Instant::now(),
                },
            )
        {
            old.bar.finish_and_clear();
            self.multi.remove(&old.bar);
        }
    }

    pub(super) fn step_ended(&self, step: &str) {
        if let Ok(mut running) = self.running.lock()
            && let Some(r) = running.remove(step)
        {
            r.bar.finish_and_clear();
            self.multi.remove(&r.bar);
        }
    }

    /// `done` of `total` steps finished, `left` expected along the remaining critical path.
    pub(super) fn overall(&self, done: usize, total: usize, left: Option<Duration>) {
        self.overall.set_length(total as u64);
        self.overall.set_position(done as u64);
        self.overall.set_message(match left {
            Some(left) if done < total => format!("about {left} left"),
            _ => String::new(),
        });
    }

    /// A person is asked at this terminal: the bars step aside for good, so the prompt and its
    /// answer are not redrawn over.
    pub(super) fn hide(&self) {
        self.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    pub(super) fn clear(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut running) = self.running.lock() {
            for (_, r) in running.drain() {
                r.bar.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A step id cut to the bar's prefix width.
fn short(step: &str) -> String {
    if step.chars().count() <= 16 {
        step.to_string()
    } else {
        let mut s: String = step.chars().take(15).collect();
        s.push('…');
        s
    }
}
