//! Message templates (`communication.templates.<event>`) compile and name only what a notice
//! has, so a broken override is an error at lint time instead of a message that silently falls
//! back to the built-in text during a release.

use super::{Checker, span_inside};
use crate::codes;
use crate::decode::Section;
use crate::diagnostic::Diagnostic;
use crate::spec::PlanSpec;

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let Some(Section::Given(communication)) = spec.communication.as_deref() else {
        return;
    };
    let Some(templates) = &communication.templates else {
        return;
    };
    for (event, template) in &templates.0 {
        let Err(error) = crate::template::check(&template.value) else {
            continue;
        };
        // Where in the template: the byte range of a syntax error, else the start of its line.
        let offset = match (error.range(), error.line()) {
            (Some(range), _) => range.start,
            _ if error.kind() == minijinja::ErrorKind::UndefinedError => {
                unknown_name_offset(&template.value, error.detail().unwrap_or(""))
            }
            (None, Some(line)) => template
                .value
                .split_inclusive('\n')
                .take(line.saturating_sub(1))
                .map(str::len)
                .sum(),
            (None, None) => 0,
        };
        let span = span_inside(checker.source, template.span, &template.value, offset);
        let detail = error
            .detail()
            .map_or_else(|| error.kind().to_string(), str::to_owned);
        let what = match error.kind() {
            minijinja::ErrorKind::SyntaxError => "does not compile",
            _ => "uses a name a notice does not have",
        };
        checker.push(
            Diagnostic::error(
                codes::TEMPLATE_SYNTAX,
                span,
                format!("the `{}` template {what}: {detail}", event.value),
            )
            .with_help("a broken override would fall back to the built-in message when it matters; fix it, or remove it to use the built-in one"),
        );
    }
}

/// Where the name of "`relase` is not a field of a notice" is first used in the template: the
/// first occurrence that is a whole word and not an attribute (`x.relase`).
fn unknown_name_offset(template: &str, detail: &str) -> usize {
    let Some(name) = detail.split('`').nth(1).filter(|n| !n.is_empty()) else {
        return 0;
    };
    let word = |c: char| c.is_alphanumeric() || c == '_';
    template
        .match_indices(name)
        .find(|(i, _)| {
            let before = template[..*i].chars().next_back();
            let after = template[i + name.len()..].chars().next();
            !before.is_some_and(|c| word(c) || c == '.') && !after.is_some_and(word)
        })
        .map_or(0, |(i, _)| i)
}
