//! Printing for people: colour decided in one place ([`color_stdout`], [`color_stderr`]), from
//! `--color` and, for `auto`, anstream's reading of the terminal, NO_COLOR, CLICOLOR and
//! CLICOLOR_FORCE; diagnostics as caret excerpts (miette), grouped by file.

use std::io::IsTerminal;

use anstream::ColorChoice;
use backout_model::{Diagnostic, Severity};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};

use crate::cli::ColorWhen;

/// Sets the colour choice of the process from `--color`; called once, before anything prints.
pub fn set_color(when: ColorWhen) {
    match when {
        ColorWhen::Auto => ColorChoice::Auto,
        ColorWhen::Always => ColorChoice::Always,
        ColorWhen::Never => ColorChoice::Never,
    }
    .write_global();
}

/// Whether standard output should be coloured: `--color always|never`, else a terminal
/// without NO_COLOR (or anything, with CLICOLOR_FORCE).
pub fn color_stdout() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != ColorChoice::Never
}

/// Whether standard error should be coloured, by the same rules as [`color_stdout`].
pub fn color_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != ColorChoice::Never
}

/// Text made safe for a terminal: control characters and invisible format characters (an
/// ANSI or OSC escape in a step id, a note or an error, a bidirectional override) are shown as
/// `\u{1b}` instead of being obeyed. Line breaks, tabs and the colour sequences backout writes
/// itself (SGR: `ESC [ digits ; … m`) pass. Lint refuses such names in plans (B071); this also
/// covers what comes from the store or from other people (notes, reasons, old plans).
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let obeyed = |c: char| {
        c != '\n'
            && c != '\t'
            && !backout_model::lint::identifiers::printable(c.encode_utf8(&mut [0; 4]))
    };
    if !text.chars().any(obeyed) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(after) = rest.strip_prefix("\x1b[")
        {
            let params = after
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b';')
                .count();
            if after.as_bytes().get(params) == Some(&b'm') {
                let len = 2 + params + 1;
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        if obeyed(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// `text` for standard error: [`terminal_safe`] when it is a terminal.
pub fn for_stderr(text: &str) -> std::borrow::Cow<'_, str> {
    if std::io::stderr().is_terminal() {
        terminal_safe(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Writes to standard output (through [`terminal_safe`] on a terminal; a pipe or file gets the
/// text as it is, so JSON stays JSON). A closed pipe (`backout lint … | head`) ends the process
/// quietly instead of panicking, as other command-line tools do.
pub fn out(text: &str) {
    use std::io::Write;
    let text = if std::io::stdout().is_terminal() {
        terminal_safe(text)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Prints an error that ends the command to standard error.
pub fn error(message: &str) {
    let style = if color_stderr() {
        anstyle::AnsiColor::Red.on_default().bold()
    } else {
        anstyle::Style::new()
    };
    eprintln!("{style}error{style:#}: {}", for_stderr(message));
}

/// Prints a warning to standard error.
pub fn warn(message: &str) {
    let style = if color_stderr() {
        anstyle::AnsiColor::Yellow.on_default().bold()
    } else {
        anstyle::Style::new()
    };
    eprintln!("{style}warning{style:#}: {}", for_stderr(message));
}

/// One diagnostic as miette renders it: header, `file:line:col`, the line with a caret, help.
/// Indexes `source` first: for many diagnostics of one file, build one [`Excerpts`] instead.
pub fn render_diagnostic(diagnostic: &Diagnostic, file: &str, source: &str, color: bool) -> String {
    Excerpts::new(file, source).render(diagnostic, color)
}

/// A plan's text with its line starts indexed once, so that rendering a diagnostic reads only
/// the lines of its excerpt. miette's own `SourceCode` for a string scans from the start of the
/// text for every diagnostic, which made 5,000 warnings take seconds (quadratic).
pub struct Excerpts<'a> {
    file: &'a str,
    source: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl<'a> Excerpts<'a> {
    pub fn new(file: &'a str, source: &'a str) -> Excerpts<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Excerpts {
            file,
            source,
            line_starts,
        }
    }

    /// The diagnostic with its caret excerpt, as [`render_diagnostic`] prints it.
    pub fn render(&self, diagnostic: &Diagnostic, color: bool) -> String {
        let report = Report {
            d: diagnostic,
            src: self,
        };
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1);
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            // miette only fails on a formatter error; fall back to the plain form.
            out = format!(
                "{}:{}:{}: {}: {}\n",
                self.file,
                diagnostic.span.line,
                diagnostic.span.column,
                diagnostic.severity,
                diagnostic.message
            );
        }
        out
    }

    /// The 0-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|start| *start <= offset)
            .saturating_sub(1)
    }
}

impl miette::SourceCode for Excerpts<'_> {
    /// The excerpt's lines only: miette's reader runs on a window of whole lines around the
    /// span (a superset of what it shows), and the result is shifted back to file positions.
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let first = self.line_of(span.offset());
        let last = self.line_of(span.offset() + span.len().saturating_sub(1));
        let window_line = first.saturating_sub(context_lines_before);
        let window_start = self.line_starts[window_line];
        // One line more than needed, so that miette sees the end of the last line it shows.
        let window_end = self
            .line_starts
            .get(last + context_lines_after + 2)
            .copied()
            .unwrap_or(self.source.len());
        let window = &self.source[window_start..window_end];
        let shifted = miette::SourceSpan::new(
            span.offset().saturating_sub(window_start).into(),
            span.len(),
        );
        let inner = window.read_span(&shifted, context_lines_before, context_lines_after)?;
        let data = inner.data();
        let offset = inner.span().offset() + window_start;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.to_string(),
            data,
            miette::SourceSpan::new(offset.into(), inner.span().len()),
            inner.line() + window_line,
            inner.column(),
            inner.line_count() + window_line,
        )))
    }
}

struct Report<'a> {
    d: &'a Diagnostic,
    src: &'a Excerpts<'a>,
}

impl std::fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.d.fmt(f)
    }
}

impl std::fmt::Display for Report<'_> {
    /// `error[B021]: unknown step …`, as compilers print it, so the severity reads without colour.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]: {}",
            self.d.severity, self.d.code, self.d.message
        )
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.d.span;
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some("here".into()),
            span.offset,
            span.len,
        ))))
    }
}

/// A value as pretty JSON for `--format json`; a value that does not serialize is an internal
/// error.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, crate::exit_codes::CommandError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| crate::exit_codes::CommandError::internal(e.to_string()))
}

/// Prints a command's JSON answer (`--format json`) on standard output.
pub fn answer(value: &serde_json::Value) {
    out(&format!("{value}\n"));
}

#[cfg(test)]
mod terminal_tests {
    use super::terminal_safe;

    #[test]
    fn escapes_are_shown_not_obeyed_but_colours_pass() {
        assert_eq!(terminal_safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            terminal_safe("\x1b[1;31mred\x1b[0m"),
            "\x1b[1;31mred\x1b[0m",
            "backout's own colours"
        );
        assert_eq!(
            terminal_safe("a\x1b]0;owned\x07b"),
            "a\\u{1b}]0;owned\\u{7}b"
        );
        assert_eq!(terminal_safe("x\x1b[2Jy"), "x\\u{1b}[2Jy");
        assert_eq!(terminal_safe("bidi\u{202e}"), "bidi\\u{202e}");
    }
}
