//! `run` (sh -c) and `exec` (argv) steps, and command checks: exit code, or a number printed on
//! stdout judged by a condition.

use async_trait::async_trait;
use backout_model::Condition;

use super::{Invocation, Outcome, StepRunner};
use crate::process::{self, Exit, Program};

pub struct CommandRunner {
    program: Prog,
    fails_if: Option<Condition>,
    passes_if: Option<Condition>,
}

enum Prog {
    Shell(String),
    Argv(Vec<String>),
}

impl CommandRunner {
    pub fn shell(script: String) -> CommandRunner {
        CommandRunner {
            program: Prog::Shell(script),
            fails_if: None,
            passes_if: None,
        }
    }

    pub fn argv(argv: Vec<String>) -> CommandRunner {
        CommandRunner {
            program: Prog::Argv(argv),
            fails_if: None,
            passes_if: None,
        }
    }

    /// Judge by a number on stdout instead of the exit code, when a condition is given.
    pub fn judged_by(
        mut self,
        fails_if: Option<Condition>,
        passes_if: Option<Condition>,
    ) -> CommandRunner {
        self.fails_if = fails_if;
        self.passes_if = passes_if;
        self
    }
}

#[async_trait]
impl StepRunner for CommandRunner {
    async fn run(&self, inv: Invocation) -> Outcome {
        // Arguments of `exec` may use ${VAR}; a shell script never is rewritten (its shell
        // expands variables from the environment itself).
        let resolved: Vec<String>;
        let program = match &self.program {
            Prog::Shell(script) => Program::Shell(script),
            Prog::Argv(argv) => {
                match argv
                    .iter()
                    .map(|a| inv.resolver.resolve(a))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(v) => resolved = v,
                    Err(e) => return Outcome::failed(e.to_string()),
                }
                Program::Argv(&resolved)
            }
        };
        let out = process::run(
            program,
            &inv.env,
            inv.deadline,
            inv.cancel,
            process::KILL_GRACE,
            inv.spawned,
        )
        .await;
        let mut outcome = Outcome {
            pgid: out.pgid,
            stdout: out.stdout,
            stderr: out.stderr,
            ..Outcome::default()
        };
        match out.exit {
            Exit::Code(code) => {
                outcome.exit_status = Some(code);
                outcome.ok = code == 0;
                outcome.detail = format!("exit status {code}");
                if code == 0 && (self.fails_if.is_some() || self.passes_if.is_some()) {
                    judge(&mut outcome, self.fails_if, self.passes_if);
                }
            }
            Exit::TimedOut => {
                outcome.timed_out = true;
                outcome.detail = "timed out; its process group was terminated".into();
            }
            Exit::Cancelled => {
                outcome.cancelled = true;
                outcome.detail = "aborted; its process group was terminated".into();
            }
            Exit::SpawnFailed(e) => outcome.detail = format!("could not start: {e}"),
        }
        outcome
    }
}

/// Applies conditions to the last number printed on stdout. Failing wins; neither → not ok.
fn judge(outcome: &mut Outcome, fails_if: Option<Condition>, passes_if: Option<Condition>) {
    let Some(value) = outcome
        .stdout
        .split_whitespace()
        .last()
        .and_then(|t| t.parse::<f64>().ok())
    else {
        outcome.ok = false;
        outcome.detail = "printed no number to judge".into();
        return;
    };
    let fails = fails_if.is_some_and(|c| c.holds(value));
    let passes = passes_if.is_none_or(|c| c.holds(value));
    outcome.ok = !fails && passes;
    outcome.detail = match (fails, passes) {
        (true, _) => format!(
            "value {value} fails `{}`",
            fails_if.map(|c| c.to_string()).unwrap_or_default()
        ),
        (false, false) => format!(
            "value {value} does not pass `{}`",
            passes_if.map(|c| c.to_string()).unwrap_or_default()
        ),
        (false, true) => format!("value {value} passes"),
    };
}
