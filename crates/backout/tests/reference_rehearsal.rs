//! Issue 6's "done when", on the reference plan (`fixtures/plans/valid/checkout.yaml`): a user
//! rehearses it in `staging` with the commands it calls available as shims, its hosts reached
//! through `testing.overrides.staging.urls` (a real HTTP server on loopback plays the staging
//! hosts), waits for `health` through the criterion, confirms the manual step, and then
//! `render` answers Q9 with the evidence and Q7 with the measured time; changing one command
//! makes the plan untested again.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{Sandbox, assert_code, stderr, stdout};

/// Plays `checkout.staging` and `cdn.staging` (and the chat hooks): `/version` says 2.13.4,
/// `/healthz` is 200, the CDN purge is 202, every other request 200.
fn staging_hosts() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, text) = if request.starts_with("GET /version") {
                    ("200 OK", "checkout 2.13.4\n")
                } else if request.starts_with("POST /api/purge") {
                    ("202 Accepted", "")
                } else {
                    ("200 OK", "ok\n")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    base
}

/// An executable script in `dir` that logs its arguments to `<dir>/../calls` and prints
/// `output`. The path is written into the script: steps do not receive the test's `WORK`
/// variable (the reference plan neither references nor passes it).
fn shim(dir: &Path, name: &str, output: &str) {
    let path = dir.join(name);
    let calls = dir.join("../calls");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nprintf '%s' '{output}'\n",
            calls.display()
        ),
    )
    .expect("write shim");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn reference_plan() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans/valid/checkout.yaml"),
    )
    .expect("the reference plan")
}

#[test]
fn rehearsing_the_reference_plan_answers_q9_and_q7_until_a_command_changes() {
    let hosts = staging_hosts();
    let sandbox = Sandbox::new();
    // The reference plan, with the staging hosts in its staging override (the only edit).
    let plan = reference_plan().replace(
        "        KUBECONFIG: /etc/kube/staging.yaml\n",
        &format!(
            "        KUBECONFIG: /etc/kube/staging.yaml\n      urls:\n        \
             \"https://checkout.internal.example.com\": \"{hosts}\"\n        \
             \"https://cdn.example.com\": \"{hosts}\"\n"
        ),
    );
    assert!(plan.contains("urls:"), "the staging override was found");
    std::fs::write(sandbox.path().join("checkout.yaml"), &plan).expect("write plan");
    let out = sandbox.run(&["lint", "checkout.yaml"]);
    assert_code(&out, 0, "the reference plan with staging urls lints clean");

    // What the plan calls: on PATH, and the plan's own ./bin scripts.
    let shims = sandbox.path().join("shims");
    let bin = sandbox.path().join("bin");
    std::fs::create_dir_all(&shims).expect("mkdir");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for name in ["crane", "gh", "kubectl", "helm", "flagctl"] {
        shim(&shims, name, "");
    }
    shim(&bin, "helm-revision-of", "41");
    shim(&bin, "migrate", "");
    shim(&bin, "restore-snapshot", "");
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let rehearse = |args: &[&str]| {
        sandbox
            .command()
            .env("PATH", &path)
            .env("BACKOUT_USER", "erin@example.com")
            .env("PROMETHEUS_URL", &hosts)
            .env("SLACK_OPS_WEBHOOK", format!("{hosts}/slack"))
            .env("STATUS_PAGE_HOOK", format!("{hosts}/status"))
            .env("CDN_TOKEN", "cdn-secret-token")
            .env("CHECKOUT_DATABASE_URL", "postgres://staging/checkout")
            .args(args)
            .output()
            .expect("backout runs")
    };

    // The rehearsal stops at the manual step; a performer confirms it and resumes.
    let out = rehearse(&[
        "rehearse",
        "checkout.yaml",
        "--env",
        "staging",
        "--format",
        "json",
    ]);
    assert_code(&out, 7, "waits for confirm-payments");
    let run = stdout(&out)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| w.starts_with("run-"))
        .unwrap_or_else(|| panic!("a run id in: {}{}", stdout(&out), stderr(&out)))
        .to_string();
    let out = rehearse(&[
        "confirm",
        &run,
        "confirm-payments",
        "--note",
        "test order seen",
    ]);
    assert_code(&out, 0, "confirm");
    let out = rehearse(&["resume", &run]);
    assert_code(&out, 0, "the rehearsal finishes");

    let calls = sandbox.read("calls");
    for expected in [
        "crane digest registry.example.com/checkout:2.13.4",
        "gh workflow disable deploy-checkout.yml",
        "kubectl -n checkout scale deploy/checkout-canary --replicas=0",
        "helm-revision-of checkout 2.13.4",
        "helm rollback checkout 41 --wait --timeout 10m",
        "migrate down --to 0041",
    ] {
        assert!(calls.contains(expected), "{expected} in:\n{calls}");
    }
    // Every step succeeded: the http verify and the CDN purge reached the staging hosts, and
    // the wait on `health` measured the criterion through them.
    let status = rehearse(&["status", &run, "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let states: Vec<(String, String)> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step_id"].as_str().unwrap_or("").to_string(),
                s["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for step in [
        "announce",
        "freeze-deploys",
        "drain-canary",
        "find-revision",
        "rollback-app",
        "revert-migration",
        "settle",
        "confirm-payments",
        "purge-cdn",
    ] {
        assert!(
            states.contains(&(step.to_string(), "succeeded".to_string())),
            "{step} succeeded: {states:?}"
        );
    }

    // Q9 and Q7 from the evidence.
    let out = sandbox.run(&["lint", "checkout.yaml", "--require-tested"]);
    assert_code(&out, 0, "tested now");
    let out = sandbox.run(&["render", "checkout.yaml", "--format", "md"]);
    assert_code(&out, 0, "render");
    let document = stdout(&out);
    assert!(
        document.contains("Tested: yes") && document.contains("rehearsed in staging"),
        "Q9 answered by the evidence:\n{document}"
    );
    assert!(
        document.contains("Measured"),
        "Q7 shows the measured time:\n{document}"
    );

    // One command changes: the evidence no longer covers this plan.
    std::fs::write(
        sandbox.path().join("checkout.yaml"),
        plan.replace(
            "run: gh workflow disable deploy-checkout.yml",
            "run: gh workflow disable deploy-checkout.yml --yes",
        ),
    )
    .expect("edit plan");
    let out = sandbox.run(&["lint", "checkout.yaml", "--require-tested"]);
    assert_code(&out, 2, "untested again");
    assert!(stdout(&out).contains("B084"), "{}", stdout(&out));
    let out = sandbox.run(&["render", "checkout.yaml", "--format", "md"]);
    assert!(
        !stdout(&out).contains("Tested: yes"),
        "no evidence for the edited plan:\n{}",
        stdout(&out)
    );
}
