//! Names must be printable: step, criterion and workaround ids, checkpoint names, and every
//! mapping key the plan declares (groups, channels, contingencies, outputs, variables). Names
//! reach terminals, logs, file names and HTML; a control character (an ANSI or OSC escape) or an
//! invisible format character (a bidirectional override, a zero-width space) in one could
//! rewrite what a person reads at the worst moment, or make two names look alike.
//!
//! This walks the raw tree, like `secrets.rs`, so no section escapes it.

use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::yaml::{Node, Value};

/// Whether `text` has only printable characters: no control characters (C0, DEL, C1) and no
/// invisible format characters (bidirectional controls, zero-width characters, BOM).
pub fn printable(text: &str) -> bool {
    text.chars().all(|c| {
        !c.is_control()
            && !matches!(c,
                '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}')
    })
}

/// The name with its unprintable characters shown as escapes (`\u{1b}`), for the message.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if printable(c.encode_utf8(&mut [0; 4])) {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", u32::from(c))
            }
        })
        .collect()
}

/// Fields whose values are names (and lists of names).
const NAME_FIELDS: &[&str] = &["id", "checkpoints", "needs", "when_checkpoint"];

pub(super) fn check(root: &Node, checker: &mut Checker) {
    walk(root, checker);
}

fn walk(node: &Node, checker: &mut Checker) {
    match &node.value {
        Value::Seq(items) => items.iter().for_each(|item| walk(item, checker)),
        Value::Map(entries) => {
            for (key, value) in entries {
                if !printable(&key.name) {
                    checker.push(refusal(&key.name, key.span, None));
                }
                if NAME_FIELDS.contains(&key.name.as_str()) {
                    names(value, &key.name, checker);
                }
                walk(value, checker);
            }
        }
        _ => {}
    }
}

fn names(node: &Node, field: &str, checker: &mut Checker) {
    match &node.value {
        Value::Str(name) if !printable(name) => {
            checker.push(refusal(name, node.span, Some(field)));
        }
        Value::Seq(items) => items.iter().for_each(|item| names(item, field, checker)),
        _ => {}
    }
}

/// `field` is the field whose value the name is, or `None` for a mapping key.
fn refusal(name: &str, span: crate::diagnostic::Span, field: Option<&str>) -> Diagnostic {
    let message = match field {
        None => format!(
            "the name `{}` has characters that are not printable",
            shown(name)
        ),
        Some(field) => format!(
            "`{}` (in `{field}`) has characters that are not printable",
            shown(name)
        ),
    };
    Diagnostic::error(codes::UNPRINTABLE_NAME, span, message).with_help(
        "names reach terminals, logs and documents: use letters, digits, `-`, `_` and `.` \
         (control characters and invisible format characters are refused)",
    )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_names_and_not() {
        for ok in ["rollback-app", "étape_2", "a.b c", "数据库"] {
            assert!(printable(ok), "{ok}");
        }
        for bad in [
            "a\u{1b}[31mb",
            "a\u{7}",
            "tab\there",
            "bidi\u{202e}x",
            "zero\u{200b}width",
            "c1\u{9b}",
            "new\nline",
        ] {
            assert!(!printable(bad), "{bad:?}");
        }
    }
}
