//! How a run looks while it runs: live lines for people (each step's start, end, duration
//! against `expected`, and the manual steps waiting), JSON lines for programs, and the prompt
//! that lets the person at the terminal confirm a manual step.

use std::io::IsTerminal;
use std::sync::Arc;

use backout_core::{Progress, ProgressEvent};
use backout_model::Duration;
use backout_model::schedule::Schedule;
use backout_store::StepState;

use crate::cli::RunFormat;
use crate::commands::context::Context;
use crate::exit_codes::CommandError;
use crate::output;

/// The progress printer for a run of `steps` (the procedure's, or a workaround's).
pub fn printer(
    format: RunFormat,
    steps: &[backout_model::plan::Step],
    prompt: Option<std::sync::mpsc::Sender<(String, String)>>,
) -> Arc<dyn Progress> {
    match format {
        RunFormat::Json => Arc::new(JsonProgress),
        RunFormat::Human => Arc::new(HumanProgress {
            color: crate::output::color_stderr(),
            started: std::time::Instant::now(),
            total: steps.len(),
            done: std::sync::atomic::AtomicUsize::new(0),
            steps: steps
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.needs.clone(),
                        s.expected.unwrap_or_default(),
                    )
                })
                .collect(),
            finished: std::sync::Mutex::new(std::collections::HashSet::new()),
            prompt: prompt.map(std::sync::Mutex::new),
            run_id: std::sync::Mutex::new(String::new()),
            bars: super::bars::Bars::on_terminal(steps.len()),
        }),
    }
}

/// Whether to ask for manual confirmations here: a person at a terminal watching human output.
pub fn interactive(format: RunFormat) -> bool {
    format == RunFormat::Human && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// On a terminal, a manual step is confirmed where the run is watched: the performer reads the
/// instructions, does the work, types `y` (and optionally a note). The confirmation goes through
/// the store exactly like `backout confirm` from another terminal, which works too.
pub fn spawn_prompter(ctx: &Context) -> std::sync::mpsc::Sender<(String, String)> {
    let ctx = ctx.clone();
    spawn_prompter_with(move |run_id, step, note| {
        ctx.runtime().and_then(|rt| {
            rt.block_on(async {
                let store = ctx.open_store().await?;
                let run = store.get_run(run_id).await?;
                backout_core::release::decide::may_act(
                    store.as_ref(),
                    &run,
                    backout_core::release::decide::Act::Confirm(step),
                    &ctx.actor(),
                )
                .await?;
                backout_core::executor::confirm(
                    store.as_ref(),
                    run_id,
                    step,
                    &ctx.actor(),
                    note,
                    ctx.now(),
                )
                .await
                .map_err(CommandError::from)
            })
        })
    })
}

/// The prompt of [`spawn_prompter`] with its own way to confirm (`confirm(run, step, note)`):
/// through the local store, or through a server's API.
pub fn spawn_prompter_with<F>(confirm: F) -> std::sync::mpsc::Sender<(String, String)>
where
    F: Fn(&str, &str, Option<&str>) -> Result<(), CommandError> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<(String, String)>();
    std::thread::spawn(move || {
        for (run_id, step) in rx {
            loop {
                eprint!(
                    "  → type y and Enter when `{step}` is done (text after y is kept as a note): "
                );
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let answer = line.trim();
                if !(answer == "y" || answer.starts_with("y ") || answer == "yes") {
                    eprintln!(
                        "  not confirmed; `{step}` still waits (or confirm it with `backout confirm {run_id} {step}`)"
                    );
                    continue;
                }
                let note = answer
                    .strip_prefix("yes")
                    .or_else(|| answer.strip_prefix('y'))
                    .map(str::trim)
                    .filter(|n| !n.is_empty());
                match confirm(&run_id, &step, note) {
                    Ok(()) => eprintln!("  confirmed `{step}`"),
                    // Someone confirmed it elsewhere meanwhile, or the run ended.
                    Err(e) => eprintln!("  {e}"),
                }
                break;
            }
        }
    });
    tx
}

/// The steps a run executes, or none when the workaround is unknown (the executor says so).
pub fn run_steps(
    plan: &backout_model::Plan,
    workaround: Option<&str>,
) -> Vec<backout_model::plan::Step> {
    backout_core::executor::steps_to_run(plan, workaround).unwrap_or_default()
}

/// One JSON event per line on standard output.
struct JsonProgress;

impl Progress for JsonProgress {
    fn event(&self, event: &ProgressEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            output::out(&format!("{line}\n"));
        }
    }
}

/// One line per event on standard error, with elapsed time against expected.
struct HumanProgress {
    color: bool,
    started: std::time::Instant,
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    /// Where waiting manual steps are sent to be confirmed at this terminal.
    prompt: Option<std::sync::Mutex<std::sync::mpsc::Sender<(String, String)>>>,
    run_id: std::sync::Mutex<String>,
    /// The procedure's steps (id, needs, expected), for the remaining critical path.
    steps: Vec<(String, Vec<String>, Duration)>,
    finished: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Bars under the lines, when standard error is a terminal.
    bars: Option<super::bars::Bars>,
}

impl HumanProgress {
    /// One line on standard error (above the bars, if any).
    fn print(&self, text: &str) {
        let text = crate::output::for_stderr(text);
        match &self.bars {
            Some(bars) => bars.print(&text),
            None => eprintln!("{text}"),
        }
    }

