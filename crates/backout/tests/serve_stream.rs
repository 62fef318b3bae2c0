//! The live stream of a run (`GET /api/v1/runs/{id}/events`) across a reconnection: a client
//! that comes back with `Last-Event-ID` gets exactly the events after it, in order, without a
//! duplicate or a gap, then the rest live, then `end`. This is what a browser's EventSource
//! does after a dropped connection, and what the `resync` path relies on.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Sandbox;
use support::server::{Server, approved_and_executed, call, client, follow, token};

const BODY: &str = r#"people:
  release-managers: [carol@example.com]
  ops-oncall: [erin@example.com]
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 1 }
execution: { performers: ops-oncall }
procedure:
  max_parallel: 2
  steps:
    - { id: one, run: "true", expected: 1s }
    - { id: two, run: "true", expected: 1s }
    - { id: three, needs: [one, two], run: "true", expected: 1s }
    - { id: gate, needs: [three], manual: { by: ops-oncall, instructions: "Go on." }, expected: 1m }
    - { id: four, needs: [gate], run: "true", expected: 1s }
    - { id: five, needs: [four], run: "true", expected: 1s }
"#;

fn seqs(events: &[(String, Value)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(name, _)| name == "journal")
        .map(|(_, e)| e["seq"].as_u64().expect("a journal event has a seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_gets_every_event_after_its_last_once_and_in_order() {
    let sandbox = Sandbox::new();
    let performer = token(&sandbox, "erin@example.com", "performer");
    let decider = token(&sandbox, "carol@example.com", "decider");
    let server = Server::start(&sandbox);
    let client = client();
    let (_release, run) = approved_and_executed(
        &client,
        &server,
        BODY,
        &performer,
        &decider,
        &token(&sandbox, "owner@example.com", "viewer"),
    )
    .await;
    let events_url = server.url(&format!("/api/v1/runs/{run}/events"));

    // First connection: the history up to the manual step, then the client drops.
    let response = client
        .get(&events_url)
        .bearer_auth(&performer)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    let mut first = Vec::new();
    let mut buffer = String::new();
    let mut response = response;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !first
        .iter()
        .any(|(_, e): &(String, Value)| e["kind"] == "manual_step_waiting")
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("the manual step never waited: {first:?}\n{}", server.log()))
            .expect("the stream reads")
            .expect("the stream stays open while the run waits");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(at) = buffer.find("\n\n") {
            let block: String = buffer.drain(..at + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if !data.is_empty() {
                let value: Value = serde_json::from_str(&data).expect("JSON");
                let url = reqwest::Url::parse(&events_url).expect("a URL");
                support::server::openapi::assert_event_documented(&url, "journal", &value).await;
                first.push(("journal".to_string(), value));
            }
        }
    }
    drop(response);
    let first_seqs = seqs(&first);
    assert!(first_seqs.len() >= 8, "{first_seqs:?}");
    assert!(first_seqs.windows(2).all(|w| w[0] < w[1]), "{first_seqs:?}");

    // Reconnect from the middle of what was read: everything after it, once.
    let resume_after = first_seqs[first_seqs.len() / 2];
    let response = client
        .get(&events_url)
        .bearer_auth(&performer)
        .header("Last-Event-ID", resume_after.to_string())
        .send()
        .await
        .expect("the stream reopens");
    assert_eq!(response.status(), 200);
    let confirm_url = server.url(&format!("/api/v1/runs/{run}/steps/gate/confirm"));
    let mut confirmed = false;
    let second = follow(response, Duration::from_secs(60), async |_, event| {
        if event["kind"] == "manual_step_waiting" && !confirmed {
            confirmed = true;
            let (status, body) = call(
                &client,
                "POST",
                &confirm_url,
                Some(&performer),
                Some(json!({ "note": "looked" })),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    })
    .await;
    let second_seqs = seqs(&second);
    let replayed: Vec<u64> = first_seqs
        .iter()
        .copied()
        .filter(|s| *s > resume_after)
        .collect();
    assert_eq!(
        &second_seqs[..replayed.len()],
        replayed.as_slice(),
        "the reconnection starts right after Last-Event-ID"
    );
    assert!(
        second_seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate: {second_seqs:?}"
    );
    assert!(second_seqs.iter().all(|s| *s > resume_after));
    let (last_name, last) = second.last().expect("events");
    assert_eq!(last_name, "end", "{second:?}");
    assert_eq!(last["state"], "succeeded", "{last}");

    // Nothing was skipped: the two connections together hold the run's whole journal.
    let (status, journal) = call(
        &client,
        "GET",
        &server.url(&format!("/api/v1/runs/{run}")),
        Some(&performer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{journal}");
    let kinds: Vec<&str> = second
        .iter()
        .filter(|(name, _)| name == "journal")
        .filter_map(|(_, e)| e["kind"].as_str())
        .collect();
    for expected in ["step_confirmed", "run_succeeded"] {
        assert!(kinds.contains(&expected), "{expected} missing: {kinds:?}");
    }
    let steps_done = second
        .iter()
        .filter(|(_, e)| e["kind"] == "step_succeeded")
        .filter_map(|(_, e)| e["step_id"].as_str())
        .collect::<Vec<_>>();
    assert!(
        steps_done.contains(&"four") && steps_done.contains(&"five"),
        "{steps_done:?}"
    );
}
