//! Email deliveries over SMTP: one message to all of a channel's addresses, with a plain-text and
//! an HTML alternative.
//!
//! The journal event's id travels as `X-Backout-Event-Id` and inside the `Message-ID`, so a
//! retried delivery carries the same Message-ID and mail systems can recognise the duplicate.
//! Transient trouble (a 4xx reply, a refused or dropped connection, a timeout) is worth
//! retrying; a 5xx reply (unknown recipient, rejected sender) is not.

use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::errors::{ConfigError, DeliveryError};
use crate::{Message, Notice, Receipt};

/// The SMTP transport for a URL: `smtp://` (plain, port 25 by default), `smtp://…?tls=required`
/// (STARTTLS), `smtps://` (implicit TLS).
pub(crate) fn transport(
    url: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, ConfigError> {
    // lettre's error text does not repeat the URL, which may hold a password.
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| ConfigError(format!("the SMTP URL is not usable: {e}")))?;
    Ok(builder.timeout(Some(timeout)).build())
}

pub(crate) async fn deliver(
    smtp: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    to: &[String],
    notice: &Notice,
    message: &Message,
    timeout: Duration,
) -> Result<Receipt, DeliveryError> {
    if to.is_empty() {
        return Err(DeliveryError::permanent("the channel lists no addresses"));
    }
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(message.subject.clone())
        .message_id(Some(message_id(&notice.event_id, from)))
        .header(EventId(header_safe(&notice.event_id)));
    for address in to {
        let mailbox = address.parse::<Mailbox>().map_err(|e| {
            DeliveryError::permanent(format!("`{address}` is not an email address: {e}"))
        })?;
        builder = builder.to(mailbox);
    }
    let email = builder
        .multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ))
        .map_err(|e| DeliveryError::permanent(format!("cannot build the email: {e}")))?;

    // lettre's timeout bounds each read and write; this bounds the whole conversation.
    match tokio::time::timeout(timeout, smtp.send(email)).await {
        Err(_) => Err(DeliveryError::retryable(
            "timed out talking to the SMTP server",
        )),
        Ok(Ok(response)) => Ok(Receipt {
            detail: format!(
                "{} {}",
                response.code(),
                response.message().next().unwrap_or("accepted")
            ),
        }),
        Ok(Err(error)) => Err(classify(&error)),
    }
}

fn classify(error: &lettre::transport::smtp::Error) -> DeliveryError {
    let message = format!("SMTP: {error}");
    // A 5xx reply is the server's final word; a TLS failure is a certificate or a port that
    // does not speak TLS, which retrying does not change. Internal client errors likewise.
    let retryable = !(error.is_permanent() || error.is_tls() || error.is_client());
    DeliveryError {
        retryable,
        message,
        retry_after: None,
    }
}

/// `<event-id@from-domain>`, with characters a Message-ID cannot hold written as `=XX`.
fn message_id(event_id: &str, from: &Mailbox) -> String {
    let mut local = String::new();
    for byte in event_id.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_+".contains(&byte) {
            local.push(byte as char);
        } else {
            local.push_str(&format!("={byte:02X}"));
        }
    }
    let domain = from.email.domain();
    format!("<backout.{local}@{domain}>")
}

/// Header values cannot hold line breaks (they would start a new header).
fn header_safe(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// `X-Backout-Event-Id`: the journal event this email is about.
#[derive(Clone, Debug)]
struct EventId(String);

impl Header for EventId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Backout-Event-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(EventId(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_keep_safe_characters_and_encode_the_rest() {
        let from: Mailbox = "backout@example.com".parse().expect("a valid address");
        assert_eq!(
            message_id("rel-42.7", &from),
            "<backout.rel-42.7@example.com>"
        );
        assert_eq!(
            message_id("a/b c", &from),
            "<backout.a=2Fb=20c@example.com>"
        );
    }

    #[test]
    fn urls_that_lettre_does_not_know_are_config_errors() {
        assert!(transport("smtp://127.0.0.1:2525", Duration::from_secs(1)).is_ok());
        assert!(transport("smtps://mail.example.com", Duration::from_secs(1)).is_ok());
        assert!(
            transport(
                "smtp://mail.example.com?tls=required",
                Duration::from_secs(1)
            )
            .is_ok()
        );
        assert!(transport("http://mail.example.com", Duration::from_secs(1)).is_err());
    }
}
