//! The plan skeleton `backout init` writes: every section present as a commented prompt, so the
//! author sees what each question asks, and lint reports exactly the questions still unanswered.

/// A commented skeleton for `service`, owned by `engineer`.
pub fn skeleton(service: &str, engineer: &str) -> String {
    let service = yaml_string(service);
    let engineer = yaml_string(engineer);
    format!(
        r#"# Backout plan for {service}. Fill in each section; `backout lint` says what is still missing.
# Editor completion: keep the next line and use an editor with the YAML language server.
# yaml-language-server: $schema={schema}
version: 1

release:
  service: {service}
  version: "<version being deployed>"
  rollback_to: "<version to return to>"
  environment: production
  # change_ticket: CHG0000000
  # Milestones of the forward deployment, in order; steps can depend on them.
  checkpoints: []

owners:
  deployment_engineer: {engineer}   # responsible for this plan's contents

# Named groups of people (emails or user names), referenced below.
people:
  deciders: [{engineer}]
  performers: [{engineer}]

# Q1: under what circumstances is a rollback required? When is the deployment a success?
# criteria:
#   rollback_when:
#     - id: error-rate
#       prometheus: 'sum(rate(http_requests_total{{code=~"5.."}}[5m])) / sum(rate(http_requests_total[5m]))'
#       fails_if: "> 0.02"
#       trips_after: 2
#     # The service itself answering at all. `on_error: fail`: refused, timed out or a 5xx counts
#     # as failing (the service being down is the loudest signal); monitoring queries keep the
#     # default `on_error: inconclusive` (Prometheus down is not the service down).
#     - id: health
#       http: {{ url: "https://{service}.example.com/healthz" }}
#       on_error: fail
#       every: 30s
#       trips_after: 3
#   success_when: {{ hold: 1h, checks: [error-rate] }}

# Q2: within what time period can a rollback take place?
# window: {{ opens: deploy, closes_after: 4h }}

# Q3: who decides to revert?
# authorization: {{ deciders: deciders, quorum: 1 }}

# Q4: who performs the rollback, and how soon after the decision?
# execution: {{ performers: performers, start_within: 15m }}

# Q5: what procedure is followed? Steps run as soon as their `needs` are done.
# procedure:
#   steps:
#     - id: rollback
#       run: ./deploy {service} "$BACKOUT_ROLLBACK_TO"
#       expected: 5m
#       timeout: 10m
#       idempotent: true

# Q6: what contingency measures exist if a step fails, and what workarounds instead of a backout?
# contingency: {{ not_applicable: "<why there is none>" }}
# workarounds: []

# Q7: how long will the reversion take? Lint checks it against the steps and the window.
# expected_duration: 10m

# Q8: what communication is required?
# communication:
#   channels:
#     team: {{ slack: "${{SLACK_WEBHOOK_URL}}" }}
#   notify:
#     rollback_required: [team]
#     completed: [team]

# Q9: has the plan been tested? `backout rehearse` records the evidence.
# testing: {{ rehearse_in: staging, max_age: 30d }}

# A section that truly does not apply is answered with a reason:
#   window: {{ not_applicable: "The flag can be turned off at any time." }}
"#,
        schema = crate::schema::SCHEMA_ID,
    )
}

/// A double-quoted YAML string.
fn yaml_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    #[test]
    fn skeleton_lints_with_exactly_the_unanswered_questions() {
        let linted = crate::lint(&skeleton("checkout", "alice@example.com"));
        let codes: Vec<&str> = linted.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            vec![codes::UNANSWERED; 10],
            "{:#?}",
            linted.diagnostics
        );
        let text: Vec<String> = linted
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        for q in ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8", "Q9"] {
            assert!(
                text.iter().any(|m| m.starts_with(q)),
                "{q} missing from {text:#?}"
            );
        }
    }

    #[test]
    fn hostile_names_stay_data() {
        let linted = crate::lint(&skeleton("a\"b: {c", "x\ny"));
        assert!(
            linted
                .diagnostics
                .iter()
                .all(|d| d.code == codes::UNANSWERED)
        );
    }
}
