//! PromQL queries (criteria and step verifies) parse, so a typo is found at lint time and not by
//! the first measurement during a release. Only the syntax is checked (with `promql-parser`);
//! whether the series exist is Prometheus's business.
//!
//! The parser says what is wrong but not where, so the place is found here: an unbalanced
//! bracket is found by a scan, an unexpected character by its first occurrence, anything else
//! just after the longest start of the query that parses on its own.

use super::{Checker, span_inside, step_lists};
use crate::codes;
use crate::decode::{Section, Spanned};
use crate::diagnostic::Diagnostic;
use crate::spec::PlanSpec;

/// Queries longer than this are not searched for the error's place (the search parses each
/// prefix, quadratic in the query's length); the diagnostic then points at the query's start.
const LOCATE_LIMIT: usize = 1_024;

/// How many prefixes one lint may parse while placing errors, whatever the number of queries:
/// a plan sent to the server's lint endpoint cannot make it work for long.
const LOCATE_BUDGET: usize = 20_000;

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let mut budget = LOCATE_BUDGET;
    if let Some(Section::Given(criteria)) = spec.criteria.as_deref() {
        for c in &criteria.rollback_when {
            if let Some(query) = &c.prometheus {
                check_query(
                    query,
                    &format!("criterion `{}`", c.id.value),
                    &mut budget,
                    checker,
                );
            }
        }
    }
    for list in step_lists(spec) {
        for step in list.steps {
            if let Some(verify) = &step.verify
                && let Some(query) = &verify.prometheus
            {
                check_query(
                    query,
                    &format!("the verify of step `{}`", step.id.value),
                    &mut budget,
                    checker,
                );
            }
        }
    }
}

fn check_query(query: &Spanned<String>, what: &str, budget: &mut usize, checker: &mut Checker) {
    // A `${VAR}` is filled in at run time; the text before that cannot be judged.
    if query.value.contains("${") {
        return;
    }
    let Some(problem) = problem(&query.value, budget) else {
        return;
    };
    let span = span_inside(checker.source, query.span, &query.value, problem.offset);
    checker.push(
        Diagnostic::error(
            codes::PROMQL_SYNTAX,
            span,
            format!(
                "the PromQL query of {what} does not parse: {}",
                problem.message
            ),
        )
        .with_help(problem.help),
    );
}

/// What is wrong with a query, and where (a byte offset into it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub offset: usize,
    pub message: String,
    pub help: &'static str,
}

/// Parses `query`; `None` when it is valid PromQL. Placing an error spends `budget` (prefix
/// parses); with none left the error points at the query's start.
pub(crate) fn problem(query: &str, budget: &mut usize) -> Option<Problem> {
    let message = match parse(query)? {
        Some(message) => message,
        None => {
            return Some(Problem {
                offset: 0,
                message: "the PromQL parser failed on it".into(),
                help: "simplify the query, or check it in the Prometheus expression browser",
            });
        }
    };
    if query.trim().is_empty() {
        return Some(Problem {
            offset: 0,
            message: "the query is empty".into(),
            help: "write the PromQL expression whose value the condition judges",
        });
    }
    if let Some((offset, what)) = unbalanced(query) {
        return Some(Problem {
            offset,
            message: what,
            help: "every ( { [ needs its closing ) } ] in the same query",
        });
    }
    let offset = if let Some(c) = unexpected_character(&message) {
        first_outside_strings(query, c)
    } else {
        None
    };
    let offset = offset.unwrap_or_else(|| after_longest_valid_prefix(query, budget));
    Some(Problem {
        offset,
        message,
        help: "the query is valid PromQL up to here; check what follows (an operator, a label matcher, a range)",
    })
}

/// `None` when valid, `Some(Some(message))` when it does not parse, `Some(None)` when the parser
/// panicked (it is a third-party parser; lint must never panic whatever the input).
fn parse(query: &str) -> Option<Option<String>> {
    match std::panic::catch_unwind(|| promql_parser::parser::parse(query)) {
        Ok(Ok(_)) => None,
        Ok(Err(message)) => Some(Some(message)),
        Err(_) => Some(None),
    }
}

