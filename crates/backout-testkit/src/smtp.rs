//! A real SMTP server for the email tests: aiosmtpd running `smtp_sink.py` (next to this crate's
//! Cargo.toml) on a free loopback port, saving each message it accepts as JSON. Recipients
//! starting with `reject` get a permanent 550, those starting with `busy` a transient 451.
//!
//! Without aiosmtpd the sink refuses to start and says how to install it: a test that needs a
//! real server fails loudly, it never skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `smtp_sink.py`; killed when dropped.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server and waits until it printed the port it listens on.
    pub fn start() -> SmtpSink {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .expect("python3 runs");
        assert!(
            check.status.success(),
            "the email tests need a real SMTP server: `pip install aiosmtpd` ({})",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the sink prints its port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the SMTP sink did not start (printed {line:?})")
        });
        SmtpSink { child, port, dir }
    }

    /// `smtp://127.0.0.1:PORT`, the form of `BACKOUT_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, in order: envelope, headers and decoded parts.
    pub fn messages(&self) -> Vec<Value> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("the sink's directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(p).expect("a saved message"))
                    .expect("saved as JSON")
            })
            .collect()
    }

    /// Blocks until `count` messages arrived (and returns them all), or panics after `limit`.
    #[track_caller]
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink got {} messages within {limit:?}, expected {count}",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