    /// Expected time left: the critical path through the steps not finished yet.
    fn eta(&self, just_finished: &str) -> Option<Duration> {
        let mut finished = self.finished.lock().ok()?;
        finished.insert(just_finished.to_string());
        let tasks: Vec<backout_model::schedule::Task<'_>> = self
            .steps
            .iter()
            .filter(|(id, _, _)| !finished.contains(id))
            .map(|(id, needs, expected)| backout_model::schedule::Task {
                id,
                needs: needs
                    .iter()
                    .filter(|n| !finished.contains(*n))
                    .map(String::as_str)
                    .collect(),
                expected: *expected,
            })
            .collect();
        Some(Schedule::compute(&tasks).total)
    }
}

impl Progress for HumanProgress {
    fn event(&self, event: &ProgressEvent) {
        let style = |c: anstyle::AnsiColor| {
            if self.color {
                c.on_default()
            } else {
                anstyle::Style::new()
            }
        };
        let (green, red, yellow) = (
            style(anstyle::AnsiColor::Green),
            style(anstyle::AnsiColor::Red),
            style(anstyle::AnsiColor::Yellow),
        );
        let at = format!("[{:>7.1}s]", self.started.elapsed().as_secs_f64());
        let expected = |ms: &Option<u64>| {
            ms.map(|ms| format!(" (expected {})", Duration::from_millis(ms)))
                .unwrap_or_default()
        };
        let line = match event {
            ProgressEvent::RunStarted {
                run_id,
                steps,
                resumed,
            } => {
                if let Ok(mut current) = self.run_id.lock() {
                    current.clone_from(run_id);
                }
                format!(
                    "{at} {} run {run_id}: {steps} steps",
                    if *resumed { "resuming" } else { "starting" }
                )
            }
            ProgressEvent::PreconditionFailed { id, detail } => {
                format!("{at} {red}precondition {id} failed{red:#}: {detail}; nothing was run")
            }
            ProgressEvent::StepStarted {
                step,
                attempt,
                expected_ms,
            } => {
                if let Some(bars) = &self.bars {
                    bars.step_started(step, *expected_ms);
                }
                let attempt = if *attempt > 1 {
                    format!(" attempt {attempt}")
                } else {
                    String::new()
                };
                format!("{at} ▶ {step}{attempt}{}", expected(expected_ms))
            }
            ProgressEvent::StepRetrying {
                step,
                attempt,
                detail,
            } => {
                format!(
                    "{at} {yellow}↻ {step}{yellow:#} attempt {attempt} failed: {detail}; retrying"
                )
            }
            ProgressEvent::StepFinished {
                step,
                state,
                detail,
                elapsed_ms,
                expected_ms,
                counted,
            } => {
                let mine = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                // The executor's count knows steps finished before a resume and the steps a
                // contingency branch added; without it, count what this process saw.
                let (n, total) = counted.unwrap_or((mine, self.total.max(mine)));
                let took = Duration::from_millis(*elapsed_ms);
                let (mark, s) = match state {
                    StepState::Succeeded => ("✓", green),
                    StepState::Skipped => ("–", yellow),
                    _ => ("✗", red),
                };
                let detail = if *state == StepState::Succeeded {
                    String::new()
                } else {
                    format!(": {detail}")
                };
                let left = self.eta(step);
                if let Some(bars) = &self.bars {
                    bars.step_ended(step);
                    bars.overall(n, total, left);
                }
                let eta = match left {
                    Some(left) if n < total => format!(", about {left} left"),
                    _ => String::new(),
                };
                format!(
                    "{at} {s}{mark} {step}{s:#} {state} in {took}{}{detail}  [{n}/{total}{eta}]",
                    expected(expected_ms)
                )
            }
            ProgressEvent::StepWaiting {
                step,
                by,
                instructions,
            } => {
                let text = format!(
                    "{at} {yellow}✋ {step}{yellow:#} waits for {by}:\n{}",
                    instructions
                        .lines()
                        .map(|l| format!("           {l}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                if let Some(bars) = &self.bars {
                    bars.step_ended(step);
                    if self.prompt.is_some() {
                        // The person answers at this terminal: no redraws over the prompt.
                        bars.hide();
                    }
                }
                self.print(&text);
                if let Some(prompt) = &self.prompt
                    && let (Ok(prompt), Ok(run_id)) = (prompt.lock(), self.run_id.lock())
                {
                    let _ = prompt.send((run_id.clone(), step.clone()));
                }
                return;
            }
            ProgressEvent::StepInDoubt { step } => {
                format!(
                    "{at} {yellow}? {step}{yellow:#} was running when the executor stopped; it is in doubt until a person resolves it"
                )
            }
            ProgressEvent::RunFinished { .. } => {
                if let Some(bars) = &self.bars {
                    bars.clear();
                }
                return;
            }
            // After the rollback ran, its verification is not silent: each measurement says
            // how long the checks have held so far.
            ProgressEvent::Verification {
                criterion,
                class,
                reason,
                held_ms,
                hold_ms,
            } => {
                let held = Duration::from_millis(*held_ms / 1000 * 1000);
                let hold = Duration::from_millis(*hold_ms);
                let s = if class == "passing" { green } else { yellow };
                format!(
                    "{at} verify_after: {s}{criterion} {class}{s:#} ({reason}); held {held} of {hold}"
                )
            }
        };
        self.print(&line);
    }
}
