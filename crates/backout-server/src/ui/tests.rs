//! The web UI over HTTP without a browser, against a real server on a loopback port with an
//! in-memory SQLite store: redirects to the sign-in page, the session cookie's attributes, the
//! security headers, the CSRF and role checks of forms, escaping of plan text, lint errors with
//! their locations, and a revoked token's session ending at once. The browser story is
//! `crates/backout/tests/browser.rs`.

use std::sync::Arc;

use backout_store::{Role, Store};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};

use crate::ServeOptions;

const PLAN: &str = r#"version: 1
release:
  service: svc
  version: "2.0.0"
  rollback_to: "1.9.0"
  environment: test
  checkpoints: [expand]
owners: { deployment_engineer: owner@example.com }
people:
  ops: [ops@example.com]
criteria:
  rollback_when:
    - { id: errors, title: "<script>alert(1)</script>", command: "true" }
window: { closes_after: 1h }
authorization: { not_applicable: "unit test" }
execution: { not_applicable: "unit test" }
procedure: { not_applicable: "unit test" }
contingency: { not_applicable: "unit test" }
workarounds: { not_applicable: "unit test" }
expected_duration: { not_applicable: "unit test" }
communication: { not_applicable: "unit test" }
testing: { not_applicable: "unit test" }
"#;

