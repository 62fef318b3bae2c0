//! `lint --format github|sarif`: diagnostics where CI shows them. GitHub workflow commands
//! become annotations on the lines of a pull request; SARIF 2.1.0 is read by GitHub code
//! scanning, GitLab and editors. Both carry the same facts as `--format json`
//! ([`Diagnostic::located`]); nothing here decides what is wrong.

use backout_model::diagnostic::Located;
use backout_model::{Severity, codes};
use serde::Serialize;

/// One workflow command per diagnostic: `::warning file=plan.yaml,line=3,col=5,title=B080::…`.
pub fn github(diagnostics: &[Located<'_>]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut message = format!("{}: {}", d.code, d.message);
        if let Some(help) = d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&format!(
            "::{command} file={},line={},col={},title={}::{}\n",
            property(d.file),
            d.line,
            d.column,
            property(&format!("backout {}", d.code)),
            data(&message),
        ));
    }
    out
}

/// Escapes a workflow command's message (GitHub's `escapeData`).
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (GitHub's `escapeProperty`).
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The SARIF 2.1.0 log of one lint run: one run, every code as a rule, one result per diagnostic.
pub fn sarif(diagnostics: &[Located<'_>]) -> serde_json::Value {
    let rules: Vec<Rule<'_>> = codes::ALL
        .iter()
        .map(|(id, title)| Rule {
            id,
            short_description: Text { text: title },
            help_uri: README,
        })
        .collect();
    let results: Vec<SarifResult<'_>> = diagnostics
        .iter()
        .map(|d| SarifResult {
            rule_id: d.code,
            rule_index: codes::ALL.iter().position(|(id, _)| *id == d.code),
            level: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "note",
            },
            message: Message {
                text: match d.help {
                    Some(help) => format!("{}\nhelp: {help}", d.message),
                    None => d.message.to_string(),
                },
            },
            locations: vec![Location {
                physical_location: PhysicalLocation {
                    artifact_location: ArtifactLocation { uri: uri(d.file) },
                    region: Region {
                        start_line: d.line,
                        start_column: d.column,
                    },
                },
            }],
        })
        .collect();
    let log = Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "backout",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: README,
                    rules,
                },
            },
            // Columns count characters (Unicode scalar values), as in every other output.
            column_kind: "unicodeCodePoints",
            results,
        }],
    };
    serde_json::to_value(&log).expect("SARIF types serialize")
}

/// The published schema the log declares (not fetched: checking happens in the tests).
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const README: &str = "https://github.com/backout/backout#lint";

/// A file path as a relative URI reference: the path's bytes with the characters a URI
/// reserves percent-encoded, `/` kept.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'a str,
    version: &'a str,
    runs: Vec<Run<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool<'a>,
    column_kind: &'a str,
    results: Vec<SarifResult<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    driver: Driver<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver<'a> {
    name: &'a str,
    version: &'a str,
    information_uri: &'a str,
    rules: Vec<Rule<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule<'a> {
    id: &'a str,
    short_description: Text<'a>,
    help_uri: &'a str,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<usize>,
    level: &'a str,
    message: Message,
    locations: Vec<Location>,
}

#[derive(Serialize)]
struct Message {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
    start_column: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_escape_what_github_parses() {
        let d = Located {
            file: "plans/a,b:c.yaml",
            code: "B080",
            severity: Severity::Warning,
            line: 3,
            column: 5,
            message: "50% done\nnext",
            help: Some("add on_failure"),
        };
        assert_eq!(
            github(&[d]),
            "::warning file=plans/a%2Cb%3Ac.yaml,line=3,col=5,title=backout B080::B080: 50%25 done%0Anext%0Ahelp: add on_failure\n"
        );
    }

    #[test]
    fn uris_encode_reserved_characters() {
        assert_eq!(
            uri("fixtures/plans/my plan#1.yaml"),
            "fixtures/plans/my%20plan%231.yaml"
        );
    }
}
