//! `backout lint PLAN…`: every problem of every plan, human or JSON. Plain lint reads nothing
//! but the files; `--evidence` / `--require-tested` also judge each plan against the rehearsal
//! evidence in the store (B084 untested, B085 stale, B086 slower than expected).

use backout_model::diagnostic::Located;
use backout_model::{Diagnostic, Severity, codes, lint};
use serde::Serialize;

use crate::cli::{Global, LintArgs, LintFormat};
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

pub fn run(args: &LintArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let mut outcomes: Vec<Outcome> = args
        .plans
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            match super::read_plan(path) {
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
        add_evidence(&mut outcomes, args.require_tested, global)?;
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
        LintFormat::Json => print_json(&outcomes, args.hash)?,
        LintFormat::Human => print_human(&outcomes, args.hash),
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
    global: &Global,
) -> Result<(), CommandError> {
    super::runs::runtime()?.block_on(async {
        let store = super::evidence::open_existing(global).await?;
        for o in outcomes.iter_mut() {
            let (Some(plan), Some(source)) = (&o.plan, &o.source) else {
                continue;
            };
            let evidence = match &store {
                Some(store) => {
                    super::evidence::of_service(store.as_ref(), &plan.release.service).await?
                }
                None => Vec::new(),
            };
            o.diagnostics.extend(super::evidence::diagnostics(
                source,
                plan,
                &evidence,
                require_tested,
            ));
            backout_model::diagnostic::sort(&mut o.diagnostics);
        }
        Ok(())
    })
}

fn print_json(outcomes: &[Outcome], with_hash: bool) -> Result<(), CommandError> {
    let diagnostics: Vec<Located<'_>> = outcomes
        .iter()
        .flat_map(|o| o.diagnostics.iter().map(|d| d.located(&o.file)))
        .collect();
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

fn print_human(outcomes: &[Outcome], with_hash: bool) {
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
        for d in &o.diagnostics {
            if let Some(source) = &o.source {
                output::out(&format!(
                    "{}\n",
                    output::render_diagnostic(d, &o.file, source, color)
                ));
            } else {
                output::out(&format!(
                    "{}:{}:{}: {}[{}]: {}\n",
                    o.file,
                    d.span.line.max(1),
                    d.span.column.max(1),
                    d.severity,
                    d.code,
                    d.message
                ));
            }
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
        output::out(&format!("{bold}{}{bold:#}: {status}\n", o.file));
        if with_hash && let Some(hash) = &o.hash {
            output::out(&format!("{hash}  {}\n", o.file));
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