struct Served {
    base: String,
    store: Arc<dyn Store>,
    http: reqwest::Client,
    /// Token → the session id its sign-in gave (tests name sessions by their token).
    sessions: std::sync::Mutex<std::collections::HashMap<String, String>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Served {
    async fn start() -> Served {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store: Arc<dyn Store> = Arc::new(
            backout_sqlite::SqliteStore::open("sqlite::memory:")
                .await
                .expect("in-memory store"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            background: false,
            ..ServeOptions::default()
        };
        let served = store.clone();
        tokio::spawn(async move {
            crate::serve(served, listener, options, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        Served {
            base,
            store,
            http,
            sessions: Default::default(),
            _stop: stop,
        }
    }

    async fn token(&self, user: &str, role: Role) -> String {
        crate::auth::create(self.store.as_ref(), user, role, "test", 1)
            .await
            .expect("a token")
            .bearer
    }

    /// The session cookie's value for `token`: signs in once (a token that cannot sign in is
    /// sent as the cookie itself, as an attacker would).
    async fn cookie(&self, token: &str) -> String {
        if let Some(id) = self.sessions.lock().expect("lock").get(token) {
            return id.clone();
        }
        let response = self
            .http
            .post(format!("{}/ui/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", encode(token)))
            .send()
            .await
            .expect("the server answers");
        let Some(id) = session_id(&response) else {
            return token.to_string();
        };
        self.sessions
            .lock()
            .expect("lock")
            .insert(token.to_string(), id.clone());
        id
    }

    async fn get(&self, path: &str, session: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = session {
            let cookie = self.cookie(token).await;
            request = request.header("cookie", format!("backout_session={cookie}"));
        }
        request.send().await.expect("the server answers")
    }

    async fn post(
        &self,
        path: &str,
        session: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        if let Some(token) = session {
            let cookie = self.cookie(token).await;
            request = request.header("cookie", format!("backout_session={cookie}"));
        }
        request.send().await.expect("the server answers")
    }

    /// The CSRF token on a page of `session`.
    async fn csrf(&self, session: &str) -> String {
        let page = self
            .get("/ui/releases", Some(session))
            .await
            .text()
            .await
            .expect("a page");
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).expect("a form with a CSRF field") + marker.len();
        page[start..start + 64].to_string()
    }
}

/// The session id a sign-in's `Set-Cookie` carries.
fn session_id(response: &reqwest::Response) -> Option<String> {
    let cookie = response.headers().get(SET_COOKIE)?.to_str().ok()?;
    let value = cookie.strip_prefix("backout_session=")?.split(';').next()?;
    Some(value.to_string()).filter(|v| !v.is_empty())
}

/// Percent-encodes a form value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether `page` shows `raw` HTML-escaped (askama writes `<` as `&#60;`; either spelling
/// counts).
fn escaped_in(page: &str, raw: &str) -> bool {
    let named = raw.replace('<', "&lt;").replace('>', "&gt;");
    let numeric = raw.replace('<', "&#60;").replace('>', "&#62;");
    page.contains(&named) || page.contains(&numeric)
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_signing_in_sets_a_strict_cookie() {
    let served = Served::start().await;
    let viewer = served.token("vic@example.com", Role::Viewer).await;

    let response = served.get("/ui/releases", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/login");
    let response = served.get("/ui/releases", Some("tok-forged.1234")).await;
    assert_eq!(location(&response), "/ui/login");

    let response = served
        .post("/ui/login", None, &[("token", "tok-nobody.00")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());

    let response = served.post("/ui/login", None, &[("token", &viewer)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/ui/releases");
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    // The cookie is a random session id, not the token.
    let id = session_id(&response).expect("a session id");
    assert_eq!(id.len(), 64, "{cookie}");
    let secret = viewer.split_once('.').expect("tok-ID.SECRET").1;
    assert!(!cookie.contains(secret), "{cookie}");
    // The token itself is no session.
    let response = served
        .http
        .get(format!("{}/ui/releases", served.base))
        .header("cookie", format!("backout_session={viewer}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(location(&response), "/ui/login");

    // A sign-in posted by a page of another site is refused (Origin, or Referer without one);
    // one from this server's own page is not.
    let host = served.base.trim_start_matches("http://").to_string();
    for (header, value, allowed) in [
        ("origin", "https://evil.example".to_string(), false),
        ("origin", "null".to_string(), false),
        ("referer", "https://evil.example/phish".to_string(), false),
        ("origin", format!("http://{host}"), true),
        ("referer", format!("http://{host}/ui/login"), true),
    ] {
        let response = served
            .http
            .post(format!("{}/ui/login", served.base))
            .header(header, &value)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", encode(&viewer)))
            .send()
            .await
            .expect("the server answers");
        let expected = if allowed {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(response.status(), expected, "{header}: {value}");
        assert_eq!(
            session_id(&response).is_some(),
            allowed,
            "{header}: {value}"
        );
    }

    let response = served.get("/ui/releases", Some(&viewer)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .expect("a CSP")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let page = response.text().await.expect("a page");
    assert!(page.contains("vic@example.com"));
    assert!(
        !page.contains("id=\"start\""),
        "a viewer cannot start releases"
    );

    // A request from a page of another site is refused, sign-in included.
    let response = served
        .http
        .post(format!("{}/ui/login", served.base))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={viewer}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Revoked: the next request is sent to the sign-in page and the cookie is dropped.
    let id = viewer.split_once('.').expect("tok-ID.SECRET").0;
    crate::auth::revoke(served.store.as_ref(), id, "admin", 2)
        .await
        .expect("revoked");
    let response = served.get("/ui/releases", Some(&viewer)).await;
    assert_eq!(location(&response), "/ui/login");
    let cleared = response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_their_csrf_token_and_the_role_and_plan_text_is_escaped() {
    let served = Served::start().await;
    let viewer = served.token("vic@example.com", Role::Viewer).await;
    let performer = served.token("ops@example.com", Role::Performer).await;
    let csrf = served.csrf(&performer).await;
    let viewer_csrf = served.csrf(&viewer).await;
    assert_ne!(csrf, viewer_csrf);

    for fields in [
        vec![("plan", PLAN)],
        vec![("plan", PLAN), ("csrf", viewer_csrf.as_str())],
        vec![("plan", PLAN), ("csrf", "0")],
    ] {
        let response = served.post("/ui/releases", Some(&performer), &fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let page = response.text().await.expect("a page");
        assert!(page.contains("CSRF"), "{page}");
    }
    let response = served
        .post(
            "/ui/releases",
            Some(&viewer),
            &[("plan", PLAN), ("csrf", &viewer_csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.expect("a page").contains("viewer"));
    assert!(
        served
            .store
            .list_releases(10)
            .await
            .expect("list")
            .is_empty()
    );

    // An invalid plan comes back with its located diagnostics, escaped.
    let response = served
        .post(
            "/ui/releases",
            Some(&performer),
            &[("plan", "version: 1\n<b>: [\n"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.expect("a page");
    assert!(page.contains("id=\"problems\""), "{page}");
    assert!(escaped_in(&page, "<b>"), "the pasted text is escaped");
    assert!(!page.contains("<b>:"));

    let response = served
        .post(
            "/ui/releases",
            Some(&performer),
            &[("plan", PLAN), ("version", "2.0.1"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let release_page = location(&response).to_string();
    assert!(
        release_page.starts_with("/ui/releases/rel-"),
        "{release_page}"
    );
    let page = served
        .get(&release_page, Some(&viewer))
        .await
        .text()
        .await
        .expect("a page");
    assert!(page.contains("2.0.1"));
    assert!(
        escaped_in(&page, "<script>alert(1)</script>"),
        "plan text is escaped"
    );
    assert!(!page.contains("<script>alert"));

    // The rendered plan is served under a policy without scripts.
    let response = served
        .get(&format!("{release_page}/plan"), Some(&performer))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(
        !response
            .text()
            .await
            .expect("a page")
            .contains("<script>alert")
    );
}

const FAILING: &str = r#"version: 1
release: { service: svc, version: "2.0.0", rollback_to: "1.9.0", environment: test }
owners: { deployment_engineer: owner@example.com }
people:
  ops: [ops@example.com]
criteria: { not_applicable: "unit test" }
window: { not_applicable: "unit test" }
authorization: { not_applicable: "unit test" }
execution: { performers: ops }
procedure:
  steps:
    - { id: migrate, run: "echo 'relation orders_v2 does not exist' >&2; exit 1", expected: 1s }
    - { id: after, needs: [migrate], run: "true", expected: 1s, idempotent: true }
contingency: { not_applicable: "unit test" }
workarounds: { not_applicable: "unit test" }
expected_duration: 1m
communication: { not_applicable: "unit test" }
testing: { not_applicable: "unit test" }
"#;

struct Quiet;

impl backout_core::executor::Progress for Quiet {
    fn event(&self, _: &backout_core::executor::ProgressEvent) {}
}

/// A failed step on the run page: its output is open, a performer of the plan gets Retry and
/// Skip buttons (a viewer none), someone outside `execution.performers` is refused, and a skip
/// with its reason is journaled and lets the run go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_offers_retry_and_skip_to_the_plans_performers() {
    let served = Served::start().await;
    let executor = backout_core::Executor::new(
        served.store.clone(),
        Arc::new(backout_core::clock::SystemClock),
        backout_core::env::Resolver::default(),
        Arc::new(Quiet),
    );
    let options = backout_core::executor::RunOptions {
        kind: backout_store::RunKind::Adhoc,
        environment: "test".into(),
        checkpoints: Vec::new(),
        actor: "ops@example.com".into(),
        release_id: None,
        workaround: None,
        wait_for_people: false,
        extra_env: Vec::new(),
        break_glass: Some("unit test".into()),
    };
    let summary = executor.start(FAILING, &options).await.expect("a run");
    assert_eq!(summary.run.state, backout_store::RunState::Failed);
    let run = summary.run.id;

    let performer = served.token("ops@example.com", Role::Performer).await;
    let outsider = served.token("eve@example.com", Role::Performer).await;
    let viewer = served.token("vic@example.com", Role::Viewer).await;
    let page = served
        .get(&format!("/ui/runs/{run}"), Some(&performer))
        .await
        .text()
        .await
        .expect("a page");
    assert!(page.contains("id=\"retry-migrate\"") && page.contains("id=\"skip-migrate\""));
    assert!(
        page.contains("relation orders_v2 does not exist"),
        "the output is shown"
    );
    let page = served
        .get(&format!("/ui/runs/{run}"), Some(&viewer))
        .await
        .text()
        .await
        .expect("a page");
    assert!(!page.contains("retry-migrate"), "a viewer gets no buttons");

    let skip = format!("/ui/runs/{run}/steps/migrate/skip");
    let csrf = served.csrf(&outsider).await;
    let response = served
        .post(
            &skip,
            Some(&outsider),
            &[("reason", "done by hand"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .expect("a page")
            .contains("execution.performers")
    );
    let csrf = served.csrf(&performer).await;
    let response = served
        .post(
            &skip,
            Some(&performer),
            &[("reason", "done by hand"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let steps = served.store.list_steps(&run).await.expect("steps");
    let migrate = steps.iter().find(|s| s.step_id == "migrate").expect("step");
    assert_eq!(migrate.state, backout_store::StepState::Skipped);
    assert!(
        migrate
            .note
            .as_deref()
            .is_some_and(|n| n.contains("done by hand")),
        "{migrate:?}"
    );
    let run = served.store.get_run(&run).await.expect("run");
    assert_eq!(
        run.state,
        backout_store::RunState::Waiting,
        "reopened for an executor to continue"
    );
}
