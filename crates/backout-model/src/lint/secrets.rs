//! Secrets belong in the environment, referenced as `${VAR}`; a credential written into the plan
//! ends up in git, in rendered documents and in every notification. This walks every string of
//! the document (whatever section it is in) looking for credentials in URLs, literal
//! authorization headers and secret-looking environment values, and well-known token formats. It
//! also checks that `${VAR}` references are well formed.

use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::yaml::{Node, Value};

/// Header names whose values are credentials.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "private-token",
    "cookie",
];
/// Parts of environment variable names whose values are credentials.
const SECRET_ENV: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIALS",
];
/// Prefixes of well-known token formats.
const TOKEN_PREFIXES: &[(&str, &str)] = &[
    ("ghp_", "a GitHub token"),
    ("gho_", "a GitHub token"),
    ("ghu_", "a GitHub token"),
    ("ghs_", "a GitHub token"),
    ("github_pat_", "a GitHub token"),
    ("glpat-", "a GitLab token"),
    ("xoxb-", "a Slack token"),
    ("xoxp-", "a Slack token"),
    ("xoxa-", "a Slack token"),
    ("xapp-", "a Slack token"),
    ("sk_live_", "a Stripe key"),
    ("rk_live_", "a Stripe key"),
    ("AKIA", "an AWS access key"),
    ("-----BEGIN", "a private key"),
    ("eyJ", "a JSON web token"),
    ("hooks.slack.com/services/T", "a Slack webhook URL"),
];

pub(super) fn check(root: &Node, checker: &mut Checker) {
    walk(root, None, checker);
}

fn walk(node: &Node, parent_key: Option<&str>, checker: &mut Checker) {
    match &node.value {
        Value::Str(s) => scan(s, node, checker),
        Value::Seq(items) => items
            .iter()
            .for_each(|item| walk(item, parent_key, checker)),
        Value::Map(entries) => {
            for (key, value) in entries {
                if let Value::Str(text) = &value.value
                    && !text.contains("${")
                    && !text.trim().is_empty()
                {
                    let header = parent_key == Some("headers")
                        && SECRET_HEADERS.contains(&key.name.to_ascii_lowercase().as_str());
                    let upper = key.name.to_ascii_uppercase();
                    let env = parent_key == Some("env")
                        && SECRET_ENV.iter().any(|part| upper.contains(part));
                    if header || env {
                        let what = if header {
                            "header"
                        } else {
                            "environment variable"
                        };
                        checker.push(
                            Diagnostic::error(
                                codes::LITERAL_CREDENTIAL,
                                value.span,
                                format!("{what} `{}` holds a literal credential", key.name),
                            )
                            .with_help(format!(
                                "reference it from the environment instead, e.g. `{}: \"{}${{{}}}\"`",
                                key.name,
                                if header && text.starts_with("Bearer ") { "Bearer " } else { "" },
                                crate::plan::env_name(&key.name)
                            )),
                        );
                    }
                }
                walk(value, Some(&key.name), checker);
            }
        }
        _ => {}
    }
}

/// Checks one string: `${VAR}` syntax, credentials in URLs, known token formats.
fn scan(text: &str, node: &Node, checker: &mut Checker) {
    let (plain, malformed) = strip_references(text);
    if let Some(bad) = malformed {
        checker.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                node.span,
                format!("malformed environment reference `{bad}`"),
            )
            .with_help(
                "write `${NAME}` with a name of letters, digits and `_`, not starting with a digit",
            ),
        );
    }
    if let Some(user) = url_credentials(&plain) {
        checker.push(
            Diagnostic::error(codes::LITERAL_CREDENTIAL, node.span, format!("a URL carries the password of `{user}`"))
                .with_help("put the whole URL or the password in an environment variable: `https://${USER}:${PASSWORD}@…` or `${SERVICE_URL}`"),
        );
    }
    for (prefix, what) in TOKEN_PREFIXES {
        if let Some(pos) = find(&plain, prefix)
            && looks_like_token(&plain[pos..], prefix)
        {
            checker.push(
                Diagnostic::error(codes::LITERAL_CREDENTIAL, node.span, format!("this looks like {what} written into the plan"))
                    .with_help("move it to an environment variable and write `${NAME}` here; rotate it if it was committed"),
            );
            return;
        }
    }
    if let Some(pos) = find(&plain, "Bearer ") {
        let token: String = plain[pos + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.=+/".contains(*c))
            .collect();
        if token.len() >= 16 {
            checker.push(
                Diagnostic::error(
                    codes::LITERAL_CREDENTIAL,
                    node.span,
                    "a literal bearer token",
                )
                .with_help(
                    "write `Bearer ${TOKEN_NAME}` and provide the token through the environment",
                ),
            );
        }
    }
}

