//! `--format json` on the commands that change something: each answers, on standard output,
//! one JSON object with the ids and states it created (people still read the stderr line).

mod support;

use serde_json::Value;
use support::{Sandbox, assert_code, stdout};

fn answer(out: &std::process::Output, what: &str) -> Value {
    assert_code(out, 0, what);
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "{what}: one line of JSON: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

const RELEASE_PLAN: &str = r#"people:
  release-managers: [carol@example.com]
  ops: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers }
execution: { performers: ops }
"#;

#[test]
fn release_commands_answer_what_they_recorded() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", RELEASE_PLAN);
    let plan = plan.to_str().expect("utf-8");

    let started = answer(&sandbox.run(&["start", plan, "--format", "json"]), "start");
    let release = started["release"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert!(release.starts_with("rel-"), "{started}");
    assert_eq!(started["release"]["state"], "open", "{started}");
    assert_eq!(started["release"]["version"], "2.0.0");
    assert!(started["release"].get("plan_source").is_none());

    let checkpoint = answer(
        &sandbox.run(&["checkpoint", &release, "expand", "--format", "json"]),
        "checkpoint",
    );
    assert_eq!(checkpoint["checkpoint"], "expand");
    assert_eq!(checkpoint["release"]["id"], release.as_str());
    assert_eq!(
        checkpoint["release"]["checkpoints"][0]["name"], "expand",
        "{checkpoint}"
    );

    let requested = answer(
        &sandbox.run(&[
            "--as",
            "erin@example.com",
            "request",
            &release,
            "--reason",
            "payments failing",
            "--format",
            "json",
        ]),
        "request",
    );
    assert_eq!(requested["verdict"], "rollback_required");
    assert_eq!(requested["requested"]["by"], "erin@example.com");
    assert_eq!(requested["release"]["id"], release.as_str());

    let decided = answer(
        &sandbox.run(&[
            "--as",
            "carol@example.com",
            "decide",
            &release,
            "approve",
            "--reason",
            "error rate climbing",
            "--format",
            "json",
        ]),
        "decide",
    );
    assert_eq!(decided["release"], release.as_str());
    assert_eq!(decided["decision"], "approve");
    assert_eq!(decided["by"], "carol@example.com");
    assert_eq!(decided["approved"], true, "{decided}");
    assert_eq!(decided["approvals"], 1);
    assert_eq!(decided["quorum"], 1);

    // Without --format, start still prints the id alone, for REL=$(backout start …).
    let out = sandbox.run(&["start", plan]);
    assert_code(&out, 0, "start");
    assert!(stdout(&out).trim().starts_with("rel-"));
}

#[test]
fn token_create_answers_the_id_and_the_secret_once() {
    let sandbox = Sandbox::new();
    let token = answer(
        &sandbox.run(&[
            "token",
            "create",
            "--user",
            "carol@example.com",
            "--role",
            "decider",
            "--format",
            "json",
        ]),
        "token create",
    );
    assert!(
        token["id"].as_str().is_some_and(|i| i.starts_with("tok-")),
        "{token}"
    );
    assert_eq!(token["user"], "carol@example.com");
    assert_eq!(token["role"], "decider");
    let secret = token["token"].as_str().expect("the bearer");
    assert!(secret.starts_with(token["id"].as_str().unwrap()), "{token}");
}

const MANUAL_PLAN: &str = r#"procedure:
  steps:
    - id: approve
      manual: { by: ops, instructions: "Confirm." }
    - id: after
      needs: [approve]
      run: "true"
"#;

#[test]
fn run_acts_answer_the_run_and_step_states() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", MANUAL_PLAN);
    let plan = plan.to_str().expect("utf-8");
    let run = |sandbox: &Sandbox| {
        assert_code(
            &sandbox.run(&["run", "--break-glass", "--reason", "test", plan]),
            7,
            "a run waiting for its manual step",
        );
        sandbox.run_ids().into_iter().next().expect("a run")
    };
    let first = run(&sandbox);
    let confirmed = answer(
        &sandbox.run(&[
            "--as",
            "ops@example.com",
            "confirm",
            &first,
            "approve",
            "--format",
            "json",
        ]),
        "confirm",
    );
    assert_eq!(confirmed["act"], "confirmed");
    assert_eq!(confirmed["run"], first.as_str());
    assert_eq!(confirmed["step"], "approve");
    assert_eq!(confirmed["step_state"], "succeeded", "{confirmed}");
    assert!(confirmed["run_state"].is_string(), "{confirmed}");

    let aborted = answer(
        &sandbox.run(&[
            "--as",
            "ops@example.com",
            "abort",
            &first,
            "--reason",
            "drill over",
            "--format",
            "json",
        ]),
        "abort",
    );
    assert_eq!(aborted["act"], "aborted");
    assert_eq!(aborted["run"], first.as_str());
    assert_eq!(aborted["run_state"], "aborted", "{aborted}");
}

#[test]
fn through_a_server_the_answers_are_the_same() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", RELEASE_PLAN);
    let plan = plan.to_str().expect("utf-8");
    let server = support::server::Server::start(&sandbox);
    let erin = support::server::token(&sandbox, "erin@example.com", "performer");
    let remote = |args: &[&str]| {
        sandbox
            .command()
            .env_remove("BACKOUT_DATABASE_URL")
            .env("BACKOUT_SERVER", &server.base)
            .env("BACKOUT_TOKEN", &erin)
            .args(args)
            .output()
            .expect("runs")
    };
    let started = answer(
        &remote(&["start", plan, "--format", "json"]),
        "remote start",
    );
    let release = started["release"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    assert_eq!(started["release"]["state"], "open", "{started}");
    let requested = answer(
        &remote(&[
            "request",
            &release,
            "--reason",
            "payments failing",
            "--format",
            "json",
        ]),
        "remote request",
    );
    assert_eq!(requested["release"]["id"], release.as_str());
    assert_eq!(requested["requested"]["by"], "erin@example.com");
    assert_eq!(requested["verdict"], "rollback_required");
}
