//! Errors of rendering, delivering and configuring notifications.
//!
//! A delivery error says whether trying again later makes sense: the outbox dispatcher retries
//! only retryable errors and reports the others once. No message names a webhook URL or an SMTP
//! URL, which often carry a secret.

use std::time::Duration;

/// A template that does not parse, or that fails while rendering (an undefined variable, a
/// filter applied to the wrong type, too much work).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TemplateError {
    pub kind: TemplateErrorKind,
    /// The 1-based line in the template source, when known.
    pub line: Option<usize>,
    /// What went wrong, as a lowercase fragment: "`run.duration` is undefined".
    pub detail: String,
    #[source]
    source: minijinja::Error,
}

/// What kind of template problem it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The source does not parse (`check_template` finds these).
    Syntax,
    /// The template prints a variable the notice does not have.
    Undefined,
    /// Anything else that failed while rendering.
    Render,
}

impl TemplateError {
    pub(crate) fn from_minijinja(error: minijinja::Error) -> TemplateError {
        let kind = match error.kind() {
            minijinja::ErrorKind::SyntaxError => TemplateErrorKind::Syntax,
            minijinja::ErrorKind::UndefinedError => TemplateErrorKind::Undefined,
            _ => TemplateErrorKind::Render,
        };
        let detail = match error.detail() {
            Some(detail) => detail.to_owned(),
            None => error.kind().to_string(),
        };
        TemplateError {
            kind,
            line: error.line(),
            detail,
            source: error,
        }
    }

    fn describe(&self) -> String {
        let what = match self.kind {
            TemplateErrorKind::Syntax => "syntax error",
            TemplateErrorKind::Undefined => "undefined variable",
            TemplateErrorKind::Render => "template error",
        };
        match self.line {
            Some(line) => format!("{what} on line {line}: {}", self.detail),
            None => format!("{what}: {}", self.detail),
        }
    }
}

/// One delivery attempt that did not deliver.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Whether the same delivery may succeed later (timeouts, refused connections, 5xx, 429,
    /// transient SMTP replies, a failing command). `false` means retrying cannot help until
    /// someone changes the configuration (a 404 webhook, a rejected recipient, no SMTP server).
    pub retryable: bool,
    /// What happened, one line, without the target's URL.
    pub message: String,
    /// How long the receiver asked us to wait (`Retry-After` in seconds), if it said.
    pub retry_after: Option<Duration>,
}

impl DeliveryError {
    pub(crate) fn retryable(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retryable: true,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            retryable: false,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A [`DeliveryConfig`](crate::DeliveryConfig) that cannot work: an SMTP URL that does not
/// parse, a From address that is not an address, an HTTP client that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
