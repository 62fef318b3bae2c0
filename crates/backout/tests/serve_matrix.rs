//! The authorization matrix of `backout serve`: every `/api/v1` operation the OpenAPI document
//! lists × every role, plus no token, a forged one and a revoked one. The document's
//! `x-backout-role` says the least role of each operation; the test holds the server to it:
//! below it a 403 `forbidden` that names the role needed, at or above it never a 401 or a
//! role refusal (the plan's rules may still refuse: that is a 403 `refused`, not this test's
//! business). Operations added to the router are covered as soon as the document lists them.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Sandbox;
use support::server::{Server, call, client, error_of, token};

const BODY: &str = r#"people:
  release-managers: [dora@example.com, adam@example.com]
  ops-oncall: [pete@example.com, adam@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: drain, run: "true", expected: 1s }
    - { id: confirm, needs: [drain], manual: { by: ops-oncall, instructions: "Look." }, expected: 1m }
"#;

const ROLES: [&str; 4] = ["viewer", "performer", "decider", "admin"];

/// Every `/api/v1` operation of the document: method, path template, least role.
fn operations() -> Vec<(String, String, String)> {
    let document: Value = serde_json::from_str(backout_server::openapi::json())
        .expect("the OpenAPI document is JSON");
    let mut operations = Vec::new();
    for (template, methods) in document["paths"].as_object().expect("paths") {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in methods.as_object().expect("methods") {
            let role = operation["x-backout-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} has no x-backout-role"));
            assert!(ROLES.contains(&role), "{method} {template}: role {role}");
            operations.push((method.to_uppercase(), template.clone(), role.to_string()));
        }
    }
    assert!(operations.len() >= 20, "{operations:?}");
    operations
}

/// A body that parses for each operation, so that what answers is the role check and not the
/// body's shape.
fn body_of(method: &str, template: &str, plan: &str) -> Option<Value> {
    if method != "POST" {
        return None;
    }
    Some(match template.rsplit('/').next().unwrap_or_default() {
        "releases" | "lint" | "render" | "register" => json!({ "plan": plan }),
        "checkpoints" => json!({ "name": "not-declared" }),
        "request" => json!({ "reason": "matrix" }),
        "decisions" => json!({ "decision": "deny", "reason": "matrix" }),
        "resolve" => json!({ "outcome": "retry" }),
        "abort" | "skip" => json!({ "reason": "matrix" }),
        _ => json!({}),
    })
}

fn rank(role: &str) -> usize {
    ROLES
        .iter()
        .position(|r| *r == role)
        .unwrap_or_else(|| panic!("role {role}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_role_and_every_bad_token() {
    let sandbox = Sandbox::new();
    let mut tokens: Vec<(&str, String)> = vec![
        ("viewer", token(&sandbox, "vic@example.com", "viewer")),
        (
            "performer",
            token(&sandbox, "pete@example.com", "performer"),
        ),
        ("decider", token(&sandbox, "dora@example.com", "decider")),
        ("admin", token(&sandbox, "adam@example.com", "admin")),
    ];
    let revoked = token(&sandbox, "rita@example.com", "admin");
    let id = revoked.split('.').next().expect("an id").to_string();
    support::assert_code(&sandbox.run(&["token", "revoke", &id]), 0, "token revoke");
    let server = Server::start(&sandbox);
    let client = client();
    let plan = support::plan(BODY);

    // Something for every path parameter to name: a release and a run of it.
    let admin = tokens[3].1.clone();
    let (status, release) = call(
        &client,
        "POST",
        &server.url("/api/v1/releases"),
        Some(&admin),
        Some(json!({ "plan": plan })),
    )
    .await;
    assert_eq!(status, 201, "{release}");
    let release = release["id"].as_str().expect("release id").to_string();
    sandbox.plan("adhoc.yaml", BODY);
    let run = sandbox.run(&[
        "--as",
        "pete@example.com",
        "run",
        "--break-glass",
        "--reason",
        "test",
        "adhoc.yaml",
    ]);
    let run_id = sandbox.run_ids().pop().unwrap_or_else(|| {
        panic!(
            "a run exists: {}\n{}",
            support::stdout(&run),
            support::stderr(&run)
        )
    });

    let forged = format!("{}0", &admin[..admin.len() - 1]);
    let mut checked = 0;
    for (method, template, least) in operations() {
        let path = template
            .replace("/releases/{id}", &format!("/releases/{release}"))
            .replace("/runs/{id}", &format!("/runs/{run_id}"))
            .replace("/evidence/{id}", "/evidence/evd-none")
            .replace("{step}", "confirm");
        assert!(!path.contains('{'), "unfilled parameter in {path}");
        let url = server.url(&path);
        let body = body_of(&method, &template, &plan);
        let what = format!("{method} {template}");

        for (credential, bearer) in [
            ("no token", None),
            ("a forged token", Some(forged.as_str())),
            ("a revoked token", Some(revoked.as_str())),
        ] {
            let (status, answer) = call(&client, &method, &url, bearer, body.clone()).await;
            assert_eq!(status, 401, "{what} with {credential}: {answer}");
            assert_eq!(error_of(&answer).0, "unauthorized", "{what}: {answer}");
            checked += 1;
        }
        for (role, bearer) in &mut tokens {
            let (status, answer) = if what == "GET /api/v1/runs/{id}/events" {
                stream_status(&client, &url, bearer).await
            } else {
                call(&client, &method, &url, Some(bearer), body.clone()).await
            };
            let forbidden = status == 403 && answer["error"]["code"] == "forbidden";
            if rank(role) < rank(&least) {
                assert!(
                    forbidden,
                    "{what} as {role} must be forbidden: {status} {answer}"
                );
                let message = error_of(&answer).1;
                assert!(
                    message.contains(&format!("`{least}`")),
                    "{what}: the refusal names the role needed: {message}"
                );
            } else {
                assert!(
                    status != 401 && !forbidden && status < 500,
                    "{what} as {role} must pass the role check: {status} {answer}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20 * 7, "{checked} requests checked");

    // A token the server has just accepted (and remembers) stops working once it is revoked,
    // here by another process, whose write a SQLite server's change feed does not hear of: the
    // server searches the journal for revocations at least every 250 ms.
    let releases = server.url("/api/v1/releases");
    let (status, _) = call(&client, "GET", &releases, Some(&admin), None).await;
    assert_eq!(status, 200);
    let admin_id = admin.split('.').next().expect("an id").to_string();
    support::assert_code(
        &sandbox.run(&["token", "revoke", &admin_id]),
        0,
        "token revoke",
    );
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, answer) = call(&client, "GET", &releases, Some(&admin), None).await;
        if status == 401 {
            assert_eq!(error_of(&answer).0, "unauthorized", "{answer}");
            break;
        }
        assert_eq!(status, 200, "{answer}");
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "a revoked token still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        revoked_at.elapsed() < Duration::from_millis(1000),
        "{:?}",
        revoked_at.elapsed()
    );
}

/// The status of a live stream, read without waiting for it to end.
async fn stream_status(client: &reqwest::Client, url: &str, bearer: &str) -> (u16, Value) {
    let response = client
        .get(url)
        .bearer_auth(bearer)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    let text = response.text().await.expect("a body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    support::server::openapi::assert_documented(client, "GET", url, status, &value).await;
    (status, value)
}
