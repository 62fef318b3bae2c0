//! The README's recipes for reading criteria from query APIs people already pay for — Datadog's
//! metrics query (v1), New Relic's NerdGraph (NRQL) and Grafana's data source query API — run
//! through `backout check REL` against a loopback server that answers each vendor's documented
//! response shape only when the request has the documented method, path, headers and body.
//! The plan's criteria are the README's recipe block itself, the vendor hosts pointed at the
//! server.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{Sandbox, assert_code, stderr, stdout};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The vendor's answer to a request, or a 400 naming what is wrong with it.
fn answer(seen: &Seen) -> (u16, String) {
    let path = seen.target.split('?').next().unwrap_or_default();
    match path {
        "/api/v1/query" => datadog(seen),
        "/graphql" => new_relic(seen),
        "/api/ds/query" => grafana(seen),
        _ => (404, format!("no route {path}")),
    }
}

fn bad(why: String) -> (u16, String) {
    (400, serde_json::json!({ "errors": [why] }).to_string())
}

/// Datadog: `GET /api/v1/query?from=&to=&query=` with `DD-API-KEY` and `DD-APPLICATION-KEY`.
fn datadog(seen: &Seen) -> (u16, String) {
    if seen.method != "GET" {
        return bad(format!("method {}", seen.method));
    }
    if seen.header("DD-API-KEY") != Some("dd-api-key-1")
        || seen.header("DD-APPLICATION-KEY") != Some("dd-app-key-2")
    {
        return (403, r#"{"errors":["Forbidden"]}"#.into());
    }
    let query = seen.target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let url = reqwest::Url::parse(&format!("http://vendor{}", seen.target)).expect("target");
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(from), Some(to), Some(q)) = (param("from"), param("to"), param("query")) else {
        return bad(format!("missing from, to or query in {query}"));
    };
    let (Ok(from), Ok(to)) = (from.parse::<u64>(), to.parse::<u64>()) else {
        return bad(format!("from/to are not Unix seconds: {from} {to}"));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if to.abs_diff(now) > 60 || to - from != 60 {
        return bad(format!(
            "from {from} to {to} is not the last minute (now {now})"
        ));
    }
    if q != "avg:checkout.error_rate{env:production}.rollup(avg, 60)" {
        return bad(format!("query {q}"));
    }
    let body = serde_json::json!({
        "status": "ok",
        "res_type": "time_series",
        "resp_version": 1,
        "query": q,
        "from_date": from * 1000,
        "to_date": to * 1000,
        "series": [{
            "metric": "checkout.error_rate",
            "display_name": "checkout.error_rate",
            "aggr": "avg",
            "scope": "env:production",
            "expression": "avg:checkout.error_rate{env:production}.rollup(avg, 60)",
            "tag_set": [],
            "unit": null,
            "interval": 60,
            "length": 1,
            "start": from * 1000,
            "end": to * 1000 - 1,
            "pointlist": [[(from * 1000) as f64, 0.031]],
            "query_index": 0
        }],
        "message": "",
        "group_by": []
    });
    (200, body.to_string())
}

/// New Relic: `POST /graphql`, `API-Key`, a JSON body whose `query` is a GraphQL query with NRQL.
fn new_relic(seen: &Seen) -> (u16, String) {
    if seen.method != "POST" {
        return bad(format!("method {}", seen.method));
    }
    if seen.header("API-Key") != Some("NRAK-test-key") {
        return (401, r#"{"errors":[{"message":"Invalid API key"}]}"#.into());
    }
    if seen.header("Content-Type") != Some("application/json") {
        return bad(format!("content type {:?}", seen.header("Content-Type")));
    }
    let Ok(json) = serde_json::from_str::<Value>(&seen.body) else {
        return bad(format!("body is not JSON: {}", seen.body));
    };
    let expected = "{ actor { account(id: 1234567) { nrql(query: \"SELECT percentage(count(*), \
                    WHERE error IS true) AS errorRate FROM Transaction WHERE appName = 'checkout' \
                    SINCE 10 minutes ago\") { results } } } }";
    if json["query"] != expected {
        return bad(format!("graphql query {}", json["query"]));
    }
    let body = serde_json::json!({
        "data": { "actor": { "account": { "nrql": { "results": [ { "errorRate": 7.5 } ] } } } }
    });
    (200, body.to_string())
}

/// Grafana: `POST /api/ds/query` with a bearer token and `queries` / `from` / `to`.
fn grafana(seen: &Seen) -> (u16, String) {
    if seen.method != "POST" {
        return bad(format!("method {}", seen.method));
    }
    if seen.header("Authorization") != Some("Bearer glsa_test_token") {
        return (401, r#"{"message":"Unauthorized"}"#.into());
    }
    let Ok(json) = serde_json::from_str::<Value>(&seen.body) else {
        return bad(format!("body is not JSON: {}", seen.body));
    };
    let query = &json["queries"][0];
    if query["refId"] != "A"
        || query["datasource"]["uid"] != "prometheus-prod"
        || json["from"] != "now-5m"
        || json["to"] != "now"
        || !query["expr"]
            .as_str()
            .is_some_and(|e| e.starts_with("histogram_quantile(0.99,"))
    {
        return bad(format!("request {json}"));
    }
    let body = serde_json::json!({
        "results": { "A": { "status": 200, "frames": [ {
            "schema": {
                "refId": "A",
                "meta": { "type": "numeric-multi", "typeVersion": [0, 1] },
                "fields": [
                    { "name": "Time", "type": "time", "typeInfo": { "frame": "time.Time" } },
                    { "name": "Value", "type": "number", "typeInfo": { "frame": "float64" },
                      "labels": {} }
                ]
            },
            "data": { "values": [ [1764662400000u64], [0.42] ] }
        } ] } }
    });
    (200, body.to_string())
}

/// A loopback server answering as the three vendors; returns its base URL and what it saw.
fn vendors() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.trim_end().split_once(':') {
                        let value = value.trim().to_string();
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.parse().unwrap_or(0);
                        }
                        headers.push((name.to_string(), value));
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request = Seen {
                    method,
                    target,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, text) = answer(&request);
                sink.lock().expect("lock").push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    (base, seen)
}

/// The README's three recipes, read from the README itself, with the vendors' hosts pointed at
/// the loopback server.
fn recipes(base: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let section = readme
        .split("### Query APIs you already pay for")
        .nth(1)
        .expect("the README's recipes section");
    let block = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the recipes' yaml block");
    let recipes = block
        .replace("https://api.datadoghq.com", base)
        .replace("https://api.newrelic.com", base)
        .replace("https://grafana.example.com", base);
    format!("{recipes}window: {{ closes_after: 1h }}\n")
}

#[test]
fn datadog_new_relic_and_grafana_recipes_read_through_check() {
    let (base, seen) = vendors();
    let sandbox = Sandbox::new();
    let plan = sandbox.plan("plan.yaml", &recipes(&base));
    let run = |args: &[&str]| {
        sandbox
            .command()
            .env("DD_API_KEY", "dd-api-key-1")
            .env("DD_APPLICATION_KEY", "dd-app-key-2")
            .env("NEW_RELIC_USER_KEY", "NRAK-test-key")
            .env("GRAFANA_TOKEN", "glsa_test_token")
            .args(args)
            .output()
            .expect("backout runs")
    };

    let out = run(&["lint", plan.to_str().unwrap()]);
    assert_code(&out, 0, "the recipes lint clean");

    let out = run(&["start", plan.to_str().unwrap(), "--version", "2.0.0"]);
    assert_code(&out, 0, "start");
    let release = stdout(&out).trim().to_string();
    let out = run(&["check", &release, "--format", "json"]);
    let text = stdout(&out);
    let seen = seen.lock().expect("lock").clone();
    for request in &seen {
        eprintln!("{} {}", request.method, request.target);
    }
    assert_eq!(seen.len(), 3, "one request per recipe: {seen:#?}");
    assert!(
        seen.iter()
            .all(|s| !s.target.starts_with("/api/v1/query") || s.body.is_empty()),
        "the Datadog GET carries no body"
    );
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("check --format json: {e}\n{text}\n{}", stderr(&out)));
    let values = |id: &str| -> Value {
        json["criteria"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no criterion {id} in {json:#}"))
    };
    // Each value read at its recipe's pointer, judged by the criterion's condition; a request
    // the vendor shape refused would show as an `HTTP 4xx` error instead.
    for (id, reason, status) in [
        ("datadog-error-rate", "0.031", "passing"),
        ("newrelic-error-rate", "7.5 is above 5", "tripped"),
        ("grafana-p99", "0.42", "passing"),
    ] {
        let c = values(id);
        assert_eq!(c["state"]["last_reason"], reason, "{id}: {c:#}");
        assert_eq!(c["state"]["status"], status, "{id}: {c:#}");
    }
}
