//! Checks answers of `backout serve` against its own OpenAPI document: every JSON body a test
//! receives must match the schema of its operation (method and path template) and status. A
//! small validator over the document's components, for the subset of JSON Schema that utoipa
//! writes: `$ref`, `allOf`/`oneOf`/`anyOf`, `type` (one or a list), `enum`, `const`,
//! `properties`/`required`/`additionalProperties`, `items`, `minimum`.
//!
//! It is stricter than JSON Schema in one way, on purpose: an object whose schema lists its
//! `properties` (and says nothing of `additionalProperties`) may not carry other fields, so a
//! field the server sends but the document does not name fails too.
//!
//! The server's tests hook it into their request helper ([`super::server::call`]); the
//! validator's own tests (including answers that must fail) are in `tests/api_schema.rs`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A parsed OpenAPI document.
pub struct Document {
    root: Value,
}

impl Document {
    pub fn parse(text: &str) -> Result<Document, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("the document is not JSON: {e}"))?;
        if !root["paths"].is_object() {
            return Err("the document has no `paths`".into());
        }
        Ok(Document { root })
    }

    /// Checks `body`, the JSON answer of `method path` with `status`. `path` is the request's
    /// path (no query string); it is matched against the document's path templates.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let Some((template, operation)) = self.operation(method, path) else {
            // The router's own answers to a route it does not have (404) or a method a route
            // does not take (405) are the one error body too.
            if matches!(status, 404 | 405) {
                return self.check_component("ErrorBody", body, &format!("{method} {path}"));
            }
            return Err(format!("{method} {path} is not in the OpenAPI document"));
        };
        let responses = &operation["responses"];
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let response = [code.as_str(), range.as_str(), "default"]
            .iter()
            .find_map(|key| responses.get(*key))
            .ok_or_else(|| {
                format!("{method} {template} answered {status}, which the document does not list")
            })?;
        let response = self.resolve(response)?;
        let schema = response
            .pointer("/content/application~1json/schema")
            .ok_or_else(|| {
                format!(
                    "{method} {template} answered {status} with JSON, but the document gives no \
                     JSON schema for it"
                )
            })?;
        let mut problems = Vec::new();
        self.validate(schema, body, "", &mut problems);
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{method} {template} {status}: the answer does not match the OpenAPI document:\n  {}\n\
             answer: {body}",
            problems.join("\n  ")
        ))
    }

    /// Checks `data`, the data of a server-sent event named `event` of a run's stream, against
    /// the schema the document gives that message (`journal` → `JournalEvent`, `end` →
    /// `StreamEnd`, `resync` → `StreamResync`).
    pub fn check_event(&self, event: &str, data: &Value) -> Result<(), String> {
        let component = match event {
            "journal" => "JournalEvent",
            "end" => "StreamEnd",
            "resync" => "StreamResync",
            other => {
                return Err(format!(
                    "event `{other}` is not a message the document names"
                ));
            }
        };
        self.check_component(component, data, &format!("event `{event}`"))
    }

    /// Checks `value` against the component schema `name`; `what` names it in the error.
    fn check_component(&self, name: &str, value: &Value, what: &str) -> Result<(), String> {
        let schema = self
            .root
            .pointer(&format!("/components/schemas/{name}"))
            .ok_or_else(|| format!("the document has no schema {name}"))?;
        let mut problems = Vec::new();
        self.validate(schema, value, "", &mut problems);
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{what} does not match {name}:\n  {}\nvalue: {value}",
            problems.join("\n  ")
        ))
    }

    /// The operation whose path template matches `path`, preferring literal segments over
    /// parameters.
    fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let method = method.to_lowercase();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.root["paths"].as_object()? {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&segments).all(|(part, segment)| {
                if part.starts_with('{') && part.ends_with('}') {
                    !segment.is_empty()
                } else {
                    literal += 1;
                    part == segment
                }
            });
            let Some(operation) = item.get(&method) else {
                continue;
            };
            if matches && best.as_ref().is_none_or(|(l, _, _)| literal > *l) {
                best = Some((literal, template.as_str(), operation));
            }
        }
        best.map(|(_, template, operation)| (template, operation))
    }

    /// Follows a `$ref` (to any depth); other values are returned as they are.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..32 {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return Ok(value);
            };
            let pointer = reference
                .strip_prefix('#')
                .ok_or_else(|| format!("external $ref {reference}"))?;
            value = self
                .root
                .pointer(pointer)
                .ok_or_else(|| format!("dangling $ref {reference}"))?;
        }
        Err("a $ref cycle".into())
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = match self.resolve(schema) {
            Ok(schema) => schema,
            Err(e) => return problems.push(format!("{}: {e}", place(at))),
        };
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.validate_loose(part, value, at, problems);
            }
            self.check_unknown_fields(schema, value, at, problems);
        }
        for (key, at_most_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(choices) = schema.get(key).and_then(Value::as_array) {
                let mut failures = Vec::new();
                let fitting = choices
                    .iter()
                    .filter(|choice| {
                        let mut found = Vec::new();
                        self.validate(choice, value, at, &mut found);
                        let fits = found.is_empty();
                        failures.extend(found);
                        fits
                    })
                    .count();
                if fitting == 0 {
                    problems.push(format!(
                        "{}: matches none of {key} ({})",
                        place(at),
                        failures.join("; ")
                    ));
                } else if at_most_one && fitting > 1 {
                    problems.push(format!("{}: matches {fitting} of oneOf", place(at)));
                }
            }
        }
        self.validate_own(schema, value, at, problems);
        if schema.get("allOf").is_none() {
            self.check_unknown_fields(schema, value, at, problems);
        }
    }

    /// A part of an `allOf`: everything but the check for unknown fields, which the `allOf`
    /// makes over the fields of all its parts.
    fn validate_loose(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = match self.resolve(schema) {
            Ok(schema) => schema,
            Err(e) => return problems.push(format!("{}: {e}", place(at))),
        };
        self.validate_own(schema, value, at, problems);
    }

    /// The keywords of one schema about the value itself: type, enum, const, required fields,
    /// the fields' and items' schemas, minimum.
    fn validate_own(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        if let Some(types) = schema.get("type") {
            let names: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !names.iter().any(|name| is_type(value, name)) {
                problems.push(format!(
                    "{}: expected {}, found {}",
                    place(at),
                    names.join(" or "),
                    kind(value)
                ));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!(
                "{}: {value} is not one of {}",
                place(at),
                Value::Array(allowed.clone())
            ));
        }
        if let Some(expected) = schema.get("const")
            && expected != value
        {
            problems.push(format!("{}: expected {expected}, found {value}", place(at)));
        }
        if let (Some(minimum), Some(number)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) && number < minimum
        {
            problems.push(format!("{}: {number} is below {minimum}", place(at)));
        }
        if let Some(object) = value.as_object() {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) {
                        problems.push(format!("{}: missing required field `{name}`", place(at)));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, field) in object {
                let inner = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(field_schema) => self.validate(field_schema, field, &inner, problems),
                    None => {
                        if let Some(extra) = schema.get("additionalProperties")
                            && extra.is_object()
                        {
                            self.validate(extra, field, &inner, problems);
                        }
                    }
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{index}]"), problems);
            }
        }
    }

    /// Fails fields that no `properties` of the schema (or of its `allOf` parts) names, unless
    /// the schema allows more (`additionalProperties`) or names no fields at all.
    fn check_unknown_fields(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        let Some(object) = value.as_object() else {
            return;
        };
        let mut known = BTreeSet::new();
        let mut parts = vec![schema];
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            parts.extend(all.iter().filter_map(|part| self.resolve(part).ok()));
        }
        let mut described = false;
        for part in parts {
            if part.get("additionalProperties").is_some_and(|a| a != false) {
                return;
            }
            if let Some(properties) = part.get("properties").and_then(Value::as_object) {
                described = true;
                known.extend(properties.keys().map(String::as_str));
            }
        }
        if !described {
            return;
        }
        for name in object.keys() {
            if !known.contains(name.as_str()) {
                problems.push(format!(
                    "{}: field `{name}` is not in the document",
                    place(at)
                ));
            }
        }
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn place(at: &str) -> &str {
    if at.is_empty() { "the answer" } else { at }
}

