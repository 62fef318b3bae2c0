//! `lint`: from plan text to every diagnostic at once, and a validated [`Plan`] when there are
//! no errors.
//!
//! Stages: YAML syntax (stops at the first syntax error; the text cannot be read past it), typed
//! decoding (collects every unknown field, wrong type and missing field), then the semantic
//! checks in this folder, one file per family. When decoding had to drop a broken value, checks
//! that resolve references are skipped (they would report false problems) and a note says so.

mod baseline;
mod criteria;
pub mod evidence;
pub mod identifiers;
mod on_error;
mod people;
mod queries;
mod questions;
mod references;
mod sealed;
mod secrets;
mod steps;
mod templates;
mod testing;
mod timing;

use crate::codes;
use crate::convert;
use crate::decode::{Decode, Decoder, Section, Spanned};
use crate::diagnostic::{self, Diagnostic, Span};
use crate::hash::content_hash;
use crate::plan::Plan;
use crate::spec::{PlanSpec, StepSpec};
use crate::yaml::{self, Value};

pub use evidence::{EvidencePolicy, Rehearsed, check_evidence};

/// The outcome of linting one plan text.
#[derive(Debug)]
pub struct Linted {
    /// The validated plan, present exactly when there are no errors.
    pub plan: Option<Plan>,
    /// Errors, warnings and notes, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The canonical content hash, whenever the YAML parsed.
    pub hash: Option<String>,
}

impl Linted {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
    pub fn warnings(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == diagnostic::Severity::Warning)
            .count()
    }
}

/// Lints a plan's text. Never panics, whatever the input.
pub fn lint(source: &str) -> Linted {
    let (root, duplicates) = match yaml::parse(source) {
        Ok(doc) => (doc.root, doc.duplicates),
        Err(d) => {
            return Linted {
                plan: None,
                diagnostics: vec![d],
                hash: None,
            };
        }
    };
    let hash = Some(content_hash(&root));
    match &root.value {
        Value::Map(_) => {}
        Value::Null => {
            let d = Diagnostic::error(codes::WRONG_TYPE, root.span, "the plan is empty")
                .with_help("run `backout init` for a commented skeleton to fill in");
            return Linted {
                plan: None,
                diagnostics: vec![d],
                hash,
            };
        }
        other => {
            let d = Diagnostic::error(
                codes::WRONG_TYPE,
                root.span,
                format!(
                    "expected a plan (a mapping of sections such as `release:`), found {}",
                    other.describe()
                ),
            )
            .with_help("run `backout init` for a commented skeleton to fill in");
            return Linted {
                plan: None,
                diagnostics: vec![d],
                hash,
            };
        }
    }
    let mut decoder = Decoder::new(source);
    decoder.diagnostics = duplicates;
    let spec = PlanSpec::decode(&root, &mut decoder);
    let mut checker = Checker {
        diagnostics: decoder.diagnostics,
        resolve: !decoder.incomplete,
        source,
    };
    secrets::check(&root, &mut checker);
    identifiers::check(&root, &mut checker);
    let mut plan = None;
    if let Some(spec) = spec {
        checker.check(&spec, &root);
        if !checker.diagnostics.iter().any(Diagnostic::is_error) {
            plan = convert::plan(&spec);
        }
    }
    let resolved = checker.resolve;
    let mut diagnostics = checker.diagnostics;
    // Problems of the file as a whole (a missing section) point at its first line.
    for d in &mut diagnostics {
        if d.span.line == 0 {
            d.span = Span::at(source, 0, 0);
        }
    }
    diagnostic::sort(&mut diagnostics);
    if !resolved {
        // Last, after the errors it refers to, and pointing at the end of the file.
        diagnostics.push(
            Diagnostic::note(
                codes::CHECKS_SKIPPED,
                Span::at(source, source.len(), 0),
                "references between steps, criteria, people and channels were not checked",
            )
            .with_help("fix the errors above and lint again to see the rest"),
        );
    }
    Linted {
        plan,
        diagnostics,
        hash,
    }
}

/// Runs the semantic checks over a decoded spec.
pub(crate) struct Checker<'s> {
    pub diagnostics: Vec<Diagnostic>,
    /// False when decoding dropped values: reference checks would be unreliable.
    pub resolve: bool,
    /// The plan's text, to place a diagnostic inside a string value (a PromQL query, a template).
    pub source: &'s str,
}

