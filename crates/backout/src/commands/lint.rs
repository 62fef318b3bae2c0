//! `backout lint PLAN…`: every problem of every plan, for people (repeats of a code summarised
//! unless `--all`), as JSON, or for CI (`--format github|sarif`, see [`ci`]). Plain lint reads nothing
//! but the files; `--evidence` / `--require-tested` also judge each plan against the rehearsal
//! evidence in the store (B084 untested, B085 stale, B086 slower than expected).

mod ci;

use backout_model::diagnostic::Located;
use backout_model::{Diagnostic, Severity, codes, lint};
use serde::Serialize;

use crate::cli::{LintArgs, LintOutput};
use crate::commands::context::Context;
use crate::commands::shared::evidence;
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// One file's summary in `--format json --hash`.
#[derive(Serialize)]
struct JsonFile<'a> {
    file: &'a str,
    hash: Option<&'a str>,
    errors: usize,
    warnings: usize,
}

struct Outcome {
    file: String,
    /// `None` when the file could not be read: there is no text to show excerpts from.
    source: Option<String>,
    diagnostics: Vec<Diagnostic>,
    hash: Option<String>,
    plan: Option<backout_model::Plan>,
}

pub fn run(args: &LintArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let mut outcomes: Vec<Outcome> = args
        .plans
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            match read_plan(path) {
                Ok(source) => {
                    let linted = lint(&source);
                    Outcome {
                        file,
                        source: Some(source),
                        diagnostics: linted.diagnostics,
                        hash: linted.hash,
                        plan: linted.plan,
                    }
                }
                Err(message) => {
                    let d = Diagnostic::error(codes::UNREADABLE, Default::default(), message);
                    Outcome {
                        file,
                        source: None,
                        diagnostics: vec![d],
                        hash: None,
                        plan: None,
                    }
                }
            }
        })
        .collect();
    if (args.evidence || args.require_tested) && !args.offline {
        add_evidence(&mut outcomes, args.require_tested, ctx)?;
    }
    let errors: usize = outcomes
        .iter()
        .map(|o| o.diagnostics.iter().filter(|d| d.is_error()).count())
        .sum();
    let warnings: usize = outcomes
        .iter()
        .map(|o| {
            o.diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Warning)
                .count()
        })
        .sum();
    match args.format {
        LintOutput::Json => print_json(&outcomes, args.hash)?,
        LintOutput::Human => print_human(&outcomes, args.hash, args.all),
        LintOutput::Github => output::out(&ci::github(&located(&outcomes))),
        LintOutput::Sarif => {
            let text = serde_json::to_string_pretty(&ci::sarif(&located(&outcomes)))
                .map_err(|e| CommandError::internal(e.to_string()))?;
            output::out(&format!("{text}\n"));
        }
    }
    Ok(if errors > 0 || (args.deny_warnings && warnings > 0) {
        ExitCode::Usage
    } else {
        ExitCode::Ok
    })
}

/// Adds each valid plan's evidence diagnostics. Without a store there is no evidence, so every
/// plan whose testing applies is untested.
fn add_evidence(
    outcomes: &mut [Outcome],
    require_tested: bool,
    ctx: &Context,
) -> Result<(), CommandError> {
    let now_ms = ctx.now();
    // With BACKOUT_SERVER set, the server's evidence, so a pipeline needs only a token.
    let judge = |o: &mut Outcome, evidence: &[backout_store::Evidence]| {
        let (Some(plan), Some(source)) = (&o.plan, &o.source) else {
            return;
        };
        o.diagnostics.extend(evidence::diagnostics(
            source,
            plan,
            evidence,
            require_tested,
            now_ms,
        ));
        backout_model::diagnostic::sort(&mut o.diagnostics);
    };
    let remote_outcomes = &mut *outcomes;
    if let Some(done) = crate::remote::run(&ctx.global, |remote| async move {
        for o in remote_outcomes.iter_mut() {
            let Some(service) = o.plan.as_ref().map(|p| p.release.service.clone()) else {
                continue;
            };
            let evidence = crate::remote::evidence_of(&remote, &service).await?;
            judge(o, &evidence);
        }
        Ok(())
    }) {
        return done;
    }
    ctx.runtime()?.block_on(async {
        let store = ctx.open_existing().await?;
        for o in outcomes.iter_mut() {
            let Some(service) = o.plan.as_ref().map(|p| p.release.service.clone()) else {
                continue;
            };
            let evidence = match &store {
                Some(store) => evidence::of_service(store.as_ref(), &service).await?,
                None => Vec::new(),
            };
            judge(o, &evidence);
        }
        Ok(())
    })
}

/// Every diagnostic of every file, as the machine formats carry them.
fn located(outcomes: &[Outcome]) -> Vec<Located<'_>> {
    outcomes
        .iter()
        .flat_map(|o| o.diagnostics.iter().map(|d| d.located(&o.file)))
        .collect()
}

