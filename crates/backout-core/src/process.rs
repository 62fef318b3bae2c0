//! Processes of command steps: each attempt runs in its own process group, its output is captured
//! up to a cap, and on a deadline or cancellation the whole group gets SIGTERM, then SIGKILL after
//! a grace period. After every attempt the group is killed, so nothing a step left in the
//! background outlives it.
//!
//! Every process carries `BACKOUT_RUN_ID` and `BACKOUT_STEP_ID` in its environment; after a crash
//! of the executor, [`kill_leftovers`] finds the processes of a run by that mark (a pgid could
//! have been reused) and kills their groups. The executor is a child subreaper so that orphaned
//! grandchildren are reparented to it and reaped here, not left as zombies (PID 1 on these
//! machines does not reap).

use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

/// Captured output is cut at this many bytes per stream, with a note.
pub const OUTPUT_CAP: usize = 1024 * 1024;
/// Time between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How a process attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exit code, or 128 + signal number when killed by a signal.
    Code(i32),
    TimedOut,
    Cancelled,
    /// Could not be started (program not found, permission denied).
    SpawnFailed(String),
}

#[derive(Debug, Clone)]
pub struct ProcessOutcome {
    pub exit: Exit,
    pub pgid: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// What to run.
pub enum Program<'a> {
    /// `sh -c <script>`.
    Shell(&'a str),
    /// A program and its arguments, no shell.
    Argv(&'a [String]),
}

/// Runs a program to completion, deadline or cancellation, with exactly the environment `env`
/// (built by [`crate::env::Resolver::passed_env`] plus the caller's own values).
pub async fn run(
    program: Program<'_>,
    env: &[(String, String)],
    deadline: Option<Instant>,
    mut cancel: watch::Receiver<bool>,
    grace: Duration,
) -> ProcessOutcome {
    let mut command = match program {
        Program::Shell(script) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(script);
            c
        }
        Program::Argv(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return spawn_failed("exec has no program".into());
            };
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    };
    // `env` is the whole environment: nothing of backout's own (its token, its database URL,
    // the server's configuration) reaches a step unless the caller put it there.
    command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return spawn_failed(e.to_string()),
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let readers = tokio::spawn(async move { tokio::join!(capture(stdout), capture(stderr)) });

    let sleep_until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        loop {
            if *cancel.borrow_and_update() {
                return;
            }
            if cancel.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Exit::Code(code_of(status)),
            Err(e) => Exit::SpawnFailed(format!("waiting for the process failed: {e}")),
        },
        () = sleep_until => Exit::TimedOut,
        () = cancelled => Exit::Cancelled,
    };
    if matches!(exit, Exit::TimedOut | Exit::Cancelled) {
        if let Some(pgid) = pgid {
            signal_group(pgid, Signal::TERM);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::KILL);
            }
            let _ = child.wait().await;
        }
    }
    // Whatever the step left running in its group goes too (background jobs, `sleep 1000 &`).
    if let Some(pgid) = pgid {
        signal_group(pgid, Signal::KILL);
        reap_group(pgid).await;
    }
    let (stdout, stderr) = match tokio::time::timeout(Duration::from_secs(5), readers).await {
        Ok(Ok(pair)) => pair,
        // A process outside the group still holds the pipe open; keep what we have.
        _ => (
            String::new(),
            "[output unavailable: the pipe stayed open after the step ended]".into(),
        ),
    };
    ProcessOutcome {
        exit,
        pgid,
        stdout,
        stderr,
    }
}

fn spawn_failed(message: String) -> ProcessOutcome {
    ProcessOutcome {
        exit: Exit::SpawnFailed(message),
        pgid: None,
        stdout: String::new(),
        stderr: String::new(),
    }
}

fn code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Reads a stream to the end, keeping the first [`OUTPUT_CAP`] bytes.
async fn capture(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += (n - n.min(room)) as u64;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[output cut: {dropped} more bytes not kept]\n"));
    }
    text
}

/// Sends a signal to a process group; a group that is already gone is fine.
pub fn signal_group(pgid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Makes this process the reaper of its orphaned descendants (Linux), so a step's grandchildren
/// do not escape to PID 1.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// Reaps the orphans of a finished attempt's process group: grandchildren reparented to us (we are
/// a subreaper) that died from the group kill. The group leader is tokio's child and already
/// reaped by it; other steps' children are in other groups, so they are never touched (reaping
/// one of those would steal its exit status from tokio). The common case, an empty group, costs
/// one `kill(-pgid, 0)` and no scan of /proc.
async fn reap_group(pgid: i32) {
    let Some(group) = Pid::from_raw(pgid) else {
        return;
    };
    let me = rustix::process::getpid().as_raw_nonzero().get();
    for _ in 0..20 {
        if rustix::process::test_kill_process_group(group).is_err() {
            return;
        }
        for (pid, stat) in proc_stats() {
            if stat.pgrp == pgid
                && pid != pgid
                && stat.ppid == me
                && stat.state == 'Z'
                && let Some(pid) = Pid::from_raw(pid)
            {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
}

fn proc_stats() -> Vec<(i32, Stat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may contain spaces: parse after the last ')'.
            let rest = &text[text.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some((pid, Stat { state, ppid, pgrp }))
        })
        .collect()
}

/// Finds processes left by a crashed executor of `run_id` (marked by `BACKOUT_RUN_ID` in their
/// environment), kills their process groups, and returns the pgids killed.
pub fn kill_leftovers(run_id: &str) -> Vec<i32> {
    let mark = format!("BACKOUT_RUN_ID={run_id}");
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let mut groups: Vec<i32> = proc_stats()
        .into_iter()
        .filter(|(pid, stat)| *pid != me && stat.state != 'Z')
        .filter(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
        })
        .map(|(_, stat)| stat.pgrp)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for pgid in &groups {
        signal_group(*pgid, Signal::KILL);
    }
    groups
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t.rfind(')').and_then(|i| t[i + 2..].chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_cancel() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let out = run(
            Program::Shell("echo hi; echo err >&2; exit 3"),
            &[],
            None,
            no_cancel(),
            KILL_GRACE,
        )
        .await;
        assert_eq!(out.exit, Exit::Code(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let deadline = Instant::now() + Duration::from_millis(300);
        let out = run(
            Program::Shell("sleep 1000 & sleep 1000"),
            &[],
            Some(deadline),
            no_cancel(),
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(out.exit, Exit::TimedOut);
        let pgid = out.pgid.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let left: Vec<_> = proc_stats()
            .into_iter()
            .filter(|(_, s)| s.pgrp == pgid && s.state != 'Z')
            .collect();
        assert!(
            left.is_empty(),
            "processes left in group {pgid}: {}",
            left.len()
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_failure() {
        let argv = vec!["/nonexistent/tool".to_string()];
        let out = run(Program::Argv(&argv), &[], None, no_cancel(), KILL_GRACE).await;
        assert!(matches!(out.exit, Exit::SpawnFailed(_)));
    }

    #[tokio::test]
    async fn output_is_capped_with_a_note() {
        let out = run(
            Program::Shell("head -c 2000000 /dev/zero | tr '\\0' a"),
            &[],
            None,
            no_cancel(),
            KILL_GRACE,
        )
        .await;
        assert!(out.stdout.len() < OUTPUT_CAP + 100);
        assert!(
            out.stdout
                .contains("[output cut: 951424 more bytes not kept]"),
            "{}",
            &out.stdout[OUTPUT_CAP..]
        );
    }
}
