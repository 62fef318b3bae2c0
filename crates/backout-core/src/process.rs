//! Processes of command steps: each attempt runs in its own process group, its output is captured
//! up to a cap, and on a deadline or cancellation the whole group gets SIGTERM, then SIGKILL after
//! a grace period. After every attempt the group is killed, so nothing a step left in its group
//! (`sleep 1000 &`, `nohup cmd &` in a shell without job control) outlives it. A process that
//! left the group (a daemon that called `setsid`, a double-forking server) is the step's
//! deliberate work and is never touched.
//!
//! Right after the spawn, the caller is told the group's [`GroupIdentity`] (pgid, the leader's
//! start time, the boot id) and records it; after a crash of the executor, [`stop_group`] stops
//! exactly that group, and only while it is still the same one (a pgid can be reused, a pgid with
//! the leader's start time cannot). Nothing is found by an environment mark: a daemon an earlier
//! step started inherits the run's variables too.
//!
//! The executor is a child subreaper so that orphaned grandchildren are reparented to it instead
//! of PID 1 (which on these machines does not reap); [`become_subreaper`] also starts a reaper
//! thread that reaps every orphan that dies later, whatever its group, so no zombie stays for the
//! lifetime of a server.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

/// Which process group a step's attempt runs in, identified so that a reused pgid never matches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupIdentity {
    pub pgid: i32,
    /// The group leader's start time (clock ticks after boot, `/proc/PID/stat` field 22).
    pub leader_start: u64,
    /// `/proc/sys/kernel/random/boot_id`: after a reboot no recorded group exists any more.
    pub boot_id: String,
}

/// Called right after a step's process is spawned with its group's identity; an error stops the
/// process (the identity could not be recorded, so a crash could not find it).
pub type SpawnHook = Arc<
    dyn Fn(GroupIdentity) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// The unprivileged user every command of this process runs as (`serve --run-as USER`): steps,
/// preconditions, checks and command criteria.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

static RUN_AS: OnceLock<RunAs> = OnceLock::new();

/// Makes every command this process starts from now on run as `user` (a name or a uid from
/// `/etc/passwd`), with that user's primary group, no supplementary groups and its `HOME`.
/// Needs root, unless `user` is who this process already runs as.
pub fn run_as(user: &str) -> Result<RunAs, String> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd to find `{user}`: {e}"))?;
    let found = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == user || f[2] == user))
        .ok_or_else(|| format!("no user `{user}` in /etc/passwd"))?;
    let parse = |v: &str, what: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("/etc/passwd has a malformed {what} for `{user}`"))
    };
    let run_as = RunAs {
        user: found[0].to_string(),
        uid: parse(found[2], "uid")?,
        gid: parse(found[3], "gid")?,
        home: found[5].to_string(),
    };
    let me = rustix::process::getuid();
    if !me.is_root() && me.as_raw() != run_as.uid {
        return Err(format!(
            "running commands as `{}` needs root (this process runs as uid {}); start serve as root with --run-as, or as `{}` itself",
            run_as.user,
            me.as_raw(),
            run_as.user
        ));
    }
    if run_as.uid == 0 {
        return Err("--run-as names root: give an unprivileged user".to_string());
    }
    RUN_AS
        .set(run_as.clone())
        .map_err(|_| "the user commands run as is already set".to_string())?;
    Ok(run_as)
}

/// Pids of the processes this process spawned and waits for itself (through tokio): the reaper
/// never takes their exit status. Held while spawning, so a child cannot be reaped before it is
/// listed.
fn own_children() -> &'static Mutex<HashSet<i32>> {
    static OWN: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    OWN.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Captured output is cut at this many bytes per stream, with a note.
