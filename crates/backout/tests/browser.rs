//! The web UI end to end, in a real browser: Debian's headless Chromium driven over the W3C
//! WebDriver protocol (ChromeDriver on a loopback port, the small client in `webdriver/`),
//! against the real `backout serve` on a temporary SQLite store, with tokens made by
//! `backout token create`.
//!
//! The story: a performer signs in (the session cookie is `HttpOnly`, `Secure`,
//! `SameSite=Strict`), pastes an invalid plan and sees its diagnostics with line:col, then
//! starts the release from a valid one; the criterion's file is made to fail and the verdict
//! badge turns `rollback_required` without a reload (htmx polls it); two deciders approve
//! (quorum 2); the performer executes and watches the run page follow the steps live until the
//! manual step waits, confirms it with its button, and sees the run succeed live. Besides: a
//! viewer sees the release and no buttons, and a viewer's forged POST is refused; a POST
//! without (or with a wrong) CSRF token is refused; the plan document and the audit page
//! render; a revoked token's cookie stops working at once.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/test` installs them): fails
//! loudly without them. `BACKOUT_BROWSER_SCREENSHOTS=<dir>` saves a PNG of the main pages as a
//! phone-sized window shows them.

mod support;
mod webdriver;

use std::time::Instant;

use support::Sandbox;
use support::server::{Server, token};
use webdriver::{Browser, Driver, client};

const BODY: &str = r#"people:
  release-managers: [carol@example.com, dan@example.com]
  ops-oncall: [erin@example.com]
criteria:
  rollback_when:
    - { id: errors, title: "Checkout errors per minute", command: "cat \"${WORK}/errors\"", fails_if: "> 5", every: 200ms }
window: { closes_after: 1h }
authorization: { deciders: release-managers, quorum: 2, separation_of_duties: true }
execution: { performers: ops-oncall }
procedure:
  steps:
    - { id: drain, run: "sleep 0.5; echo 'drained <ok>'", expected: 1s }
    - { id: confirm-payments, needs: [drain], manual: { by: ops-oncall, instructions: "Place a test order." }, expected: 1m }
    - { id: finish, needs: [confirm-payments], run: "sleep 1.5; echo finished", expected: 2s }
"#;

