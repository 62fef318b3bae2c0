//! `wait: { for }` steps, and the clear failure of work that cannot be done (a criterion the
//! plan does not have).

use async_trait::async_trait;
use backout_model::plan::Wait;

use super::{Invocation, Outcome, StepRunner};

pub struct WaitRunner {
    wait: Option<Wait>,
    unsupported: Option<&'static str>,
}

impl WaitRunner {
    pub fn new(wait: Wait) -> WaitRunner {
        WaitRunner {
            wait: Some(wait),
            unsupported: None,
        }
    }

    /// A runner that fails with `why`: for work this version cannot do, said plainly.
    pub fn unsupported(why: &'static str) -> WaitRunner {
        WaitRunner {
            wait: None,
            unsupported: Some(why),
        }
    }
}

#[async_trait]
impl StepRunner for WaitRunner {
    async fn run(&self, mut inv: Invocation) -> Outcome {
        let Some(wait) = &self.wait else {
            return Outcome::failed(self.unsupported.unwrap_or("unsupported"));
        };
        match wait {
            Wait::For(duration) => {
                let until = tokio::time::Instant::now() + duration.0;
                let end = inv.deadline.map_or(until, |d| d.min(until));
                tokio::select! {
                    () = tokio::time::sleep_until(end) => {
                        if end < until {
                            Outcome { timed_out: true, detail: "timed out before the wait ended".into(), ..Outcome::default() }
                        } else {
                            Outcome { ok: true, detail: format!("waited {duration}"), ..Outcome::default() }
                        }
                    }
                    _ = inv.cancel.wait_for(|c| *c) => Outcome { cancelled: true, detail: "aborted".into(), ..Outcome::default() },
                }
            }
            // Built as a `CriterionRunner` by `runner::for_step`.
            Wait::Until { criterion, .. } => Outcome::failed(format!(
                "waiting until criterion `{criterion}` passes is measured by the criterion runner"
            )),
        }
    }
}
