//! Notifications of a release's lifecycle events (plan section `communication`, Q8).
//!
//! A [`Notice`] says what happened; [`render`] turns it into a [`Message`] (the built-in text of
//! its event, or the plan's override); [`Deliverer::deliver`] sends it once over one channel and
//! says whether a failure is worth retrying.
//!
//! This crate does not choose channels, resolve `${VAR}` references, retry, or remember what was
//! sent: the outbox dispatcher does that with the journal, and gives every delivery the journal
//! event's id as idempotency key, so a receiver can drop the duplicates that retries cause.
//!
//! TLS is rustls with the ring provider only (for webhooks, Slack, PagerDuty, Teams and SMTP), verified against the
//! platform's root certificates.

mod command;
mod email;
mod errors;
mod notice;
mod pagerduty;
mod slack;
mod teams;
mod templates;
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use backout_model::plan::{Channel, ChannelKind, PAGERDUTY_EVENTS_URL};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

pub use errors::{ConfigError, DeliveryError, TemplateError, TemplateErrorKind};
pub use notice::{Link, Notice, ReleaseInfo, WindowInfo};
pub use pagerduty::{action as pagerduty_action, dedup_key as pagerduty_dedup_key};
pub use templates::{Message, NOTICE_FIELDS, check_template, html_of, render, render_body};
pub use webhook::{SIGNATURE_HEADER, signature};

/// `User-Agent` of HTTP deliveries.
pub const USER_AGENT: &str = concat!("backout/", env!("CARGO_PKG_VERSION"));

/// Where one delivery goes: a plan channel with its `${VAR}` references already resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// POST the notice as JSON, with the channel's extra headers, signed with HMAC-SHA256 in
    /// `X-Backout-Signature-256` when the channel has a secret.
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
        secret: Option<String>,
    },
    /// POST a Slack incoming-webhook message.
    Slack(String),
    /// Send an email to these addresses through the configured SMTP server.
    Email(Vec<String>),
    /// Run `sh -c <command>` with the notice as JSON on standard input, in `dir` when given
    /// (a plan's relative paths such as `./bin/page-oncall` need the plan's directory).
    Command {
        command: String,
        dir: Option<PathBuf>,
    },
    /// POST a PagerDuty Events API v2 event (trigger, acknowledge or resolve; one alert per
    /// release).
    PagerDuty { url: String, routing_key: String },
    /// POST a Microsoft Teams Adaptive Card to an incoming webhook.
    Teams(String),
}

impl Target {
    /// A webhook target without headers or signature.
    pub fn webhook(url: impl Into<String>) -> Target {
        Target::Webhook {
            url: url.into(),
            headers: Vec::new(),
            secret: None,
        }
    }

    /// The target of a plan channel. `resolve_url` replaces `${VAR}` references in URLs and
    /// addresses (and may rewrite URLs for a rehearsal); `resolve` replaces them in header
    /// values, the webhook secret and the routing key. A command is left as written: `sh`
    /// expands its references from the environment, so values never become shell text.
    pub fn from_channel<E>(
        channel: &Channel,
        mut resolve_url: impl FnMut(&str) -> Result<String, E>,
        mut resolve: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<Target, E> {
        Ok(match &channel.kind {
            ChannelKind::Webhook(url) => Target::Webhook {
                url: resolve_url(url)?,
                headers: channel
                    .headers
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), resolve(value)?)))
                    .collect::<Result<_, _>>()?,
                secret: channel.secret.as_deref().map(&mut resolve).transpose()?,
            },
            ChannelKind::Slack(url) => Target::Slack(resolve_url(url)?),
            ChannelKind::Email(addresses) => Target::Email(
                addresses
                    .iter()
                    .map(|a| resolve_url(a))
                    .collect::<Result<_, _>>()?,
            ),
            ChannelKind::Command(command) => Target::Command {
                command: command.clone(),
                dir: None,
            },
            ChannelKind::PagerDuty { routing_key, url } => Target::PagerDuty {
                url: resolve_url(url.as_deref().unwrap_or(PAGERDUTY_EVENTS_URL))?,
                routing_key: resolve(routing_key)?,
            },
            ChannelKind::Teams(url) => Target::Teams(resolve_url(url)?),
        })
    }
}

/// How deliveries are made. Read once at startup by the caller (`BACKOUT_SMTP_URL` and the like).
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// The longest one delivery may take: the HTTP request, the SMTP conversation, the command.
    pub timeout: Duration,
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (TLS from the start); user and password may be in the URL. `None`:
    /// email channels fail without retry.
    pub smtp_url: Option<String>,
    /// The From address of emails.
    pub from: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            smtp_url: None,
            from: "backout@localhost".into(),
        }
    }
}

/// What a successful delivery got back, for the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// One line: "HTTP 200", "250 2.0.0 queued as 4F2A", "exit 0".
    pub detail: String,
}

/// Delivers messages. Holds one HTTP client (its connection pool is shared by all webhook and
/// Slack deliveries) and the SMTP transport; cheap to share behind an `Arc`.
pub struct Deliverer {
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    timeout: Duration,
}

impl Deliverer {
    /// Checks the configuration and builds the clients. Nothing connects yet.
    pub fn new(config: DeliveryConfig) -> Result<Deliverer, ConfigError> {
        // The binary installs ring first; a library user that did not gets the same provider
        // instead of a client that cannot be built. An earlier installation stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()
            .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))?;
        let smtp = config
            .smtp_url
            .as_deref()
            .map(|url| email::transport(url, config.timeout))
            .transpose()?;
        let from = config.from.parse::<Mailbox>().map_err(|e| {
            ConfigError(format!(
                "the From address `{}` is invalid: {e}",
                config.from
            ))
        })?;
        Ok(Deliverer {
            http,
            smtp,
            from,
            timeout: config.timeout,
        })
    }

    /// Delivers one message to one target, once. On failure, [`DeliveryError::retryable`] says
    /// whether the dispatcher should try again later.
    pub async fn deliver(
        &self,
        target: &Target,
        notice: &Notice,
        message: &Message,
    ) -> Result<Receipt, DeliveryError> {
        match target {
            Target::Webhook {
                url,
                headers,
                secret,
            } => webhook::deliver(&self.http, url, headers, secret.as_deref(), notice).await,
            Target::PagerDuty { url, routing_key } => {
                pagerduty::deliver(&self.http, url, routing_key, notice, message).await
            }
            Target::Teams(url) => teams::deliver(&self.http, url, notice, message).await,
            Target::Slack(url) => slack::deliver(&self.http, url, notice, message).await,
            Target::Email(to) => {
                let Some(smtp) = &self.smtp else {
                    return Err(DeliveryError::permanent(
                        "no SMTP server is configured (set BACKOUT_SMTP_URL)",
                    ));
                };
                email::deliver(smtp, &self.from, to, notice, message, self.timeout).await
            }
            Target::Command { command, dir } => {
                command::deliver(command, dir.as_deref(), notice, self.timeout).await
            }
        }
    }
}