/// The documents of the servers a test talks to, by base URL, each read once.
fn documents() -> &'static Mutex<HashMap<String, Arc<Document>>> {
    static DOCUMENTS: std::sync::OnceLock<Mutex<HashMap<String, Arc<Document>>>> =
        std::sync::OnceLock::new();
    DOCUMENTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Panics unless `body`, the JSON answer to `method url` with `status`, matches the document
/// that server serves at `/openapi.json`.
pub async fn assert_documented(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    status: u16,
    body: &Value,
) {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let document = document_of(client, &parsed).await;
    if let Err(problem) = document.check(method, parsed.path(), status, body) {
        panic!("{problem}");
    }
}

/// Panics unless `data`, a message `event` of the stream at `url`, matches the document.
pub async fn assert_event_documented(url: &reqwest::Url, event: &str, data: &Value) {
    let document = document_of(&reqwest::Client::new(), url).await;
    if let Err(problem) = document.check_event(event, data) {
        panic!("{problem}");
    }
}

/// The document of the server at `url`, read once per server.
async fn document_of(client: &reqwest::Client, parsed: &reqwest::Url) -> Arc<Document> {
    let base = format!(
        "{}://{}:{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default(),
        parsed.port_or_known_default().unwrap_or_default()
    );
    let known = documents().lock().expect("documents").get(&base).cloned();
    match known {
        Some(document) => document,
        None => {
            let text = client
                .get(format!("{base}/openapi.json"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("the server serves /openapi.json")
                .text()
                .await
                .expect("the document reads");
            let document = Arc::new(Document::parse(&text).expect("the document parses"));
            documents()
                .lock()
                .expect("documents")
                .insert(base, document.clone());
            document
        }
    }
}
