//! Q9 and Q7 answered by evidence: whether a successful rehearsal of exactly this content hash
//! exists in `testing.rehearse_in` and is younger than `testing.max_age` (B084 untested, B085
//! stale), and whether measured step durations blow the step's `expected` (B086).
//!
//! The model has no store and no clock: the caller looks the rehearsals up and passes them, with
//! the time to judge their age at, to [`check_evidence`]. Lint without a store never calls it.

use crate::codes;
use crate::diagnostic::{Diagnostic, Severity, Span};
use crate::duration::Duration;
use crate::hash::content_hash;
use crate::plan::{Answer, Plan};
use crate::yaml::{self, Node, Value};

/// What lint needs to know about one successful rehearsal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rehearsed {
    pub plan_hash: String,
    pub environment: String,
    pub actor: String,
    pub finished_at_ms: i64,
    /// Measured duration of each step that ran: (step id, milliseconds).
    pub steps: Vec<(String, u64)>,
}

/// How the evidence check judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidencePolicy {
    /// The time at which evidence ages (milliseconds since the Unix epoch).
    pub now_ms: i64,
    /// Untested and stale plans are errors (`--require-tested`) rather than warnings.
    pub require_tested: bool,
}

/// A measured median above `expected` by more than this factor is reported (B086).
pub const SLOW_FACTOR: f64 = 1.5;

/// The newest rehearsal of `hash` in `environment`, if any.
pub fn newest<'a>(
    rehearsals: &'a [Rehearsed],
    hash: &str,
    environment: &str,
) -> Option<&'a Rehearsed> {
    rehearsals
        .iter()
        .filter(|r| r.plan_hash == hash && r.environment == environment)
        .max_by_key(|r| r.finished_at_ms)
}

/// The median and worst of some durations, in milliseconds (`None` for none).
pub fn median_and_worst(samples: &[u64]) -> Option<(u64, u64)> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let worst = *sorted.last()?;
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    Some((median, worst))
}

/// Diagnostics about the plan in `source` given `rehearsals` (successful ones, of any version
/// of the plan: Q9 counts only those of the current hash; durations use every one that ran a
/// step of the same id). A plan that does not lint, or whose `testing` is `not_applicable`,
/// gets no Q9 diagnostics.
pub fn check_evidence(
    source: &str,
    plan: &Plan,
    rehearsals: &[Rehearsed],
    policy: EvidencePolicy,
) -> Vec<Diagnostic> {
    let Ok(doc) = yaml::parse(source) else {
        return Vec::new();
    };
    let root = doc.root;
    let hash = content_hash(&root);
    let mut out = Vec::new();
    let severity = if policy.require_tested {
        Severity::Error
    } else {
        Severity::Warning
    };
    let testing_span = key_span(&root, "testing").unwrap_or_else(|| Span::at(source, 0, 0));
    if let Answer::Given(testing) = &plan.testing {
        let env = &testing.rehearse_in;
        match newest(rehearsals, &hash, env) {
            None => out.push(
                Diagnostic {
                    severity,
                    ..Diagnostic::error(
                        codes::UNTESTED,
                        testing_span,
                        format!(
                            "no successful rehearsal of this version of the plan in `{env}` (plan hash {}…)",
                            short(&hash)
                        ),
                    )
                }
                .with_help(format!(
                    "run `backout rehearse PLAN --env {env}`; any change to the plan's content needs a new rehearsal"
                )),
            ),
            Some(r) => {
                let age_ms = policy.now_ms.saturating_sub(r.finished_at_ms).max(0);
                let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
                if age > testing.max_age {
                    out.push(
                        Diagnostic {
                            severity,
                            ..Diagnostic::error(
                                codes::STALE,
                                testing_span,
                                format!(
                                    "the newest rehearsal of this version in `{env}` is {} old, older than max_age {}",
                                    rounded(age),
                                    testing.max_age
                                ),
                            )
                        }
                        .with_help(format!(
                            "rehearse again: `backout rehearse PLAN --env {env}` (last by {})",
                            r.actor
                        )),
                    );
                }
            }
        }
    }
    for step in plan.steps() {
        let Some(expected) = step.expected.filter(|e| !e.is_zero()) else {
            continue;
        };
        let samples: Vec<u64> = rehearsals
            .iter()
            .flat_map(|r| r.steps.iter())
            .filter(|(id, _)| *id == step.id)
            .map(|(_, ms)| *ms)
            .collect();
        let Some((median, worst)) = median_and_worst(&samples) else {
            continue;
        };
        if median as f64 > expected.as_millis() as f64 * SLOW_FACTOR {
            let span = step_expected_span(&root, &step.id).unwrap_or(testing_span);
            out.push(
                Diagnostic::warning(
                    codes::SLOWER_THAN_EXPECTED,
                    span,
                    format!(
                        "step `{}` took a median {} in {} rehearsal(s) (worst {}), more than 50% over its expected {expected}",
                        step.id,
                        Duration::from_millis(median),
                        samples.len(),
                        Duration::from_millis(worst)
                    ),
                )
                .with_help("raise `expected` to what rehearsals measure (and check expected_duration and the window), or make the step faster"),
            );
        }
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// An age to whole days when over two days, else whole minutes.
fn rounded(age: Duration) -> Duration {
    let ms = age.as_millis();
    let unit: u64 = if ms >= 2 * 86_400_000 {
        86_400_000
    } else if ms >= 60_000 {
        60_000
    } else {
        1_000
    };
    Duration::from_millis(ms / unit * unit)
}

fn key_span(node: &Node, key: &str) -> Option<Span> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(k, _)| k.span)
}