/// The text with every well-formed `${NAME}` removed, and the first malformed reference if any.
fn strip_references(text: &str) -> (String, Option<String>) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut malformed = None;
    while let Some(start) = find(rest, "${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if valid_name(&after[..end]) => {
                out.push(' ');
                rest = &after[end + 1..];
            }
            Some(end) => {
                malformed.get_or_insert_with(|| format!("${{{}}}", &after[..end]));
                rest = &after[end + 1..];
            }
            None => {
                malformed.get_or_insert_with(|| rest[start..].chars().take(20).collect());
                rest = "";
            }
        }
    }
    out.push_str(rest);
    (out, malformed)
}

/// Substring search without building a searcher per call: every string of the plan is scanned
/// for a dozen short needles, and `str::find` set-up dominated lint time on large plans.
fn find(haystack: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
    let first = *needle.first()?;
    hay.iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .map(|(i, _)| i)
        .find(|i| hay[*i..].starts_with(needle))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `scheme://user:password@host` with a literal password: returns the user.
fn url_credentials(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(pos) = find(rest, "://") {
        let after = &rest[pos + 3..];
        let authority: &str = after
            .split(['/', ' ', '"', '\'', '?', '#'])
            .next()
            .unwrap_or("");
        if let Some(at) = authority.rfind('@')
            && let Some((user, password)) = authority[..at].split_once(':')
            && !password.trim().is_empty()
            && !password.starts_with('$')
        {
            return Some(user.to_string());
        }
        rest = after;
    }
    None
}

/// Enough token characters after the prefix to be a real credential rather than a mention.
fn looks_like_token(candidate: &str, prefix: &str) -> bool {
    let body: String = candidate[prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_./+=".contains(*c))
        .collect();
    match prefix {
        "AKIA" => {
            body.len() >= 16
                && body
                    .chars()
                    .take(16)
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        "-----BEGIN" => candidate.contains("PRIVATE KEY"),
        "eyJ" => body.len() >= 20 && body.contains('.'),
        _ => body.len() >= 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("https://user:hunter2@db.example.com/x", Some("user"))]
    #[test_case("postgres://app:s3cret@db:5432/app", Some("app"))]
    #[test_case("https://${USER}:${PASS}@example.com", None)]
    #[test_case("https://user@example.com", None)]
    #[test_case("https://example.com/a:b@c", None)]
    fn credentials_in_urls(text: &str, user: Option<&str>) {
        let (plain, _) = strip_references(text);
        assert_eq!(url_credentials(&plain).as_deref(), user);
    }

    #[test_case("${GOOD_NAME} and ${_x1}", None)]
    #[test_case("${1BAD}", Some("${1BAD}"))]
    #[test_case("${open", Some("${open"))]
    #[test_case("${has space}", Some("${has space}"))]
    fn references(text: &str, malformed: Option<&str>) {
        assert_eq!(strip_references(text).1.as_deref(), malformed);
    }

    #[test_case("ghp_abcdefghijklmnop1234", "ghp_", true)]
    #[test_case("ghp_", "ghp_", false)]
    #[test_case("AKIAIOSFODNN7EXAMPLE", "AKIA", true)]
    #[test_case("AKIA is a prefix", "AKIA", false)]
    fn tokens(text: &str, prefix: &str, expected: bool) {
        assert_eq!(looks_like_token(text, prefix), expected);
    }
}