/// A form POST with a session cookie, as a page of this server would send it (no redirects
/// followed): the status, the `Location` and the body.
async fn post_form(
    server: &Server,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let response = client(false)
        .post(server.url(path))
        .header("cookie", format!("backout_session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            fields
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, location, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_takes_a_release_from_start_to_a_rollback_run_live_in_a_browser() {
    let started = Instant::now();
    let sandbox = Sandbox::new();
    sandbox.write("errors", "0\n");
    let plan = support::plan(BODY);
    let viewer = token(&sandbox, "vic@example.com", "viewer");
    let erin = token(&sandbox, "erin@example.com", "performer");
    let carol = token(&sandbox, "carol@example.com", "decider");
    let dan = token(&sandbox, "dan@example.com", "decider");
    let server = Server::start(&sandbox);
    // The plan's deployment engineer accepts it: the server runs its command criterion and
    // executes it only then.
    let owner = token(&sandbox, "owner@example.com", "viewer");
    support::server::accept(
        &support::server::client(),
        &server.url("/api/v1/plans/accept"),
        &owner,
        &plan,
    )
    .await;
    let driver = Driver::start();
    let browser = Browser::open(&driver).await;

    // Unauthenticated pages lead to the sign-in page; a wrong token is refused there.
    browser.goto(&server.url("/ui/releases")).await;
    assert!(browser.url().await.ends_with("/ui/login"));
    browser.type_into("#token", "tok-nobody.0000").await;
    browser.click_through("#sign-in").await;
    assert!(browser.text("#login-error").await.contains("not valid"));

    // The performer signs in; the cookie is HttpOnly, Secure and SameSite=Strict, and
    // Chromium keeps it on http://127.0.0.1.
    browser.sign_in(&server, &erin).await;
    let cookie = browser.ok("GET", "/cookie/backout_session", None).await;
    assert_eq!(cookie["httpOnly"], true, "{cookie:#}");
    assert_eq!(cookie["secure"], true, "{cookie:#}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie:#}");
    assert_eq!(cookie["path"], "/", "{cookie:#}");
    assert_eq!(browser.text("#me").await, "erin@example.com");

    // An invalid plan comes back with its diagnostics located by line:col; nothing starts.
    browser
        .type_into("#plan", "version: 1\nrelease:\n  service: [unclosed\n")
        .await;
    browser.click_through("#start").await;
    let problems = browser.text("#problems").await;
    let located = problems.split_whitespace().any(|word| {
        word.split_once(':')
            .is_some_and(|(line, col)| line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok())
    });
    assert!(located, "diagnostics with line:col: {problems}");
    assert!(browser.find("#releases").await.is_none(), "nothing started");

    // The valid plan starts a release; its page shows the criterion and the verdict.
    browser.type_into("#plan", &plan).await;
    browser.type_into("#version", "2.0.1").await;
    browser.click_through("#start").await;
    let release = browser.text("#release-id").await;
    assert!(release.starts_with("rel-"), "release id {release}");
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/ui/releases/{release}"))
    );
    browser
        .wait_text("#verdict", "a first healthy verdict", |v| v == "healthy")
        .await;
    assert!(
        browser.find("#request").await.is_some(),
        "a performer may request"
    );
    assert!(
        browser.find("#approve").await.is_none(),
        "a performer does not decide"
    );
    // The forward deployment reaches its first checkpoint (the form offers the plan's).
    browser.click_through("#checkpoint").await;
    assert!(
        browser.text("#checkpoints").await.contains("expand"),
        "the checkpoint is recorded"
    );

    browser.screenshot("1-release-healthy").await;

    // The criterion trips: the badge turns without a reload (htmx refreshes the status),
    // and the chart draws the measurements.
    let heading = browser.get("h1").await;
    sandbox.write("errors", "9\n");
    browser
        .wait_text("#verdict", "the verdict rollback_required", |v| {
            v == "rollback_required"
        })
        .await;
    browser
        .text_of(&heading)
        .await
        .expect("the page was not reloaded: its heading is the same element");
    assert!(
        browser
            .find("[data-criterion=errors] svg polyline")
            .await
            .is_some()
    );
    assert!(
        browser
            .text("[data-criterion=errors]")
            .await
            .contains("tripped")
    );

    browser.screenshot("2-release-tripped").await;

    // The plan document has its own URL.
    let list_csrf = browser.attribute("input[name=csrf]", "value").await;
    browser.click_through("#plan-link").await;
    assert!(browser.source().await.contains("Place a test order."));

    // A viewer sees the release, no buttons; a forged POST is refused by the role check.
    browser.sign_in_again(&server, &viewer).await;
    browser.screenshot("0-releases-as-viewer").await;
    browser
        .goto(&server.url(&format!("/ui/releases/{release}")))
        .await;
    assert_eq!(browser.text("#verdict").await, "rollback_required");
    for button in ["#request", "#approve", "#deny", "#execute", "#checkpoint"] {
        assert!(
            browser.find(button).await.is_none(),
            "a viewer sees no {button}"
        );
    }
    assert!(browser.find("#no-actions").await.is_some());
    let viewer_csrf = browser.attribute("input[name=csrf]", "value").await;
    // The session cookie is a random id, not the token.
    let viewer_session = browser.session().await;
    assert!(!viewer_session.is_empty() && !viewer.contains(&viewer_session));
    let (status, _, body) = post_form(
        &server,
        &format!("/ui/releases/{release}/decide"),
        &viewer_session,
        &[
            ("csrf", &viewer_csrf),
            ("decision", "approve"),
            ("reason", "forged"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("viewer"),
        "the refusal names the role: {body}"
    );

    // Without a CSRF token, or with another session's, a POST is refused.
    for fields in [
        vec![("reason", "no token")],
        vec![
            ("csrf", list_csrf.as_str()),
            ("reason", "someone else's token"),
        ],
    ] {
        let (status, _, body) = post_form(
            &server,
            &format!("/ui/releases/{release}/request"),
            &viewer_session,
            &fields,
        )
        .await;
        assert_eq!(status, 403, "{fields:?}: {body}");
        assert!(body.contains("CSRF"), "{body}");
    }

    // Two deciders approve (quorum 2); each sees the buttons the plan allows them.
    for (decider, expected) in [(&carol, "1 of 2"), (&dan, "approved")] {
        browser.sign_in_again(&server, decider).await;
        browser
            .goto(&server.url(&format!("/ui/releases/{release}")))
            .await;
        browser
            .type_into("#decision-reason", "errors above 5")
            .await;
        browser.click_through("#approve").await;
        browser
            .wait_text("#decision", expected, |d| d.contains(expected))
            .await;
        assert!(
            browser.find("#approve").await.is_none(),
            "one approval each"
        );
        // The core still enforces it, and its refusal is what the person reads.
        let mine = browser.attribute("input[name=csrf]", "value").await;
        let (status, _, body) = post_form(
            &server,
            &format!("/ui/releases/{release}/decide"),
            &browser.session().await,
            &[
                ("csrf", &mine),
                ("decision", "approve"),
                ("reason", "again"),
            ],
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("already approved"), "{body}");
    }

    // The performer executes and follows the run live: steps change state without a reload
    // until the manual step waits for a person.
    browser.sign_in_again(&server, &erin).await;
    browser
        .goto(&server.url(&format!("/ui/releases/{release}")))
        .await;
    browser.click_through("#execute").await;
    let run_url = browser.url().await;
    assert!(
        run_url.contains("/ui/runs/run-"),
        "execute shows the run, not {run_url}:\n{}\n{}",
        browser.source().await,
        server.log()
    );
    let heading = browser.get("h1").await;
    browser
        .wait_text("#live", "the live stream", |t| t == "live")
        .await;
    browser
        .wait_text(
            "#step-confirm-payments .badge",
            "the manual step to wait for a person",
            |s| s == "waiting_manual",
        )
        .await;
    let state = browser.text("#run-state").await;
    assert!(
        state == "running" || state == "waiting",
        "the run is not over: {state}"
    );
    assert_eq!(
        browser.attribute("#step-drain", "data-state").await,
        "succeeded"
    );
    assert!(
        browser.text("#step-drain").await.contains("drained <ok>"),
        "the captured output, escaped and shown"
    );
    browser
        .text_of(&heading)
        .await
        .expect("the run page followed the steps without a reload");

    browser.screenshot("3-run-waiting").await;

    // Confirming the manual step (the form posts, the run page loads again); the last step
    // runs and the run succeeds, live.
    browser.click("#confirm-confirm-payments").await;
    browser
        .wait_stale(&heading, "the confirmation's page")
        .await;
    let heading = browser.get("h1").await;
    browser
        .wait_text("#run-state", "the run to succeed", |s| s == "succeeded")
        .await;
    browser
        .text_of(&heading)
        .await
        .expect("the run's end arrived without a reload");
    assert_eq!(
        browser.attribute("#step-finish", "data-state").await,
        "succeeded"
    );
    browser
        .wait_text("#live", "the stream's end", |t| t == "ended")
        .await;

    // The page draws the run against its plan: a Gantt row per step with its expected and
    // actual bars, the critical path (here every step) marked.
    for step in ["drain", "confirm-payments", "finish"] {
        for bar in ["rect.expected", "rect.actual"] {
            assert!(
                browser
                    .find(&format!(
                        r#"#run-gantt g.critical[data-step="{step}"] {bar}"#
                    ))
                    .await
                    .is_some(),
                "no {bar} for {step} in the run's Gantt:\n{}",
                browser.source().await
            );
        }
    }

    browser.screenshot("4-run-succeeded").await;

    // The audit page verifies the chain.
    browser.goto(&server.url("/ui/audit")).await;
    assert_eq!(browser.text("#chain").await, "chain ok");
    browser.screenshot("5-audit").await;
    assert!(browser.text("#events").await.contains("step_confirmed"));

    // Revoking the viewer's token ends its session at once.
    let id = viewer.split_once('.').expect("tok-ID.SECRET").0;
    support::assert_code(&sandbox.run(&["token", "revoke", id]), 0, "token revoke");
    let response = client(false)
        .get(server.url("/ui/releases"))
        .header("cookie", format!("backout_session={viewer_session}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/ui/login")
    );

    // Signing out removes the session cookie.
    browser.sign_out().await;
    let gone = browser.call("GET", "/cookie/backout_session", None).await;
    assert!(
        matches!(&gone, Err((error, _)) if error == "no such cookie"),
        "the cookie is gone after signing out: {gone:?}"
    );
    browser.close().await;
    assert!(
        !server.log().contains("panicked"),
        "the server log has a panic:\n{}",
        server.log()
    );
    eprintln!("browser story took {:?}", started.elapsed());
}

impl Browser {
    /// The value of the session cookie the browser holds.
    async fn session(&self) -> String {
        let cookie = self.ok("GET", "/cookie/backout_session", None).await;
        cookie["value"].as_str().unwrap_or_default().to_string()
    }

    async fn sign_in(&self, server: &Server, token: &str) {
        self.goto(&server.url("/ui/login")).await;
        self.type_into("#token", token).await;
        self.click_through("#sign-in").await;
        let landed = self.url().await;
        assert!(
            landed.ends_with("/ui/releases"),
            "signing in lands on the releases list, not {landed}:\n{}",
            self.source().await
        );
    }

    async fn sign_out(&self) {
        self.click_through("#sign-out").await;
        let landed = self.url().await;
        assert!(landed.ends_with("/ui/login"), "signed out to {landed}");
    }

    /// Signs out whoever is signed in, then signs in with `token`.
    async fn sign_in_again(&self, server: &Server, token: &str) {
        self.goto(&server.url("/ui/releases")).await;
        if self.find("#sign-out").await.is_some() {
            self.sign_out().await;
        }
        self.sign_in(server, token).await;
    }
}
