//! The router against its table and the OpenAPI document: every route of [`ROUTES`] answers
//! (401 without a token under `/api/v1`, not the router's 404 or 405), the document lists
//! exactly those routes with those methods, and errors made outside the handlers are JSON too.

use std::sync::Arc;

use backout_server::{ROUTES, ServeOptions, openapi};
use backout_store::Store;
use serde_json::Value;

async fn server() -> (
    String,
    Arc<dyn Store>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let store: Arc<dyn Store> = Arc::new(
        backout_sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .expect("in-memory store"),
    );
    let served = store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let base = format!("http://{}", listener.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        background: false,
        ..ServeOptions::default()
    };
    let task = tokio::spawn(async move {
        backout_server::serve(served, listener, options, async {
            let _ = stopped.await;
        })
        .await
        .expect("serves");
    });
    (base, store, stop, task)
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "x-1").replace("{step}", "s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_the_openapi_document_lists_exactly_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, _store, stop, task) = server().await;
    let client = reqwest::Client::new();
    for (method, path) in ROUTES {
        let url = format!("{base}{}", concrete(path));
        let request = match *method {
            "GET" => client.get(&url),
            "POST" => client.post(&url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        if path.starts_with("/api/v1/") {
            assert_eq!(status, 401, "{method} {path} without a token");
            let body: Value = response.json().await.expect("JSON error");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        } else {
            assert_eq!(status, 200, "{method} {path}");
        }
    }

    let served: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("JSON");
    let generated: Value = serde_json::from_str(openapi::json()).expect("the document is JSON");
    assert_eq!(served, generated);
    assert_eq!(served["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in served["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(
        documented, routed,
        "the OpenAPI document and the router differ"
    );
    // Each operation is generated from a typed handler: its JSON answers name a component
    // schema (never an ad-hoc object), its failures the one error body, and every `/api/v1`
    // operation says the least role it needs (serve_matrix holds the server to it).
    for (path, item) in served["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let what = format!("{} {path}", method.to_uppercase());
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let Some(schema) = response.pointer("/content/application~1json/schema") else {
                    continue;
                };
                if path == "/openapi.json" {
                    continue;
                }
                let reference = schema["$ref"].as_str().unwrap_or_default();
                assert!(
                    reference.starts_with("#/components/schemas/"),
                    "{what} {status}: {schema}"
                );
                if !status.starts_with('2') {
                    assert_eq!(
                        reference, "#/components/schemas/ErrorBody",
                        "{what} {status}"
                    );
                }
            }
            if path.starts_with("/api/v1/") {
                assert!(
                    responses.contains_key("default"),
                    "{what}: no default error"
                );
                assert!(responses.contains_key("401"), "{what}: no 401");
                let role = operation["x-backout-role"].as_str().unwrap_or_default();
                assert!(
                    ["viewer", "performer", "decider", "admin"].contains(&role),
                    "{what}: x-backout-role `{role}`"
                );
            } else {
                assert_eq!(
                    operation["security"],
                    serde_json::json!([]),
                    "{what} needs no token"
                );
            }
        }
    }

    // Every $ref resolves.
    let text = openapi::json();
    for part in text.split("\"$ref\": \"#/").skip(1) {
        let pointer = format!("/{}", &part[..part.find('"').expect("closing quote")]);
        assert!(
            served.pointer(&pointer).is_some(),
            "dangling $ref {pointer}"
        );
    }

    // Errors made by the router itself are JSON with a code.
    let missing = client
        .get(format!("{base}/nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    let wrong = client
        .delete(format!("{base}/healthz"))
        .send()
        .await
        .expect("405");
    assert_eq!(wrong.status().as_u16(), 405);
    let body: Value = wrong.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let _ = stop.send(());
    task.await.expect("the server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_and_revoked_tokens_are_refused_in_json() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, store, stop, task) = server().await;
    let admin = backout_server::auth::create(
        store.as_ref(),
        "root@example.com",
        backout_store::Role::Admin,
        "test",
        1_732_000_000_000,
    )
    .await
    .expect("a token");
    let client = reqwest::Client::new();
    let huge = serde_json::json!({ "plan": "#".repeat(2 * 1024 * 1024) });
    let response = client
        .post(format!("{base}/api/v1/releases"))
        .bearer_auth(&admin.bearer)
        .json(&huge)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_large", "{body}");

    let response = client
        .get(format!("{base}/api/v1/releases"))
        .bearer_auth(&admin.bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    backout_server::auth::revoke(store.as_ref(), &admin.record.id, "test", 1_732_000_000_001)
        .await
        .expect("revoked");
    let response = client
        .get(format!("{base}/api/v1/releases"))
        .bearer_auth(&admin.bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("revoked")),
        "{body}"
    );
    let _ = stop.send(());
    task.await.expect("the server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_address_leads_to_the_web_ui() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, _store, stop, task) = server().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let root = client.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(root.status().as_u16(), 303, "GET / redirects");
    assert_eq!(
        root.headers().get("location").and_then(|l| l.to_str().ok()),
        Some("/ui")
    );
    // Followed, it ends on a page of the UI (the login page without a session), not a 404.
    let followed = reqwest::Client::new()
        .get(format!("{base}/"))
        .send()
        .await
        .expect("GET / followed");
    assert_eq!(followed.status().as_u16(), 200);
    assert!(
        followed.url().path().starts_with("/ui/"),
        "{}",
        followed.url()
    );
    let _ = stop.send(());
    task.await.expect("the server stops");
}