/// Where a procedure step's `expected` is written.
fn step_expected_span(root: &Node, id: &str) -> Option<Span> {
    let Value::Seq(steps) = &root.get("procedure")?.get("steps")?.value else {
        return None;
    };
    let step = steps
        .iter()
        .find(|s| matches!(s.get("id").map(|n| &n.value), Some(Value::Str(s)) if s == id))?;
    step.get("expected").map(|n| n.span)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    fn source(command: &str, max_age: &str) -> String {
        format!(
            r#"version: 1
release: {{ service: s, version: "2", rollback_to: "1", environment: prod }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria: {{ not_applicable: "t" }}
window: {{ not_applicable: "t" }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure:
  steps:
    - {{ id: revert, run: "{command}", expected: 10s, idempotent: true }}
contingency: {{ not_applicable: "t" }}
workarounds: {{ not_applicable: "t" }}
expected_duration: 1m
communication: {{ not_applicable: "t" }}
testing:
  rehearse_in: staging
  max_age: {max_age}
"#
        )
    }

    fn lint(source: &str) -> (Plan, String) {
        let linted = crate::lint(source);
        let plan = linted
            .plan
            .unwrap_or_else(|| panic!("{:#?}", linted.diagnostics));
        (plan, linted.hash.expect("hash"))
    }

    fn rehearsal(hash: &str, env: &str, at: i64, revert_ms: u64) -> Rehearsed {
        Rehearsed {
            plan_hash: hash.into(),
            environment: env.into(),
            actor: "erin".into(),
            finished_at_ms: at,
            steps: vec![("revert".into(), revert_ms)],
        }
    }

    fn codes(source: &str, rehearsals: &[Rehearsed], require: bool) -> Vec<(String, Severity)> {
        let (plan, _) = lint(source);
        check_evidence(
            source,
            &plan,
            rehearsals,
            EvidencePolicy {
                now_ms: NOW,
                require_tested: require,
            },
        )
        .into_iter()
        .map(|d| (d.code.to_string(), d.severity))
        .collect()
    }

    #[test]
    fn untested_without_evidence_of_this_hash_in_this_environment() {
        let src = source("revert.sh", "30d");
        let (_, hash) = lint(&src);
        let untested = vec![("B084".to_string(), Severity::Warning)];
        assert_eq!(codes(&src, &[], false), untested);
        assert_eq!(
            codes(&src, &[], true),
            [("B084".to_string(), Severity::Error)]
        );
        // Evidence of another environment or another hash does not count.
        assert_eq!(
            codes(&src, &[rehearsal(&hash, "qa", NOW - DAY, 1_000)], false),
            untested
        );
        assert_eq!(
            codes(
                &src,
                &[rehearsal("other", "staging", NOW - DAY, 1_000)],
                false
            ),
            untested
        );
        assert!(codes(&src, &[rehearsal(&hash, "staging", NOW - DAY, 1_000)], true).is_empty());
    }

    #[test]
    fn editing_a_command_untests_the_plan_and_reformatting_does_not() {
        let src = source("revert.sh", "30d");
        let (_, hash) = lint(&src);
        let evidence = [rehearsal(&hash, "staging", NOW - DAY, 1_000)];
        let reformatted = src.replace("max_age: 30d", "max_age:   30d   # a month");
        assert!(codes(&reformatted, &evidence, true).is_empty());
        let edited = source("revert.sh --force", "30d");
        assert_eq!(
            codes(&edited, &evidence, true),
            [("B084".to_string(), Severity::Error)]
        );
    }

    #[test]
    fn stale_names_the_age_against_max_age() {
        let src = source("revert.sh", "30d");
        let (plan, hash) = lint(&src);
        let old = [rehearsal(
            &hash,
            "staging",
            NOW - 41 * DAY - 3_600_000,
            1_000,
        )];
        let found = check_evidence(
            &src,
            &plan,
            &old,
            EvidencePolicy {
                now_ms: NOW,
                require_tested: true,
            },
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].code, codes::STALE);
        assert!(found[0].message.contains("41d old"), "{}", found[0].message);
        assert!(found[0].message.contains("max_age 30d"));
        // Exactly at max_age is still fresh; the newest one counts.
        let fresh = [
            old[0].clone(),
            rehearsal(&hash, "staging", NOW - 30 * DAY, 1_000),
        ];
        assert!(codes(&src, &fresh, true).is_empty());
    }

    #[test]
    fn testing_not_applicable_is_never_untested() {
        let src = source("revert.sh", "30d").replace(
            "testing:\n  rehearse_in: staging\n  max_age: 30d\n",
            "testing: { not_applicable: \"a flag flip\" }\n",
        );
        assert!(codes(&src, &[], true).is_empty());
    }

    #[test]
    fn a_measured_median_over_half_again_expected_warns_at_the_step() {
        let src = source("revert.sh", "30d");
        let (plan, hash) = lint(&src);
        let ok = [
            rehearsal(&hash, "staging", NOW, 14_000),
            rehearsal(&hash, "staging", NOW, 15_000),
        ];
        assert!(
            codes(&src, &ok, false).is_empty(),
            "15s is exactly 1.5 × 10s"
        );
        let slow = [
            rehearsal(&hash, "staging", NOW, 16_000),
            rehearsal("older", "staging", NOW - DAY, 40_000),
            rehearsal(&hash, "staging", NOW - 1, 2_000),
        ];
        let found = check_evidence(
            &src,
            &plan,
            &slow,
            EvidencePolicy {
                now_ms: NOW,
                require_tested: false,
            },
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].code, codes::SLOWER_THAN_EXPECTED);
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(
            found[0]
                .message
                .contains("median 16s in 3 rehearsal(s) (worst 40s)")
        );
        assert_eq!(found[0].span.line, 11, "points at the step's expected");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median_and_worst(&[]), None);
        assert_eq!(median_and_worst(&[5]), Some((5, 5)));
        assert_eq!(median_and_worst(&[9, 1, 5]), Some((5, 9)));
        assert_eq!(median_and_worst(&[4, 1, 2, 10]), Some((3, 10)));
    }
}