/// A list of steps that forms one graph: the procedure, a contingency branch or a workaround.
pub(crate) struct StepList<'a> {
    /// How the list is named in messages: "the procedure", "contingency `restore-db`".
    pub label: String,
    /// Lists in the same namespace share step ids (the procedure and its contingencies run in
    /// one run); each workaround is a namespace of its own.
    pub namespace: usize,
    pub steps: &'a [Spanned<StepSpec>],
    pub is_procedure: bool,
}

impl Checker<'_> {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn check(&mut self, spec: &PlanSpec, root: &yaml::Node) {
        questions::check(spec, root, self);
        let lists = step_lists(spec);
        steps::check(spec, &lists, self);
        criteria::check(spec, self);
        people::check(spec, self);
        timing::check(spec, self);
        testing::check(spec, self);
        sealed::check(spec, self);
        on_error::check(spec, self);
        queries::check(spec, self);
        templates::check(spec, self);
        if self.resolve {
            references::check(spec, &lists, self);
        }
        if self.resolve && !self.diagnostics.iter().any(Diagnostic::is_error) {
            timing::worst_case(spec, self);
        }
    }
}

pub(crate) fn step_lists(spec: &PlanSpec) -> Vec<StepList<'_>> {
    let mut lists = Vec::new();
    if let Some(Section::Given(procedure)) = spec.procedure.as_deref() {
        lists.push(StepList {
            label: "the procedure".into(),
            namespace: 0,
            steps: &procedure.steps,
            is_procedure: true,
        });
    }
    if let Some(Section::Given(contingencies)) = spec.contingency.as_deref() {
        for (id, contingency) in contingencies.iter() {
            lists.push(StepList {
                label: format!("contingency `{}`", id.value),
                namespace: 0,
                steps: &contingency.steps,
                is_procedure: false,
            });
        }
    }
    if let Some(Section::Given(workarounds)) = spec.workarounds.as_deref() {
        for (i, workaround) in workarounds.iter().enumerate() {
            if let Some(steps) = &workaround.steps {
                lists.push(StepList {
                    label: format!("workaround `{}`", workaround.id.value),
                    namespace: i + 1,
                    steps,
                    is_procedure: false,
                });
            }
        }
    }
    lists
}

/// Whether `text` holds a `${NAME}` reference.
pub(crate) fn secrets_references(text: &str) -> bool {
    text.find("${")
        .is_some_and(|start| text[start + 2..].contains('}'))
}

/// The location of byte `offset` of a string value whose scalar is at `span`: a PromQL error or
/// a template's line inside the YAML, so the caret lands on the character, not on the key.
///
/// Plain, quoted (without escapes) and literal block scalars hold each line of their value
/// verbatim, so each line is found in the scalar's text in order. Where a line was folded or
/// escaped the value's text is not in the source; then the word at `offset` is looked for, and
/// failing that the scalar's start is the answer.
pub(crate) fn span_inside(source: &str, span: Span, value: &str, offset: usize) -> Span {
    let offset = offset.min(value.len());
    let scalar_end = (span.offset + span.len).min(source.len());
    let Some(scalar) = source.get(span.offset..scalar_end) else {
        return span;
    };
    let at = |i: usize, len: usize| Span::at(source, span.offset + i, len);
    let line_start = value[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = value[offset..]
        .find('\n')
        .map_or(value.len(), |i| offset + i);
    let mut cursor = 0;
    let mut found = true;
    for line in value[..line_end].split('\n') {
        if line.is_empty() {
            continue;
        }
        match scalar.get(cursor..).and_then(|rest| rest.find(line)) {
            Some(i) => cursor += i + line.len(),
            None => {
                found = false;
                break;
            }
        }
    }
    if found && line_end > line_start {
        let line = &value[line_start..line_end];
        let in_scalar = cursor - line.len() + (offset - line_start);
        return at(in_scalar, usize::from(offset < line_end));
    }
    // The word at the offset, when it appears exactly once in the scalar.
    let word_end = value[offset..]
        .find(char::is_whitespace)
        .map_or(value.len(), |i| offset + i);
    let word = &value[offset..word_end];
    if !word.is_empty()
        && let Some(i) = scalar.find(word)
        && !scalar[i + word.len()..].contains(word)
    {
        return at(i, word.len());
    }
    span
}

/// Reports the second and later occurrences of each id.
pub(crate) fn duplicate_ids<'a>(
    ids: impl IntoIterator<Item = &'a Spanned<String>>,
    what: &str,
    checker: &mut Checker,
) {
    let mut seen: std::collections::HashMap<&str, Span> = std::collections::HashMap::new();
    for id in ids {
        if let Some(first) = seen.get(id.value.as_str()) {
            checker.push(
                Diagnostic::error(
                    codes::DUPLICATE_ID,
                    id.span,
                    format!("duplicate {what} id `{}`", id.value),
                )
                .with_help(format!(
                    "the first `{}` is at line {}; ids must be unique",
                    id.value, first.line
                )),
            );
        } else {
            seen.insert(&id.value, id.span);
        }
    }
}

