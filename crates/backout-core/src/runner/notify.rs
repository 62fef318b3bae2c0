//! `notify` steps. The runner only says what is sent; the sending goes through the outbox: the
//! executor commits the step's `step_succeeded` event with one delivery per channel the step
//! names (`notify::route`), and a dispatcher sends them with retries. So the step is done when
//! its message is durably queued, and a crash after that still delivers it.

use async_trait::async_trait;

use super::{Invocation, Outcome, StepRunner};

pub struct NotifyRunner {
    channels: Vec<String>,
    message: Option<String>,
}

impl NotifyRunner {
    pub fn new(channels: Vec<String>, message: Option<String>) -> NotifyRunner {
        NotifyRunner { channels, message }
    }
}

#[async_trait]
impl StepRunner for NotifyRunner {
    async fn run(&self, _inv: Invocation) -> Outcome {
        let message = self.message.as_deref().unwrap_or("(no message)");
        let line = format!("notify [{}]: {message} (queued)", self.channels.join(", "));
        Outcome {
            ok: true,
            stdout: format!("{line}\n"),
            detail: line,
            ..Outcome::default()
        }
    }
}
