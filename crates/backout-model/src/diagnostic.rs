//! Diagnostics: one problem found in a plan, with a stable code, a severity and a location.
//!
//! Every stage (YAML syntax, decoding, semantic lint) reports through this one type so that the
//! human renderer, `--format json` and the HTTP API all carry the same facts. This module knows
//! nothing about how diagnostics are printed.

use serde::Serialize;

/// A region of the plan's source text: byte offsets for excerpts, line and column for people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Span {
    /// Builds a span from a byte offset, computing line and column from the source.
    pub fn at(source: &str, offset: usize, len: usize) -> Span {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Span {
            offset,
            len,
            line,
            column,
        }
    }
}

/// How bad a diagnostic is. Errors make `lint` exit 2; warnings only with `--deny-warnings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// A remark that is neither wrong nor risky, e.g. that some checks were skipped.
    Note,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A diagnostic with the file it is in, as people and tools outside this crate read it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Located<'a> {
    pub file: &'a str,
    pub code: &'a str,
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'a str>,
}

/// One problem in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code such as `B021`; see [`crate::codes`].
    pub code: &'static str,
    pub severity: Severity,
    pub span: Span,
    /// What is wrong, as a lowercase sentence fragment.
    pub message: String,
    /// What to do about it, when there is something useful to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn note(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Note,
            span,
            message: message.into(),
            help: None,
        }
    }

    /// The diagnostic as `backout lint --format json` prints it (and the API answers it): the
    /// file it is in, its line and column (1-based), without byte offsets.
    pub fn located<'a>(&'a self, file: &'a str) -> Located<'a> {
        Located {
            file,
            code: self.code,
            severity: self.severity,
            line: self.span.line.max(1),
            column: self.span.column.max(1),
            message: &self.message,
            help: self.help.as_deref(),
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by position, then code, so output is stable whatever order checks ran in.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.span.offset, a.code, &a.message).cmp(&(b.span.offset, b.code, &b.message))
    });
}

/// "did you mean `x`?" for a misspelt name, when one candidate is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_counts_lines_and_characters() {
        let src = "a: 1\nbé: x\n";
        let s = Span::at(src, src.find('x').unwrap(), 1);
        assert_eq!((s.line, s.column), (2, 5));
    }

    #[test]
    fn did_you_mean_finds_close_names_only() {
        let names = ["closes_after", "closes_at_checkpoint", "opens"];
        assert_eq!(
            did_you_mean("close_after", names).as_deref(),
            Some("did you mean `closes_after`?")
        );
        assert_eq!(did_you_mean("zzz", names), None);
    }
}
