//! Command deliveries: `sh -c <command>` with the notice as JSON on standard input and
//! `BACKOUT_EVENT`, `BACKOUT_EVENT_ID` in its environment (a pager script, a chat CLI).
//!
//! The command runs in its own process group. Exit 0 is delivered; anything else is worth
//! retrying (commands fail for passing reasons: a network, a rate limit), with the first line of
//! standard error as the message. At the deadline the whole group gets SIGTERM, then SIGKILL, and
//! after every attempt whatever the command left running in its group is killed (and reaped, if
//! it became our child), so nothing outlives the delivery.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::errors::DeliveryError;
use crate::{Notice, Receipt};

/// Time between SIGTERM and SIGKILL at the deadline.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much standard error is kept for the message.
const STDERR_CAP: usize = 16 * 1024;

/// The environment a channel command gets: PATH, HOME, LANG and TZ, and each variable its text
/// names as `${NAME}`, from this process's environment.
fn passed_env(command: &str) -> Vec<(String, String)> {
    let mut names: Vec<&str> = vec!["PATH", "HOME", "LANG", "TZ"];
    let mut rest = command;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        let name = &after[..end];
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(name);
        }
        rest = &after[end..];
    }
    names
        .into_iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
        .collect()
}

pub(crate) async fn deliver(
    command: &str,
    dir: Option<&Path>,
    notice: &Notice,
    timeout: Duration,
) -> Result<Receipt, DeliveryError> {
    let mut process = Command::new("/bin/sh");
    // Nothing of backout's own environment (its token, its database URL, a server's
    // configuration) reaches the command: the basics, and what the command names as ${VAR}.
    process
        .env_clear()
        .envs(passed_env(command))
        .arg("-c")
        .arg(command)
        .env("BACKOUT_EVENT", notice.event.as_str())
        .env("BACKOUT_EVENT_ID", &notice.event_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = dir {
        process.current_dir(dir);
    }
    let mut child = process.spawn().map_err(|e| {
        // `sh` missing or the directory gone: the machine needs fixing, not another attempt.
        DeliveryError::permanent(format!("cannot start `sh`: {e}"))
    })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());

    // Written beside the wait: a command that reads nothing must not block on a full pipe, and
    // one that exits without reading makes the write fail, which is fine.
    let stdin = child.stdin.take();
    let body = notice.to_json();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&body).await;
        }
    });
    let reader = tokio::spawn(first_bytes(child.stderr.take()));

    let ended = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ended::Exited(status),
        Ok(Err(e)) => Ended::Lost(e.to_string()),
        Err(_) => {
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::TERM);
            }
            if tokio::time::timeout(KILL_GRACE, child.wait())
                .await
                .is_err()
                && let Some(pgid) = pgid
            {
                signal_group(pgid, Signal::KILL);
            }
            let _ = child.wait().await;
            Ended::TimedOut
        }
    };
    // Background jobs of the command go too, which also closes the pipes they hold.
    if let Some(pgid) = pgid {
        signal_group(pgid, Signal::KILL);
        reap_group(pgid).await;
    }
    writer.abort();
    let stderr = match tokio::time::timeout(Duration::from_secs(1), reader).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    };
    let first_line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");

    match ended {
        Ended::Exited(status) if status.success() => Ok(Receipt {
            detail: "exit 0".into(),
        }),
        Ended::Exited(status) => {
            let how = match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exit {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => "ended".into(),
            };
            Err(DeliveryError::retryable(if first_line.is_empty() {
                format!("the command failed ({how})")
            } else {
                format!("the command failed ({how}): {first_line}")
            }))
        }
        Ended::TimedOut => Err(DeliveryError::retryable(format!(
            "the command did not finish within {}s and was killed",
            timeout.as_secs_f64()
        ))),
        Ended::Lost(e) => Err(DeliveryError::retryable(format!(
            "waiting for the command failed: {e}"
        ))),
    }
}

enum Ended {
    Exited(std::process::ExitStatus),
    TimedOut,
    Lost(String),
}

/// Reads a stream to its end, keeping the first [`STDERR_CAP`] bytes.
async fn first_bytes(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Reaps what the group kill left of the command's background jobs. When this process is a
/// child subreaper (the executor makes itself one, because PID 1 here does not reap), orphaned
/// grandchildren are reparented to us and would stay zombies. Waiting on the group only touches
/// this delivery's processes; the group leader was already reaped by tokio.
async fn reap_group(pgid: i32) {
    let Some(group) = Pid::from_raw(pgid) else {
        return;
    };
    for _ in 0..50 {
        match rustix::process::waitpgid(group, WaitOptions::NOHANG) {
            // Reaped one; there may be more.
            Ok(Some(_)) => continue,
            // Ours and still dying from the SIGKILL.
            Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            // No child of ours left in the group (usually: we are not a subreaper).
            Err(_) => return,
        }
    }
}

/// Sends a signal to a process group; a group that is already gone is fine.
fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}