/// "unknown X `name`" with a did-you-mean hint and the list of known names.
pub(crate) fn unknown(
    code: &'static str,
    what: &str,
    name: &Spanned<String>,
    known: &[&str],
) -> Diagnostic {
    let list = if known.is_empty() {
        "none are declared".to_string()
    } else {
        format!("known: {}", known.join(", "))
    };
    let help = match diagnostic::did_you_mean(&name.value, known.iter().copied()) {
        Some(hint) => format!("{hint} ({list})"),
        None => list,
    };
    Diagnostic::error(code, name.span, format!("unknown {what} `{}`", name.value)).with_help(help)
}

/// An http(s) URL, or a `${VAR}` that will hold one.
pub(crate) fn http_url(url: &Spanned<String>, checker: &mut Checker) {
    let v = &url.value;
    if !(v.starts_with("http://") || v.starts_with("https://") || v.starts_with("${")) {
        checker.push(
            Diagnostic::error(codes::HTTP_SPEC, url.span, format!("`{v}` is not an http or https URL"))
                .with_help("write the full URL, e.g. https://service.example.com/path, or a ${VAR} holding one"),
        );
    }
}

/// An expected HTTP status between 100 and 599.
pub(crate) fn http_status(status: Option<&Spanned<u16>>, checker: &mut Checker) {
    if let Some(status) = status
        && !(100..=599).contains(&status.value)
    {
        checker.push(
            Diagnostic::error(
                codes::HTTP_SPEC,
                status.span,
                format!("{} is not an http status", status.value),
            )
            .with_help("expect a status between 100 and 599, e.g. 200 or 202"),
        );
    }
}

/// The methods an `http` request or check may use.
pub(crate) const HTTP_METHODS: &[&str] =
    &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A known method, and no body on a GET or HEAD (the default is GET): a query API that takes a
/// body (New Relic's NerdGraph, Grafana's /api/ds/query) wants POST, and a forgotten `method`
/// would otherwise only show as a 404 or 405 on the night.
pub(crate) fn http_method_and_body(
    method: Option<&Spanned<String>>,
    body: Option<&Spanned<String>>,
    checker: &mut Checker,
) {
    let upper = method.map(|m| m.value.to_ascii_uppercase());
    if let (Some(method), Some(upper)) = (method, &upper)
        && !HTTP_METHODS.contains(&upper.as_str())
    {
        checker.push(
            Diagnostic::error(
                codes::HTTP_SPEC,
                method.span,
                format!("unknown http method `{}`", method.value),
            )
            .with_help(format!("use one of {}", HTTP_METHODS.join(", "))),
        );
        return;
    }
    let upper = upper.unwrap_or_else(|| "GET".to_string());
    if let Some(body) = body
        && (upper == "GET" || upper == "HEAD")
    {
        let said = if method.is_some() {
            format!("method {upper}")
        } else {
            "no method (GET)".to_string()
        };
        checker.push(
            Diagnostic::error(
                codes::HTTP_BODY_WITHOUT_METHOD,
                body.span,
                format!("a request body with {said}: servers ignore or refuse it"),
            )
            .with_help("query APIs that take a body want `method: POST`"),
        );
    }
}

/// The names of the alternatives that are present, for "exactly one of" checks (step kinds,
/// criterion sources, channel kinds).
pub(crate) fn given<'a>(alternatives: &[(&'a str, bool)]) -> Vec<&'a str> {
    alternatives
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect()
}