fn print_json(outcomes: &[Outcome], with_hash: bool) -> Result<(), CommandError> {
    let diagnostics = located(outcomes);
    let text = if with_hash {
        let files: Vec<JsonFile<'_>> = outcomes
            .iter()
            .map(|o| JsonFile {
                file: &o.file,
                hash: o.hash.as_deref(),
                errors: o.diagnostics.iter().filter(|d| d.is_error()).count(),
                warnings: o
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Warning)
                    .count(),
            })
            .collect();
        serde_json::to_string_pretty(
            &serde_json::json!({ "diagnostics": diagnostics, "files": files }),
        )
    } else {
        serde_json::to_string_pretty(&diagnostics)
    };
    let text = text.map_err(|e| CommandError::internal(e.to_string()))?;
    output::out(&format!("{text}\n"));
    Ok(())
}

/// How many diagnostics of one code a file shows with excerpts before the rest are summarised
/// (nine unanswered questions, say, are all shown).
const SHOWN_PER_CODE: usize = 10;
/// How many line numbers a summary lists.
const SUMMARY_LINES: usize = 12;

/// Diagnostics summarised in one line: code, how many, severity, their distinct lines.
type Hidden = (&'static str, usize, Severity, Vec<usize>);

fn print_human(outcomes: &[Outcome], with_hash: bool, all: bool) {
    let color = output::color_stdout();
    let bold = if color {
        anstyle::Style::new().bold()
    } else {
        anstyle::Style::new()
    };
    let (green, red, yellow) = if color {
        (
            anstyle::AnsiColor::Green.on_default(),
            anstyle::AnsiColor::Red.on_default(),
            anstyle::AnsiColor::Yellow.on_default(),
        )
    } else {
        (
            anstyle::Style::new(),
            anstyle::Style::new(),
            anstyle::Style::new(),
        )
    };
    for o in outcomes {
        // One write per file: thousands of diagnostics are not thousands of flushes.
        let mut text = String::new();
        let excerpts = o
            .source
            .as_deref()
            .map(|source| output::Excerpts::new(&o.file, source));
        let (shown, hidden) = if all {
            (vec![true; o.diagnostics.len()], Vec::new())
        } else {
            group(&o.diagnostics)
        };
        for (d, show) in o.diagnostics.iter().zip(&shown) {
            if !show {
                continue;
            }
            match &excerpts {
                Some(excerpts) => {
                    text.push_str(&excerpts.render(d, color));
                    text.push('\n');
                }
                None => text.push_str(&format!(
                    "{}:{}:{}: {}[{}]: {}\n",
                    o.file,
                    d.span.line.max(1),
                    d.span.column.max(1),
                    d.severity,
                    d.code,
                    d.message
                )),
            }
        }
        for (code, count, severity, lines) in &hidden {
            let listed: Vec<String> = lines
                .iter()
                .take(SUMMARY_LINES)
                .map(ToString::to_string)
                .collect();
            let more = if lines.len() > SUMMARY_LINES {
                ", …"
            } else {
                ""
            };
            text.push_str(&format!(
                "  … and {count} more {code} {severity}s at line{} {}{more} (--all shows each)\n",
                plural(lines.len()),
                listed.join(", "),
            ));
        }
        let errors = o.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = o
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        let status = match (errors, warnings) {
            (0, 0) => format!("{green}ok{green:#}"),
            (0, w) => format!("{yellow}ok with {w} warning{}{yellow:#}", plural(w)),
            (e, w) => format!(
                "{red}{e} error{}{red:#}, {w} warning{}",
                plural(e),
                plural(w)
            ),
        };
        text.push_str(&format!("{bold}{}{bold:#}: {status}\n", o.file));
        if with_hash && let Some(hash) = &o.hash {
            text.push_str(&format!("{hash}  {}\n", o.file));
        }
        output::out(&text);
    }
}

/// Which diagnostics of one file to show with excerpts: the first [`SHOWN_PER_CODE`] of each
/// code (and severity). The rest are summarised per code (code, severity, distinct lines), in
/// the order the codes first appear. Linear in the number of diagnostics.
fn group(diagnostics: &[Diagnostic]) -> (Vec<bool>, Vec<Hidden>) {
    let mut seen: std::collections::HashMap<(&str, Severity), usize> =
        std::collections::HashMap::new();
    let mut hidden: Vec<Hidden> = Vec::new();
    let mut slot: std::collections::HashMap<(&str, Severity), usize> =
        std::collections::HashMap::new();
    let shown = diagnostics
        .iter()
        .map(|d| {
            let key = (d.code, d.severity);
            let n = seen.entry(key).or_default();
            *n += 1;
            if *n <= SHOWN_PER_CODE {
                return true;
            }
            let i = *slot.entry(key).or_insert_with(|| {
                hidden.push((d.code, 0, d.severity, Vec::new()));
                hidden.len() - 1
            });
            hidden[i].1 += 1;
            let lines = &mut hidden[i].3;
            let line = d.span.line.max(1);
            // Sorted by position, so a repeated line is the last one pushed.
            if lines.last() != Some(&line) {
                lines.push(line);
            }
            false
        })
        .collect();
    (shown, hidden)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
