//! What people receive: a run's notices by webhook and email (with the plan's templates), and
//! PagerDuty, Teams and a signed webhook for one release, each with links to the UI.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_core::clock::SystemClock;
use backout_core::env::Resolver;
use backout_core::notify::{DispatchOptions, Dispatcher};
use backout_core::release::{self, StartRelease};
use backout_core::{Executor, RunOptions};
use backout_store::{DeliveryState, NewEvent, RunKind};
use backout_testkit::{Answer, HttpSink, Request, SmtpSink, install_crypto};
use serde_json::Value;

use crate::fixture::{Fixture, PLAN, Quiet, T, TestClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_notifies_its_channels_by_webhook_and_email() {
    install_crypto();
    let fixture = Fixture::new().await;
    let receiver = HttpSink::start(Answer::status(200));
    let sink = SmtpSink::start();
    let executor = Executor::new(
        fixture.store.clone(),
        Arc::new(SystemClock),
        Resolver::from_vars(Vec::new()),
        Arc::new(Quiet),
    );
    let dispatcher = fixture.dispatcher(
        fixture.store.clone(),
        Arc::new(SystemClock),
        &receiver.url,
        |o| {
            o.delivery.smtp_url = Some(sink.url());
            o.delivery.from = "backout@ops.example.com".into();
            o.poll = Duration::from_millis(20);
        },
    );
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let dispatching = tokio::spawn(async move {
        dispatcher
            .run(
                async {
                    let _ = finished.await;
                },
                move |d| seen.lock().unwrap().push((d.notify_event.clone(), d.state)),
            )
            .await
    });
    let options = RunOptions {
        kind: RunKind::Adhoc,
        environment: "production".into(),
        checkpoints: Vec::new(),
        actor: "carol".into(),
        release_id: None,
        workaround: None,
        wait_for_people: false,
        extra_env: Vec::new(),
        break_glass: None,
    };
    let summary = executor.start(PLAN, &options).await.expect("the run ends");
    assert_eq!(summary.run.state.as_str(), "failed", "`flip` exits 3");
    // The run is over: the dispatcher drains what is due and stops.
    done.send(()).expect("the dispatcher listens");
    dispatching.await.expect("joined").expect("no store error");

    let run_id = summary.run.id.clone();
    let deliveries = fixture
        .store
        .list_deliveries(None, 100)
        .await
        .expect("list");
    assert!(
        deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Delivered),
        "{deliveries:#?}"
    );
    let mut routed: Vec<(String, String)> = deliveries
        .iter()
        .map(|d| (d.notify_event.clone(), d.channel.clone()))
        .collect();
    routed.sort();
    assert_eq!(
        routed,
        [
            ("failed", "mail"),
            ("failed", "ops"),
            ("message", "mail"),
            ("message", "ops"),
            ("started", "ops"),
            ("step_failed", "ops"),
        ]
        .map(|(e, c)| (e.to_string(), c.to_string()))
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.run_id.as_deref() == Some(run_id.as_str()))
    );
    assert_eq!(
        attempts.lock().unwrap().len(),
        6,
        "every attempt was reported"
    );

    // Webhook: one request per delivery.
    let requests = receiver.requests();
    let mut events: Vec<String> = requests
        .iter()
        .map(|r| r.json()["summary"].as_str().unwrap_or("").to_string())
        .collect();
    events.sort();
    // The run's duration is measured (`59ms` below a second, as backout_model::Duration::measured
    // spells it), so only its form is fixed; the rest is compared exactly.
    let took = events[0]
        .strip_prefix(&format!("FAILED {run_id} after "))
        .map(str::to_string)
        .expect("the failed notice's summary");
    assert!(
        backout_model::Duration::parse(&took).is_some(),
        "`{took}` is a duration"
    );
    // The plan's `templates.failed` is the `failed` notice's summary too.
    assert_eq!(
        events,
        [
            format!("FAILED {run_id} after {took}"),
            "checkout in production: Rolling checkout back to 2.3.9".to_string(),
            format!("checkout in production: backout started (run {run_id})"),
            "checkout in production: step flip failed: exit status 3".to_string(),
        ]
    );
    let failed = requests
        .iter()
        .map(Request::json)
        .find(|b| b["event"] == "failed")
        .expect("the failed notice");
    assert_eq!(failed["run"]["id"], run_id.as_str());
    assert_eq!(failed["run"]["state"], "failed");
    assert_eq!(failed["run"]["step"]["id"], "flip");
    assert_eq!(failed["run"]["steps"]["total"], 2);
    assert_eq!(failed["run"]["steps"]["failed"], 1);

    // Email: the notify step's message and the failure, with the plan's template for it.
    let messages = sink.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    let subjects: BTreeSet<String> = messages
        .iter()
        .map(|m| m["headers"]["Subject"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "Backout FAILED: checkout".to_string(),
            "checkout in production: Tell ops the backout starts".to_string(),
        ])
    );
    for m in &messages {
        assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
        assert!(
            m["headers"]["X-Backout-Event-Id"]
                .as_str()
                .unwrap()
                .starts_with("evt-")
        );
    }
    let text_of = |subject: &str| {
        let m = messages
            .iter()
            .find(|m| m["headers"]["Subject"] == subject)
            .expect("the message");
        m["parts"][0]["content"].as_str().unwrap().to_string()
    };
    let failure = text_of("Backout FAILED: checkout");
    assert!(
        failure.contains(&format!("FAILED {run_id} after ")),
        "the plan's template: {failure}"
    );
    let announce = text_of("checkout in production: Tell ops the backout starts");
    assert!(
        announce.starts_with("Rolling checkout back to 2.3.9"),
        "{announce}"
    );
    assert!(
        announce.contains(&format!("backout status {run_id}")),
        "{announce}"
    );
}