/// The first bracket without its partner: a closing one that closes nothing or the wrong kind,
/// or an opening one never closed. Brackets inside string literals do not count.
fn unbalanced(query: &str) -> Option<(usize, String)> {
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // Skip the string literal; `\` escapes in the two quoted kinds.
                let mut escaped = false;
                for (_, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' && c != '`' {
                        escaped = true;
                    } else if d == c {
                        break;
                    }
                }
            }
            '#' => {
                // A comment runs to the end of the line.
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' | '{' | '[' => open.push((i, c)),
            ')' | '}' | ']' => {
                let want = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                match open.pop() {
                    Some((_, o)) if o == want => {}
                    Some((at, o)) => {
                        return Some((
                            at,
                            format!("`{o}` is closed by `{c}` at column {}", col(query, i)),
                        ));
                    }
                    None => return Some((i, format!("`{c}` closes nothing"))),
                }
            }
            _ => {}
        }
    }
    open.pop()
        .map(|(at, o)| (at, format!("`{o}` is never closed")))
}

/// 1-based character column of byte `i` in a one-line query.
fn col(query: &str, i: usize) -> usize {
    query[..i].chars().count() + 1
}

/// The character of an "unexpected character: 'x'"-style message.
fn unexpected_character(message: &str) -> Option<char> {
    let rest = message.split_once("unexpected character")?.1;
    let quoted = rest.split_once('\'')?.1;
    let mut chars = quoted.chars();
    let c = chars.next()?;
    (chars.next() == Some('\'')).then_some(c)
}

fn first_outside_strings(query: &str, wanted: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in query.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == wanted => return Some(i),
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => {}
        }
    }
    None
}

/// Just after the longest prefix of the query that is valid PromQL by itself, at the next
/// non-space character: where the parser stopped making sense of the rest. The query's start
/// when no prefix parses (or the query is too long to search).
fn after_longest_valid_prefix(query: &str, budget: &mut usize) -> usize {
    let start = query.len() - query.trim_start().len();
    if query.len() > LOCATE_LIMIT {
        return start;
    }
    let boundaries: Vec<usize> = query
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .collect();
    for &end in boundaries.iter().rev() {
        let prefix = &query[..end];
        if prefix.trim().is_empty() || *budget == 0 {
            break;
        }
        *budget -= 1;
        if parse(prefix).is_none() {
            let rest = &query[end..];
            let skip = rest.len() - rest.trim_start().len();
            return end + skip;
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("sum(rate(http_requests_total[5m]))")]
    #[test_case(r#"sum(rate(x{code=~"5.."}[5m])) / sum(rate(x[5m]))"#)]
    #[test_case("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))")]
    #[test_case("up == 0")]
    fn valid_queries_pass(query: &str) {
        assert_eq!(problem(query, &mut { LOCATE_BUDGET }), None);
    }

    // The issue's example: one parenthesis too few. The caret is on the one never closed.
    #[test_case("sum(rate(x[5m])", 3)]
    #[test_case("rate(x[5m]))", 11)]
    #[test_case("sum(rate(x[5m)))", 10)]
    #[test_case(r#"x{a="(("} + (y"#, 12)]
    #[test_case("foo bar", 4)]
    #[test_case("rate(x[5m]) >", 12)]
    fn errors_are_placed(query: &str, offset: usize) {
        let p = problem(query, &mut { LOCATE_BUDGET }).expect("invalid");
        assert_eq!(p.offset, offset, "{query}: {p:?}");
    }

    #[test]
    fn placing_errors_stops_when_the_budget_is_spent() {
        let mut budget = 3;
        let p = problem("foo bar + sum(rate(x[5m])) + 1", &mut budget).expect("invalid");
        assert_eq!((p.offset, budget), (0, 0));
    }
}
