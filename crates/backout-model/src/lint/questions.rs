//! Every plan answers the nine questions: each section is present, either answered or marked
//! `not_applicable` with a reason. Also the format version and the release and owners headers.

use super::Checker;
use crate::codes;
use crate::decode::Section;
use crate::diagnostic::{Diagnostic, Span};
use crate::spec::PlanSpec;
use crate::yaml::Node;

pub(super) fn check(spec: &PlanSpec, root: &Node, checker: &mut Checker) {
    // Presence is judged on the document, not the decoded spec: a section that is present but
    // broken has its own errors and is not also "unanswered".
    // An empty key (`testing:` with nothing under it) answers nothing.
    let present = |key: &str| {
        root.get(key)
            .is_some_and(|n| n.value != crate::yaml::Value::Null)
    };
    match &spec.version {
        None if !present("version") => checker.push(
            Diagnostic::error(
                codes::MISSING_FIELD,
                Span::default(),
                "missing field `version` in the plan",
            )
            .with_help("start the plan with `version: 1`"),
        ),
        Some(v) if v.value != 1 => checker.push(
            Diagnostic::error(
                codes::UNSUPPORTED_VERSION,
                v.span,
                format!("plan format version {} is not supported", v.value),
            )
            .with_help("this backout reads plan format version 1"),
        ),
        _ => {}
    }
    for (present, key, help) in [
        (
            present("release"),
            "release",
            "add `release:` with service, version, rollback_to and environment",
        ),
        (
            present("owners"),
            "owners",
            "add `owners: { deployment_engineer: <who is responsible> }`",
        ),
    ] {
        if !present {
            checker.push(
                Diagnostic::error(
                    codes::MISSING_FIELD,
                    Span::default(),
                    format!("missing field `{key}` in the plan"),
                )
                .with_help(help),
            );
        }
    }
    let sections: [(&str, &str, bool); 10] = [
        ("Q1", "criteria", present("criteria")),
        ("Q2", "window", present("window")),
        ("Q3", "authorization", present("authorization")),
        ("Q4", "execution", present("execution")),
        ("Q5", "procedure", present("procedure")),
        ("Q6", "contingency", present("contingency")),
        ("Q6", "workarounds", present("workarounds")),
        ("Q7", "expected_duration", present("expected_duration")),
        ("Q8", "communication", present("communication")),
        ("Q9", "testing", present("testing")),
    ];
    for (question, key, present) in sections {
        if !present {
            checker.push(
                Diagnostic::error(
                    codes::UNANSWERED,
                    Span::default(),
                    format!("{question} is not answered: `{key}` is missing ({})", ask(question)),
                )
                .with_help(format!(
                    "add a `{key}:` section, or `{key}: {{ not_applicable: \"<why>\" }}` if it truly does not apply"
                )),
            );
        }
    }
    if let Some(criteria) = spec.criteria.as_deref()
        && let Section::Given(c) = criteria
        && c.rollback_when.is_empty()
        && c.success_when.is_none()
    {
        checker.push(
            Diagnostic::warning(
                codes::UNANSWERED,
                spec.criteria.as_ref().map_or(Span::default(), |s| s.span),
                "no rollback criteria and no success definition: only a person can ask for a rollback",
            )
            .with_help("add criteria under `rollback_when` that production support can watch"),
        );
    }
}

/// The question in words, for "Qn is not answered" messages.
pub fn ask(question: &str) -> &'static str {
    match question {
        "Q1" => "when is a rollback required, and when is the deployment a success?",
        "Q2" => "within what time can a rollback take place?",
        "Q3" => "who decides to revert?",
        "Q4" => "who performs the rollback, and how soon?",
        "Q5" => "what procedure is followed?",
        "Q6" => "what contingency measures or workarounds exist?",
        "Q7" => "how long will the reversion take?",
        "Q8" => "what communication is required?",
        _ => "has the plan been tested?",
    }
}