/// A plan whose channels are the ones people act on: PagerDuty, Teams, a signed webhook.
const PAGED: &str = r#"
version: 1
release:
  service: checkout
  version: "2.4.0"
  rollback_to: "2.3.9"
  environment: production
  change_ticket: CHG0031415
owners:
  deployment_engineer: de@example.com
people:
  deciders: [alice, bob]
  performers: [carol]
criteria:
  rollback_when:
    - id: error-rate
      title: Error rate of /pay
      command: "true"
      every: 1m
window:
  opens: deploy
  closes_after: 4h
authorization:
  deciders: deciders
  quorum: 1
execution:
  performers: performers
  start_within: 5m
procedure:
  steps:
    - id: flip
      run: "true"
      expected: 1s
      idempotent: true
contingency:
  not_applicable: "nothing to fall back on"
workarounds:
  not_applicable: "no alternative"
expected_duration: 5s
communication:
  channels:
    pager: { pagerduty: { routing_key: "${PD_KEY}", url: "${PD_URL}" } }
    team: { teams: "${TEAMS_HOOK}" }
    audit:
      webhook: "${AUDIT_HOOK}"
      headers: { X-Team: payments, Authorization: "Bearer ${AUDIT_TOKEN}" }
      secret: "${AUDIT_SECRET}"
  notify:
    rollback_required: [pager, team, audit]
    rolled_back: [pager, team, audit]
testing:
  rehearse_in: staging
  max_age: 30d
"#;

#[tokio::test]
async fn pagerduty_teams_and_a_signed_webhook_hear_one_release_with_links_to_the_ui() {
    install_crypto();
    let fixture = Fixture::new().await;
    let (pager, team, audit) = (
        HttpSink::start(Answer::status(200)),
        HttpSink::start(Answer::status(200)),
        HttpSink::start(Answer::status(200)),
    );
    let release = release::start(
        fixture.store.as_ref(),
        &StartRelease {
            source: PAGED,
            version: None,
            rollback_to: None,
            actor: "deploy-bot",
            at_ms: T,
        },
    )
    .await
    .expect("the release starts");
    release::request(
        fixture.store.as_ref(),
        &release.id,
        "customers report failed payments",
        "alice",
        T + 1_000,
    )
    .await
    .expect("the request is journaled");
    let plan = backout_model::lint(PAGED).plan.expect("the plan lints");
    let rolled_back = backout_core::notify::routed(
        &plan,
        NewEvent::new("rolled_back", "backout:verify", T + 60_000).release(&release.id),
    );
    assert_eq!(rolled_back.deliveries.len(), 3, "routed to every channel");
    fixture
        .store
        .append_events(&[rolled_back])
        .await
        .expect("append");

    let resolver = Resolver::from_vars(
        [
            ("PD_KEY", "R0UT1NGKEY"),
            ("PD_URL", pager.url.as_str()),
            ("TEAMS_HOOK", team.url.as_str()),
            ("AUDIT_HOOK", audit.url.as_str()),
            ("AUDIT_TOKEN", "t0k3n"),
            ("AUDIT_SECRET", "shared-s3cret"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let options = DispatchOptions::default()
        .public_url("https://backout.example.com/")
        .expect("a public URL");
    let dispatcher = Dispatcher::new(
        fixture.store.clone(),
        TestClock::at(T + 61_000),
        Arc::new(resolver),
        options,
    )
    .expect("a valid configuration");
    let sent = dispatcher.dispatch_due().await.expect("dispatch");
    assert_eq!(sent.len(), 6, "{sent:#?}");
    assert!(
        sent.iter().all(|d| d.state == DeliveryState::Delivered),
        "{sent:#?}"
    );
    let release_page = format!("https://backout.example.com/ui/releases/{}", release.id);

    // PagerDuty: trigger, then resolve, of one alert per release.
    let mut paged: Vec<Value> = pager.requests().iter().map(Request::json).collect();
    paged.sort_by_key(|p| p["event_action"] != "trigger");
    assert_eq!(paged.len(), 2);
    let (trigger, resolve) = (&paged[0], &paged[1]);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY");
    assert_eq!(trigger["dedup_key"], format!("backout-{}", release.id));
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["custom_details"]["change_ticket"],
        "CHG0031415"
    );
    let hrefs: Vec<&str> = trigger["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["href"].as_str().unwrap())
        .collect();
    assert_eq!(
        hrefs,
        [format!("{release_page}#decide-form"), release_page.clone()]
    );
    assert_eq!(resolve["links"][0]["href"], release_page.as_str());

    // Teams: a card per event, with the release page as a button.
    for card in team.requests().iter().map(Request::json) {
        let content = &card["attachments"][0]["content"];
        assert_eq!(content["type"], "AdaptiveCard");
        assert!(
            content["actions"]
                .as_array()
                .expect("buttons")
                .iter()
                .any(|a| a["url"] == release_page.as_str()),
            "{content}"
        );
    }

    // The webhook: its headers, a signature the shared secret verifies, the change ticket
    // and the links in the JSON.
    let requests = audit.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.header("x-team"), Some("payments"));
        assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
        assert_eq!(
            request.header("x-backout-signature-256"),
            Some(backout_notify::signature("shared-s3cret", &request.body).as_str())
        );
        let body = request.json();
        assert_eq!(body["release"]["change_ticket"], "CHG0031415");
        assert!(
            body["links"]
                .as_array()
                .expect("links")
                .iter()
                .any(|l| l["label"] == "Release" && l["url"] == release_page.as_str()),
            "{body}"
        );
    }
}