pub const OUTPUT_CAP: usize = 1024 * 1024;
/// Time between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// After an attempt's leader exits, how long processes still in its group have to leave it
/// (a daemon's `setsid`) before the group is killed.
pub const SETTLE: Duration = Duration::from_millis(300);

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
    spawned: Option<SpawnHook>,
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
    if let Some(user) = RUN_AS.get() {
        // std drops the supplementary groups too when root sets a uid.
        command
            .uid(user.uid)
            .gid(user.gid)
            .env("HOME", &user.home)
            .env("USER", &user.user);
    }
    let (mut child, pgid) = {
        let mut own = own_children()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return spawn_failed(e.to_string()),
        };
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        if let Some(pid) = pgid {
            own.insert(pid);
        }
        (child, pgid)
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let readers = tokio::spawn(async move { tokio::join!(capture(stdout), capture(stderr)) });
    let recorded = match (&spawned, pgid) {
        (Some(hook), Some(pgid)) => match identity_of(pgid) {
            Some(identity) => hook(identity).await,
            None => Ok(()), // Already gone: there is nothing a crash could leave behind.
        },
        _ => Ok(()),
    };
    if let Err(why) = recorded {
        if let Some(pgid) = pgid {
            signal_group(pgid, Signal::KILL);
        }
        let _ = child.wait().await;
        forget_child(pgid);
        if let Some(pgid) = pgid {
            reap_group(pgid).await;
        }
        return spawn_failed(format!(
            "stopped: its process group could not be recorded: {why}"
        ));
    }

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
    forget_child(pgid);
    // Whatever the step left running in its group goes too (background jobs, `sleep 1000 &`).
    // A daemon on its way out of the group (`setsid cmd &` right before the script exits, a
    // double fork) is given SETTLE to leave it first: killing at once would race its setsid().
    if let Some(pgid) = pgid {
        if matches!(exit, Exit::Code(_)) {
            settle(pgid).await;
        }
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

/// Waits up to [`SETTLE`] for a finished attempt's group to empty (nothing left: returns at
/// once, the common case costs one `kill(-pgid, 0)`).
async fn settle(pgid: i32) {
    let Some(group) = Pid::from_raw(pgid) else {
        return;
    };
    let until = Instant::now() + SETTLE;
    while rustix::process::test_kill_process_group(group).is_ok() && Instant::now() < until {
        // Zombies of the group (the leader, already reaped by tokio, is not one) keep it
        // "alive" to kill(2): only live members are worth waiting for.
        if !proc_stats()
            .iter()
            .any(|(_, s)| s.pgrp == pgid && s.state != 'Z')
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The child was waited for (by tokio): from now on it is no longer ours to protect.
fn forget_child(pid: Option<i32>) {
    if let Some(pid) = pid {
        own_children()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&pid);
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
/// do not escape to PID 1, and starts (once per process) the thread that reaps them when they
/// die, whatever their group: a daemon a step started and that exits hours later does not stay
/// a zombie (`kill -0` would still see it) for the life of a server.
///
/// On other Unix systems there is no subreaper here: a grandchild a step leaves behind is
/// reparented to PID 1 there, and only the step's process group is tracked (and killed).
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
        static REAPER: OnceLock<()> = OnceLock::new();
        REAPER.get_or_init(|| {
            let _ = std::thread::Builder::new()
                .name("backout-reaper".into())
                .spawn(|| {
                    let mut seen = HashSet::new();
                    loop {
                        std::thread::sleep(Duration::from_millis(500));
                        seen = reap_orphans(&seen);
                    }
                });
        });
    }
}

/// Reaps zombie children of this process that are orphans reparented to it: not a process this
/// process spawned itself (tokio waits for those), and seen dead in two scans in a row, so a
/// child spawned elsewhere through tokio (a notification command) is left to tokio, which reaps
/// its own at once. Returns the zombies left for the next scan.
#[cfg(target_os = "linux")]
fn reap_orphans(seen_before: &HashSet<i32>) -> HashSet<i32> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let own = own_children()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut still = HashSet::new();
    for (pid, stat) in proc_stats() {
        if stat.state != 'Z' || stat.ppid != me || own.contains(&pid) {
            continue;
        }
        if seen_before.contains(&pid) {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
            }
        } else {
            still.insert(pid);
        }
    }
    still
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
    session: i32,
    /// Clock ticks after boot.
    start: u64,
}

fn stat_of(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the command name, which is in parentheses and may contain spaces and ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); field n is fields[n - 3].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default()
}

/// The identity of the group led by `pgid`, while its leader lives.
pub fn identity_of(pgid: i32) -> Option<GroupIdentity> {
    let stat = stat_of(pgid)?;
    (stat.pgrp == pgid).then(|| GroupIdentity {
        pgid,
        leader_start: stat.start,
        boot_id: boot_id(),
    })
}

fn proc_stats() -> Vec<(i32, Stat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat_of(pid)?)))
        .collect()
}

/// What [`stop_group`] found of a recorded group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// The group was still there and got SIGKILL.
    Killed,
    /// Nothing is left of it (or the machine rebooted since).
    Gone,
    /// The pgid now belongs to another group (the leader's start time differs): left alone.
    Reused,
}

/// Stops the process group an attempt recorded, after its executor died: only when it is the
/// same group (same boot, and either the leader with the recorded start time, or, once the
/// leader died, members still carrying the attempt's `BACKOUT_RUN_ID`/`BACKOUT_STEP_ID`: a pgid
/// is never reused while a member of the old group lives).
pub fn stop_group(identity: &GroupIdentity, run_id: &str, step_id: &str) -> Stopped {
    if identity.boot_id != boot_id() {
        return Stopped::Gone;
    }
    let pgid = identity.pgid;
    let ours = match stat_of(pgid) {
        Some(leader) if leader.state != 'Z' => {
            if leader.start != identity.leader_start {
                return Stopped::Reused;
            }
            leader.pgrp == pgid
        }
        // The leader is gone: members of the old group may still run.
        _ => proc_stats()
            .into_iter()
            .any(|(pid, s)| s.pgrp == pgid && s.state != 'Z' && carries(pid, run_id, step_id)),
    };
    if !ours {
        return Stopped::Gone;
    }
    signal_group(pgid, Signal::KILL);
    Stopped::Killed
}

/// Stops the group of an attempt whose identity was never recorded (the executor died between
/// the spawn and the commit of its identity): the group led by a process of this run and step
/// that is not a session leader (a `setsid` daemon leads its own session and is left alone).
pub fn stop_unrecorded(run_id: &str, step_id: &str) -> Vec<i32> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let groups: Vec<i32> = proc_stats()
        .into_iter()
        .filter(|(pid, s)| {
            *pid != me
                && *pid == s.pgrp
                && s.session != *pid
                && s.state != 'Z'
                && carries(*pid, run_id, step_id)
        })
        .map(|(pid, _)| pid)
        .collect();
    for pgid in &groups {
        signal_group(*pgid, Signal::KILL);
    }
    groups
}

/// Whether a process's environment names this run and step.
fn carries(pid: i32, run_id: &str, step_id: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let run = format!("BACKOUT_RUN_ID={run_id}");
    let step = format!("BACKOUT_STEP_ID={step_id}");
    let mut vars = env.split(|b| *b == 0);
    let (mut has_run, mut has_step) = (false, false);
    for kv in &mut vars {
        has_run |= kv == run.as_bytes();
        has_step |= kv == step.as_bytes();
    }
    has_run && has_step
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    stat_of(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
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
            None,
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
            None,
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
        let out = run(
            Program::Argv(&argv),
            &[],
            None,
            no_cancel(),
            KILL_GRACE,
            None,
        )
        .await;
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
            None,
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
