//! Issue 15, item 5: inputs that could hang or exhaust backout are refused at once. A FIFO as the
//! plan (lint, render, run, start, rehearse), `/dev/zero` and endless standard input, a time with
//! a non-ASCII character (CLI and API), connections that send nothing (header-read timeout), too
//! many connections from one address, a thousand abandoned live streams, and store files
//! readable by others.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::server::{Server, approved_and_executed, call, client, token};
use support::{Sandbox, stderr, stdout};

/// The time string that panicked the hand-written RFC 3339 parser.
const PANIC_TIME: &str = "2026-11-26T18:04:05\u{e9}1234";

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `backout ARGS` with a time limit; a hang is a failure, not a stuck test.
fn run_limited(sandbox: &Sandbox, args: &[&str], stdin: Option<&Path>) -> std::process::Output {
    let mut command = sandbox.command();
    command.args(args);
    command.stdin(match stdin {
        Some(path) => std::fs::File::open(path).expect("stdin file").into(),
        None => std::process::Stdio::null(),
    });
    command.stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("backout starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("backout {args:?} did not finish within 20s (it hangs)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn all_output(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn a_fifo_as_the_plan_is_refused_at_once_by_every_command_that_reads_plans() {
    let sandbox = Sandbox::new();
    let fifo = sandbox.file("plan.yaml");
    mkfifo(&fifo);
    for args in [
        vec!["lint", "plan.yaml"],
        vec!["render", "plan.yaml"],
        vec!["run", "--break-glass", "--reason", "test", "plan.yaml"],
        vec!["start", "plan.yaml", "--version", "2.0.1"],
        vec!["rehearse", "plan.yaml", "--env", "staging"],
    ] {
        let started = Instant::now();
        let out = run_limited(&sandbox, &args, None);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains("FIFO"), "{args:?} names what it is: {text}");
        assert!(
            text.contains("regular file"),
            "{args:?} says what to do: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn dev_zero_and_endless_standard_input_stop_at_the_cap() {
    let sandbox = Sandbox::new();
    let out = run_limited(&sandbox, &["lint", "/dev/zero"], None);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("is a device"), "{text}");

    // Standard input is read up to the cap (8 MB), then refused: the read is bounded, not the
    // size a file claims.
    let started = Instant::now();
    let out = run_limited(&sandbox, &["lint", "-"], Some(Path::new("/dev/zero")));
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("larger than 8 MB"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A plan on standard input is read like a file.
    let plan = sandbox.plan("good.yaml", "");
    let out = run_limited(&sandbox, &["lint", "-"], Some(&plan));
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
}

#[test]
fn a_time_with_a_non_ascii_character_is_a_usage_error_not_a_panic() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", "");
    let out = run_limited(
        &sandbox,
        &[
            "start",
            "plan.yaml",
            "--version",
            "2.0.1",
            "--at",
            PANIC_TIME,
        ],
        None,
    );
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("RFC 3339"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_the_same_time_with_a_400() {
    let sandbox = Sandbox::new();
    let performer = token(&sandbox, "erin@example.com", "performer");
    let server = Server::start(&sandbox);
    let (status, body) = call(
        &client(),
        "POST",
        &server.url("/api/v1/releases"),
        Some(&performer),
        Some(json!({ "plan": support::plan(""), "version": "2.0.1", "at": PANIC_TIME })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RFC 3339")),
        "{body}"
    );
    // The server is still there.
    let (status, _) = call(&client(), "GET", &server.url("/healthz"), None, None).await;
    assert_eq!(status, 200);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn the_store_and_its_wal_are_readable_by_their_owner_only() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", "");
    let out = sandbox.run(&["start", "plan.yaml", "--version", "2.0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    let mut seen = 0;
    for name in ["backout.db", "backout.db-wal", "backout.db-shm"] {
        let Ok(meta) = std::fs::metadata(sandbox.file(name)) else {
            continue;
        };
        seen += 1;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "{name} is {:o}",
            meta.permissions().mode() & 0o777
        );
    }
    assert!(seen >= 1, "the store file exists");

    // A store made readable by others is narrowed again when opened.
    std::fs::set_permissions(sandbox.db(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(sandbox.run(&["status"]).status.code(), Some(0));
    let mode = std::fs::metadata(sandbox.db())
        .expect("db")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

/// Whether the server closed `stream` (EOF or reset), waiting at most `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(limit))
        .expect("set a read timeout");
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn address(server: &Server) -> std::net::SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

#[test]
fn three_hundred_idle_connections_are_closed_by_the_header_timeout() {
    let sandbox = Sandbox::new();
    let server = Server::with_args(
        sandbox.command(),
        &["--header-timeout", "1s", "--max-connections-per-ip", "1000"],
    );
    let addr = address(&server);
    let opened = Instant::now();
    let mut idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(addr).expect("connects"))
        .collect();
    // One more sends half a request line and then nothing: a trickle is closed too.
    let mut trickle = std::net::TcpStream::connect(addr).expect("connects");
    std::io::Write::write_all(&mut trickle, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    for (i, stream) in idle.iter_mut().enumerate() {
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        assert!(
            closed_within(stream, left.max(Duration::from_millis(1))),
            "idle connection {i} still open after {:?}",
            opened.elapsed()
        );
    }
    assert!(closed_within(&mut trickle, Duration::from_secs(5)));
    eprintln!(
        "300 idle connections closed within {:?} of opening (timeout 1s)",
        opened.elapsed()
    );
    // The server answers as before.
    let mut fresh = std::net::TcpStream::connect(addr).expect("connects");
    std::io::Write::write_all(
        &mut fresh,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    fresh.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let sandbox = Sandbox::new();
    let server = Server::with_args(sandbox.command(), &["--max-connections-per-ip", "5"]);
    let addr = address(&server);
    let held: Vec<std::net::TcpStream> = (0..5)
        .map(|_| std::net::TcpStream::connect(addr).expect("connects"))
        .collect();
    // Let the server accept (and count) them.
    let healthz = |from: &str| {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(format!("{from}:0").parse().expect("address"))
            .expect("bind the source address");
        async move {
            let mut stream = socket.connect(addr).await.expect("connects");
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = String::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
                    .await;
            answer
        }
    };
    // A sixth from the same address is closed without an answer …
    let mut refused = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if healthz("127.0.0.1").await.is_empty() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a sixth connection from 127.0.0.1 was served");
    // … while another address is served.
    let answer = healthz("127.0.0.2").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(server.log().contains("too many open"), "{}", server.log());
    // Giving connections back frees the slots.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if healthz("127.0.0.1").await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "slots were not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the server's status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

const WAITING: &str = r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: gate, manual: { by: ops-oncall, instructions: "Go on." }, expected: 1m }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_abandoned_live_streams_leave_memory_flat() {
    let sandbox = Sandbox::new();
    let performer = token(&sandbox, "erin@example.com", "performer");
    let decider = token(&sandbox, "carol@example.com", "decider");
    let server = Server::start(&sandbox);
    let http = client();
    // A run that waits for a person: its stream sends nothing more and never ends by itself.
    let owner = token(&sandbox, "owner@example.com", "viewer");
    let (_release, run) =
        approved_and_executed(&http, &server, WAITING, &performer, &decider, &owner).await;
    let url = server.url(&format!("/api/v1/runs/{run}/events"));
    let pid = server.pid();

    // Each wave opens 100 streams, reads their first event, and drops them.
    let wave = |n: usize| {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a client");
        let url = url.clone();
        let performer = performer.clone();
        async move {
            let mut streams = Vec::new();
            for _ in 0..n {
                let mut response = http
                    .get(&url)
                    .bearer_auth(&performer)
                    .send()
                    .await
                    .expect("the stream opens");
                assert_eq!(response.status(), 200);
                let first = response.chunk().await.expect("a chunk");
                assert!(first.is_some());
                streams.push(response);
            }
            drop(streams);
            drop(http);
        }
    };
    let baseline_fds = open_fds(pid);
    let settle = || async {
        // Abandoned streams are noticed and their connections closed.
        let deadline = Instant::now() + Duration::from_secs(30);
        while open_fds(pid) > baseline_fds + 5 {
            assert!(
                Instant::now() < deadline,
                "abandoned streams still hold {} fds (baseline {baseline_fds})",
                open_fds(pid)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    for _ in 0..2 {
        wave(100).await;
        settle().await;
    }
    let warm = resident_kib(pid);
    for _ in 0..8 {
        wave(100).await;
        settle().await;
    }
    let after = resident_kib(pid);
    let growth = after.saturating_sub(warm);
    eprintln!(
        "1000 abandoned streams: resident {warm} KiB after 200, {after} KiB after 1000 \
         (+{growth} KiB for 800 more; the leak was 3-4 KiB each)"
    );
    assert!(
        growth < 1536,
        "memory grew by {growth} KiB over 800 abandoned streams"
    );
    // And a new client still gets the stream.
    let mut response = http
        .get(&url)
        .bearer_auth(&performer)
        .send()
        .await
        .expect("the stream opens");
    assert!(response.chunk().await.expect("a chunk").is_some());
}
