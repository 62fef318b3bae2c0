//! Notifications through the binary: a command delivers what it queued, and a process killed
//! (SIGKILL) while sending loses nothing: after its claim expires, another process sends the
//! same notification with the same idempotency key.

mod support;

use std::time::{Duration, Instant};

use backout_testkit::{Answer, HttpSink};
use support::Sandbox;

/// A webhook receiver on a loopback port: it never answers the first request (the sender hangs
/// in it), and answers 200 to every other.
fn webhook() -> HttpSink {
    HttpSink::answering(Answer::status(200))
        .path("/hook")
        .first([Answer::hang()])
        .start()
}

fn plan(hook: &str) -> String {
    format!(
        r#"people:
  release-managers: [carol@example.com]
  ops: [erin@example.com]
window: {{ closes_after: 1h }}
authorization: {{ deciders: release-managers }}
execution: {{ performers: ops }}
communication:
  channels:
    hook: {{ webhook: "{hook}" }}
  notify:
    rollback_required: [hook]
"#
    )
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_process_killed_while_sending_loses_no_notification() {
    let receiver = webhook();
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", &plan(&receiver.url));
    let out = sandbox.run(&["start", plan.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // The request commits the event with its delivery, then sends it: the receiver hangs.
    let tuning = [
        ("BACKOUT_DELIVERY_TIMEOUT", "3s"),
        ("BACKOUT_DELIVERY_LEASE", "6s"),
    ];
    let mut request = sandbox.command();
    request
        .envs(tuning)
        .env("BACKOUT_USER", "erin@example.com")
        .args(["request", &release, "--reason", "payments failing"]);
    let mut child = request.spawn().expect("request starts");
    receiver.wait_for(1, Duration::from_secs(20));
    let killed_at = Instant::now();
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    let listed = sandbox.run(&["deliveries", &release, "--format", "json"]);
    let deliveries: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(deliveries[0]["state"], "pending", "{deliveries}");
    assert_eq!(
        deliveries[0]["attempts"].as_array().map(Vec::len),
        Some(0),
        "the killed attempt recorded nothing"
    );

    // While the dead process's claim lasts, nobody sends; after it, another process does.
    let out = sandbox
        .command()
        .envs(tuning)
        .args(["deliveries", &release, "--send"])
        .output()
        .expect("deliveries runs");
    assert!(out.status.success(), "{}", text(&out));
    if killed_at.elapsed() < Duration::from_secs(5) {
        assert_eq!(receiver.requests().len(), 1, "the claim keeps others off");
    }
    std::thread::sleep(Duration::from_secs(6).saturating_sub(killed_at.elapsed()));
    let out = sandbox
        .command()
        .envs(tuning)
        .args(["deliveries", &release, "--send", "--format", "json"])
        .output()
        .expect("deliveries runs");
    assert!(out.status.success(), "{}", text(&out));
    let deliveries: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(deliveries[0]["state"], "delivered", "{deliveries}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 2, "sent again after the crash, once");
    assert!(seen[0].key().starts_with("evt-"), "{seen:?}");
    assert_eq!(
        seen[0].key(),
        seen[1].key(),
        "with the same idempotency key"
    );
    let body = seen[1].json();
    assert_eq!(body["event"], "rollback_required");
    assert_eq!(body["verdict"]["requested"]["reason"], "payments failing");
}
