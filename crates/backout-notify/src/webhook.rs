//! Webhook deliveries: the notice as JSON in one POST. Slack deliveries use the same request and
//! the same reading of the answer.
//!
//! 2xx is delivered. 408, 429, 5xx, timeouts and connection failures are worth retrying; any other
//! answer (a 404, a 401, a redirect, which is never followed) needs someone to fix the channel.
//! Messages never contain the URL: webhook URLs are often secrets.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode, Url};

use crate::errors::DeliveryError;
use crate::{Notice, Receipt};

/// How much of an error response's body goes into the message.
const BODY_EXCERPT: usize = 200;

/// The header of a signed webhook's signature, GitHub's `X-Hub-Signature-256` under our name.
pub const SIGNATURE_HEADER: &str = "X-Backout-Signature-256";

/// Headers backout sets itself; a channel's `headers` cannot replace them.
const RESERVED: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-backout-signature-256",
];

pub(crate) async fn deliver(
    client: &Client,
    url: &str,
    headers: &[(String, String)],
    secret: Option<&str>,
    notice: &Notice,
) -> Result<Receipt, DeliveryError> {
    let body = notice.to_json();
    let mut all = headers.to_vec();
    if let Some(secret) = secret {
        all.push((SIGNATURE_HEADER.to_owned(), signature(secret, &body)));
    }
    post_json(client, url, &notice.event_id, body, &all).await
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`: what a receiver
/// recomputes over the raw request body and compares, in constant time, with the
/// `X-Backout-Signature-256` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// POSTs a JSON body with the notice's idempotency key (and `headers`, checked here: a name
/// backout sets itself or a value that cannot be a header is a permanent failure naming the
/// header, never its value) and reads the answer.
pub(crate) async fn post_json(
    client: &Client,
    url: &str,
    event_id: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> Result<Receipt, DeliveryError> {
    let url = parse_url(url)?;
    let key = HeaderValue::from_str(event_id).map_err(|_| {
        DeliveryError::permanent("the event id cannot be sent as an Idempotency-Key header")
    })?;
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key);
    for (name, value) in headers {
        let reserved = RESERVED.contains(&name.to_ascii_lowercase().as_str());
        if reserved && !name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
            return Err(DeliveryError::permanent(format!(
                "header `{name}` is set by backout and cannot be given in the channel's headers"
            )));
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            DeliveryError::permanent(format!("`{name}` is not an HTTP header name"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            DeliveryError::permanent(format!(
                "the value of header `{name}` cannot be sent (a line break or control character?)"
            ))
        })?;
        request = request.header(name, value);
    }
    let sent = request.body(body).send().await;
    match sent {
        Ok(response) => judge(response).await,
        Err(error) => Err(request_failed(error)),
    }
}

fn parse_url(url: &str) -> Result<Url, DeliveryError> {
    let parsed = Url::parse(url)
        .map_err(|e| DeliveryError::permanent(format!("the URL does not parse: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(DeliveryError::permanent(format!(
            "the URL must be http or https, not `{other}`"
        ))),
    }
}

async fn judge(mut response: Response) -> Result<Receipt, DeliveryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(Receipt {
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let excerpt = excerpt(&mut response).await;
    let mut message = format!("HTTP {}", status.as_u16());
    if status.is_redirection() {
        message.push_str(" (redirects are not followed: configure the final URL)");
    }
    if !excerpt.is_empty() {
        message.push_str(": ");
        message.push_str(&excerpt);
    }
    Err(DeliveryError {
        retryable: retryable(status),
        message,
        retry_after,
    })
}

/// Whether an HTTP status is worth another attempt later.
pub(crate) fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The first line of the response body, cut short; receivers explain errors there (Slack says
/// `invalid_payload` or `no_service`).
async fn excerpt(response: &mut Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(BODY_EXCERPT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

fn request_failed(error: reqwest::Error) -> DeliveryError {
    if error.is_builder() {
        return DeliveryError::permanent(format!("cannot build the request: {}", causes(error)));
    }
    if error.is_timeout() {
        return DeliveryError::retryable("timed out waiting for the receiver");
    }
    // Connection refused or reset, DNS, TLS: the receiver may be back later.
    DeliveryError::retryable(causes(error))
}

/// The causes of a request error on one line, never the URL. hyper's wrapper ("client error
/// (Connect)") and causes repeating an earlier one add nothing, so they are left out.
fn causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !part.starts_with("client error (") && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = cause.source();
    }
    if text.is_empty() {
        error.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_worth_retrying() {
        for (code, expected) in [
            (400, false),
            (401, false),
            (404, false),
            (408, true),
            (410, false),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
            (301, false),
        ] {
            let status = StatusCode::from_u16(code).expect("a valid status");
            assert_eq!(retryable(status), expected, "status {code}");
        }
    }

    #[test]
    fn signs_like_github() {
        // The example of GitHub's "Validating webhook deliveries" documentation.
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn only_http_urls() {
        assert!(parse_url("https://hooks.example.com/x").is_ok());
        let error = parse_url("file:///etc/passwd").expect_err("file URLs are refused");
        assert!(!error.retryable);
        let error = parse_url("not a url").expect_err("garbage is refused");
        assert!(!error.retryable);
    }
}
