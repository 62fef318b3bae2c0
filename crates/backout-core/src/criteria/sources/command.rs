//! Commands as criteria: `sh -c` in its own process group, killed at the criterion's timeout.
//!
//! Without conditions the exit status judges (0 passes). With `fails_if`/`passes_if` the last
//! number the command prints on stdout is the value; a command that exits non-zero or prints no
//! number could not be measured, which is a source error, never a pass.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Source, parse_number, snippet};
use crate::criteria::{Observation, Series};
use crate::env::Resolver;
use crate::process::{self, Exit, Program};

/// Time between SIGTERM and SIGKILL at the timeout: short, because a measurement is late already.
const GRACE: Duration = Duration::from_secs(1);

/// One shell command.
pub struct CommandSource {
    script: String,
    numeric: bool,
    resolver: Arc<Resolver>,
    timeout: Duration,
}

impl CommandSource {
    pub fn new(
        script: String,
        numeric: bool,
        resolver: Arc<Resolver>,
        timeout: Duration,
    ) -> CommandSource {
        CommandSource {
            script,
            numeric,
            resolver,
            timeout,
        }
    }
}

#[async_trait]
impl Source for CommandSource {
    async fn observe(&self) -> Observation {
        // Nothing cancels a measurement but its deadline; a dropped sender never fires.
        let (_, cancel) = watch::channel(false);
        // Of backout's environment, only what the plan names (env.rs): the variables the
        // script references as ${VAR}, pass_env and a rehearsal's overrides.
        let env = self
            .resolver
            .passed_env(&crate::env::references(&self.script));
        let outcome = process::run(
            Program::Shell(&self.script),
            &env,
            Some(Instant::now() + self.timeout),
            cancel,
            GRACE,
            None,
        )
        .await;
        let code = match outcome.exit {
            Exit::Code(code) => code,
            Exit::TimedOut => {
                return Observation::Error {
                    message: format!(
                        "timed out after {}; the command was killed",
                        backout_model::Duration(self.timeout)
                    ),
                };
            }
            Exit::Cancelled => {
                return Observation::Error {
                    message: "the command was cancelled".into(),
                };
            }
            Exit::SpawnFailed(why) => {
                return Observation::Error {
                    message: format!("the command could not be started: {why}"),
                };
            }
        };
        let stderr = last_line(&outcome.stderr);
        if !self.numeric {
            let detail = match (code, stderr) {
                (0, _) => "exit 0".to_string(),
                (code, Some(line)) => format!("exit {code}: {line}"),
                (code, None) => format!("exit {code}"),
            };
            return Observation::Judged {
                failing: code != 0,
                detail,
            };
        }
        if code != 0 {
            return Observation::Error {
                message: match stderr {
                    Some(line) => format!("the command exited with {code}: {line}"),
                    None => format!("the command exited with {code}"),
                },
            };
        }
        match last_number(&outcome.stdout) {
            Some(value) => Observation::Values {
                series: vec![Series {
                    labels: Vec::new(),
                    value,
                    baseline: None,
                }],
            },
            None => Observation::Error {
                message: match last_line(&outcome.stdout) {
                    Some(line) => format!("the command printed no number: {line}"),
                    None => "the command printed nothing".into(),
                },
            },
        }
    }
}

/// The last non-empty line of a text, shortened for a message.
fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(snippet)
}

/// The last number in a text: words are split at whitespace and punctuation that cannot be part
/// of a number (`rate=0.3,` gives 0.3). `NaN`, `+Inf` and `-Inf` count, as Prometheus writes them.
fn last_number(text: &str) -> Option<f64> {
    text.split(|c: char| c.is_whitespace() || "=:,;\"'()[]{}<>|".contains(c))
        .rev()
        .filter(|word| {
            matches!(*word, "NaN" | "+Inf" | "-Inf" | "Inf")
                || word
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || "+-.".contains(c))
        })
        .find_map(parse_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_number_in_output() {
        assert_eq!(last_number("12\n"), Some(12.0));
        assert_eq!(
            last_number("checked 3 hosts\nerror_rate=0.25,\n"),
            Some(0.25)
        );
        assert_eq!(last_number("{\"rate\": -1.5e2}"), Some(-150.0));
        assert_eq!(last_number("value +Inf"), Some(f64::INFINITY));
        assert!(last_number("NaN").is_some_and(f64::is_nan));
        assert_eq!(last_number("to infinity and beyond"), None);
        assert_eq!(last_number("v1.2.3 is up"), None);
        assert_eq!(last_number(""), None);
    }

    fn source(script: &str, numeric: bool, timeout: Duration) -> CommandSource {
        let resolver = Resolver::from_vars([
            ("LIMIT".to_string(), "7".to_string()),
            ("UNNAMED".to_string(), "42".to_string()),
        ]);
        CommandSource::new(script.into(), numeric, Arc::new(resolver), timeout)
    }

    #[tokio::test]
    async fn exit_status_judges_without_conditions() {
        let s = source("true", false, Duration::from_secs(5));
        assert_eq!(
            s.observe().await,
            Observation::Judged {
                failing: false,
                detail: "exit 0".into()
            }
        );
        let s = source("echo broken >&2; exit 3", false, Duration::from_secs(5));
        assert_eq!(
            s.observe().await,
            Observation::Judged {
                failing: true,
                detail: "exit 3: broken".into()
            }
        );
    }

    #[tokio::test]
    async fn numbers_from_stdout_with_conditions() {
        let s = source("echo \"limit ${LIMIT}\"", true, Duration::from_secs(5));
        assert_eq!(
            s.observe().await,
            Observation::Values {
                series: vec![Series {
                    labels: Vec::new(),
                    value: 7.0,
                    baseline: None,
                }]
            }
        );
        let s = source("echo ok", true, Duration::from_secs(5));
        assert_eq!(
            s.observe().await,
            Observation::Error {
                message: "the command printed no number: ok".into()
            }
        );
        let s = source("echo 1; exit 2", true, Duration::from_secs(5));
        assert!(matches!(s.observe().await, Observation::Error { .. }));
    }

    #[tokio::test]
    async fn a_variable_the_script_does_not_reference_is_not_passed() {
        // UNNAMED is in backout's environment but the script says `$UNNAMED`, not `${UNNAMED}`.
        let s = source("test -z \"$UNNAMED\"", false, Duration::from_secs(5));
        assert_eq!(
            s.observe().await,
            Observation::Judged {
                failing: false,
                detail: "exit 0".into()
            }
        );
    }

    #[tokio::test]
    async fn timeout_is_an_error_and_kills_the_command() {
        let started = std::time::Instant::now();
        let s = source("sleep 30", false, Duration::from_millis(300));
        assert_eq!(
            s.observe().await,
            Observation::Error {
                message: "timed out after 300ms; the command was killed".into()
            }
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
