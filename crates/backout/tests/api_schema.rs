//! The validator that checks every JSON answer of the server's tests against the generated
//! OpenAPI document (`support/openapi.rs`): answers built from the API's own types pass, and
//! answers that are not what the document says fail, so the check in the tests' request helper
//! can fail.

#[path = "support/openapi.rs"]
#[allow(dead_code)]
mod openapi;

use backout_api as api;
use backout_store::ReleaseState;
use openapi::Document;
use serde_json::{Value, json};

fn document() -> Document {
    Document::parse(backout_server::openapi::json()).expect("the generated document parses")
}

fn status() -> Value {
    let status = api::ReleaseStatus {
        release: api::Release {
            id: "rel-1".into(),
            plan_hash: "ab".into(),
            service: "checkout".into(),
            version: "2.0.1".into(),
            rollback_to: "2.0.0".into(),
            environment: "production".into(),
            actor: "dana@example.com".into(),
            state: ReleaseState::Open,
            opened_at_ms: 1,
            closes_at_ms: Some(5),
            closed_at_ms: None,
            close_reason: None,
            checkpoints: vec![api::Checkpoint {
                name: "traffic-shifted".into(),
                at_ms: 2,
                actor: "dana@example.com".into(),
            }],
        },
        outcome: api::ReleaseOutcome::Open,
        window_closed: false,
        verdict: Some(api::Verdict::Healthy),
        criteria: Some(Vec::new()),
        decision: None,
        plan_checkpoints: Some(api::PlanCheckpoints {
            declared: vec!["traffic-shifted".into()],
            point_of_no_return: None,
        }),
        requested: Some(false),
    };
    serde_json::to_value(status).expect("serializes")
}

#[test]
fn answers_made_of_the_api_types_match_the_document() {
    let document = document();
    document
        .check("GET", "/api/v1/releases/rel-1", 200, &status())
        .expect("a status matches");
    let error = json!({ "error": { "code": "not_found", "message": "no release `x`" } });
    document
        .check("GET", "/api/v1/releases/x", 404, &error)
        .expect("an error matches");
    // A status the operation does not list falls to its `default`: the error body.
    document
        .check("POST", "/api/v1/releases/x/execute", 409, &error)
        .expect("a conflict matches the default");
    // The literal path wins over the template with a parameter.
    let plan_error = json!({ "error": { "code": "invalid_request", "message": "format" } });
    document
        .check("GET", "/api/v1/releases/rel-1/plan", 400, &plan_error)
        .expect("a plan error matches");
}

#[test]
fn answers_that_differ_from_the_document_fail() {
    let document = document();
    let mut missing = status();
    missing
        .as_object_mut()
        .expect("object")
        .remove("window_closed");
    let problem = document
        .check("GET", "/api/v1/releases/rel-1", 200, &missing)
        .expect_err("a missing field fails");
    assert!(problem.contains("window_closed"), "{problem}");

    let mut odd = status();
    odd["state"] = "sideways".into();
    let problem = document
        .check("GET", "/api/v1/releases/rel-1", 200, &odd)
        .expect_err("a state the store does not have fails");
    assert!(problem.contains("sideways"), "{problem}");

    let mut extra = status();
    extra["plan_source"] = "people: {}".into();
    let problem = document
        .check("GET", "/api/v1/releases/rel-1", 200, &extra)
        .expect_err("a field the document does not name fails");
    assert!(problem.contains("plan_source"), "{problem}");

    let mut wrong = status();
    wrong["checkpoints"][0]["at_ms"] = "yesterday".into();
    let problem = document
        .check("GET", "/api/v1/releases/rel-1", 200, &wrong)
        .expect_err("a wrong type deep inside fails");
    assert!(problem.contains(".checkpoints[0].at_ms"), "{problem}");

    let problem = document
        .check("GET", "/api/v1/releases/rel-1", 404, &status())
        .expect_err("a release where an error belongs fails");
    assert!(problem.contains("error"), "{problem}");

    // `/healthz` lists 200 and 503 only: another status is undocumented.
    let problem = document
        .check(
            "GET",
            "/healthz",
            418,
            &json!({ "status": "ok", "events": 1 }),
        )
        .expect_err("an undocumented status fails");
    assert!(problem.contains("418"), "{problem}");

    let problem = document
        .check("GET", "/api/v1/nowhere", 200, &json!({}))
        .expect_err("an undocumented path fails");
    assert!(problem.contains("not in the OpenAPI document"), "{problem}");
    // The router's 404 for a route it does not have is the error body, and nothing else.
    let missing = json!({ "error": { "code": "not_found", "message": "no route GET /nope" } });
    document
        .check("GET", "/nope", 404, &missing)
        .expect("the router's 404 matches the error body");
    let problem = document
        .check("GET", "/nope", 404, &json!({ "missing": true }))
        .expect_err("another 404 body fails");
    assert!(problem.contains("ErrorBody"), "{problem}");
}

#[test]
fn every_operation_documents_its_answers_and_every_reference_resolves() {
    let root: Value =
        serde_json::from_str(backout_server::openapi::json()).expect("the document is JSON");
    let text = backout_server::openapi::json();
    for part in text.split("\"$ref\": \"#").skip(1) {
        let pointer = &part[..part.find('"').expect("closing quote")];
        assert!(root.pointer(pointer).is_some(), "dangling $ref {pointer}");
    }
    for (path, item) in root["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
            assert!(
                operation["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
    }
}
