//! People rules on every act, through the CLI (local store) and the API alike: each act on a
//! release's run by someone outside the plan's group is refused naming the group's rule, and by
//! the approver (a performer too) naming separation of duties; the performer in the group is
//! never refused by a people rule.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::server::{Server, call, client, token};
use support::{Sandbox, assert_code, text};

const BODY: &str = r#"people:
  deciders: [dana@example.com]
  performers: [pat@example.com, dana@example.com]
window: { closes_after: 1h }
authorization: { deciders: deciders, quorum: 1, separation_of_duties: true }
execution: { performers: performers }
procedure:
  steps:
    - { id: check, manual: { by: performers, instructions: "Look at the dashboard." }, expected: 1m }
    - { id: undo, needs: [check], run: 'touch "${WORK}/undone"', expected: 1s }
"#;

fn as_(sandbox: &Sandbox, who: &str, args: &[&str]) -> Output {
    sandbox.run_as(who, args)
}

/// What a people rule's refusal says: the group rule, or separation of duties.
const RULES: [&str; 3] = [
    "execution.performers",
    "the step's manual.by",
    "separation_of_duties",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_act_checks_people_through_the_cli_and_the_api() {
    let sandbox = Sandbox::new();
    let plan_path = sandbox.plan("plan.yaml", BODY);
    let plan = std::fs::read_to_string(&plan_path).expect("plan text");
    let tokens = [
        (
            "pat@example.com",
            token(&sandbox, "pat@example.com", "performer"),
        ),
        (
            "eve@example.com",
            token(&sandbox, "eve@example.com", "performer"),
        ),
        (
            "dana@example.com",
            token(&sandbox, "dana@example.com", "decider"),
        ),
    ];
    let owner = token(&sandbox, "owner@example.com", "viewer");
    let out = sandbox.run(&["start", "plan.yaml"]);
    assert_code(&out, 0, "start");
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_code(
        &as_(
            &sandbox,
            "pat@example.com",
            &["request", &rel, "--reason", "r"],
        ),
        0,
        "request",
    );
    assert_code(
        &as_(
            &sandbox,
            "dana@example.com",
            &["decide", &rel, "approve", "--reason", "r"],
        ),
        0,
        "approve",
    );
    let server = Server::start(&sandbox);
    let http = client();
    support::server::accept(&http, &server.url("/api/v1/plans/accept"), &owner, &plan).await;

    // execute: the release, before any run exists.
    for (who, expected) in [
        ("eve@example.com", Some("execution.performers")),
        ("dana@example.com", Some("separation_of_duties")),
    ] {
        let out = as_(&sandbox, who, &["execute", &rel]);
        assert_code(&out, 5, &format!("CLI execute by {who}"));
        assert!(
            text(&out).contains(expected.unwrap_or_default()),
            "{}",
            text(&out)
        );
        let token = &tokens.iter().find(|(u, _)| *u == who).expect("token").1;
        let (status, body) = call(
            &http,
            "POST",
            &server.url(&format!("/api/v1/releases/{rel}/execute")),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 403, "API execute by {who}: {body}");
        assert!(
            body.to_string().contains(expected.unwrap_or_default()),
            "{body}"
        );
    }
    let out = as_(&sandbox, "pat@example.com", &["execute", &rel]);
    assert_code(&out, 7, "execute by the performer waits at the manual step");
    let run = sandbox.only_run();

    // Every act on the run, by each person, through both doors.
    let acts: Vec<(&str, Vec<&str>, String, Value)> = vec![
        (
            "confirm",
            vec!["confirm", &run, "check"],
            format!("/api/v1/runs/{run}/steps/check/confirm"),
            json!({}),
        ),
        (
            "resolve",
            vec!["resolve", &run, "check", "done"],
            format!("/api/v1/runs/{run}/steps/check/resolve"),
            json!({ "outcome": "done" }),
        ),
        (
            "retry",
            vec!["retry", &run, "check"],
            format!("/api/v1/runs/{run}/retry"),
            json!({ "steps": ["check"] }),
        ),
        (
            "skip",
            vec!["skip", &run, "check", "--reason", "seen"],
            format!("/api/v1/runs/{run}/steps/check/skip"),
            json!({ "reason": "seen" }),
        ),
        (
            "abort",
            vec!["abort", &run, "--reason", "no"],
            format!("/api/v1/runs/{run}/abort"),
            json!({ "reason": "no" }),
        ),
    ];
    for (act, args, path, body) in &acts {
        for (who, rule) in [
            (
                "eve@example.com",
                if *act == "confirm" {
                    "the step's manual.by"
                } else {
                    "execution.performers"
                },
            ),
            ("dana@example.com", "separation_of_duties"),
        ] {
            let out = as_(&sandbox, who, args);
            assert_code(&out, 5, &format!("CLI {act} by {who}"));
            assert!(
                text(&out).contains(rule),
                "CLI {act} by {who} should name {rule}: {}",
                text(&out)
            );
            let token = &tokens.iter().find(|(u, _)| *u == who).expect("token").1;
            let (status, answer) = call(
                &http,
                "POST",
                &server.url(path),
                Some(token),
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, 403, "API {act} by {who}: {answer}");
            assert!(
                answer.to_string().contains(rule),
                "API {act} by {who} should name {rule}: {answer}"
            );
        }
    }
    assert_eq!(
        sandbox.status(&run).state("check"),
        "waiting_manual",
        "no refused act changed the run"
    );

    // The performer in the group confirms; the other acts may still be refused by the run's
    // state (the step is done now), never by a people rule.
    let out = as_(&sandbox, "pat@example.com", &["confirm", &run, "check"]);
    assert_code(&out, 0, "confirm by the performer");
    assert_eq!(sandbox.status(&run).state("check"), "succeeded");
    for (act, args, _, _) in &acts[1..4] {
        let out = as_(&sandbox, "pat@example.com", args);
        assert!(
            RULES.iter().all(|rule| !text(&out).contains(rule)),
            "the performer's {act} was refused by a people rule: {}",
            text(&out)
        );
    }
}
