//! Sealed rehearsals: what a rehearsal may reach, so that a staging rehearsal never touches
//! production.
//!
//! - Channels: [`seal`] gives a rehearsal run its own `communication.channels`: the
//!   environment's `testing.overrides.<env>.channels` when it has them (a route naming a channel
//!   the override lacks goes nowhere), else only the channels `testing.notify` lists (default
//!   none). The executor routes a rehearsal's events with the sealed plan, and the dispatcher
//!   seals the stored plan again for deliveries of rehearsal runs, so both agree.
//! - Environment: `testing.overrides.<env>.env` wins over a step's own `env` (the executor
//!   applies it last).
//! - URLs: [`unsealed_urls`] lists every http(s) URL a rehearsal would reach (steps,
//!   preconditions, verifies, the criteria that waits and verifies measure, the channels it
//!   notifies from `testing.notify`) that no `urls` rewrite covers, whose `${VAR}`s the
//!   environment's `env` does not override, and whose host is not in `testing.shared_hosts`.
//!   `backout rehearse` refuses to start while there is one.
//!
//! Pure: a plan and an environment in, a plan or a list out. The resolver only supplies values.

use backout_model::Plan;
use backout_model::plan::{
    Action, ChannelKind, Check, Override, Source, Step, StepKind, Testing, Wait,
};

use crate::env::Resolver;

/// A URL a rehearsal would reach although nothing seals it, and where the plan says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsealed {
    /// Where the plan uses it: "step `deploy`", "channel `ops`".
    pub place: String,
    /// The URL as written in the plan (what messages show: a `${VAR}` may hold a secret).
    pub written: String,
    /// The URL as the rehearsal would resolve it.
    pub url: String,
}

impl Unsealed {
    /// "step `deploy` reaches https://orders.example.com/deploy" (the host when the URL is
    /// written with a `${VAR}`).
    pub fn describe(&self) -> String {
        if self.written.contains("${") {
            format!(
                "{} reaches {} (host {})",
                self.place,
                self.written,
                host_of(&self.url).unwrap_or("?")
            )
        } else {
            format!("{} reaches {}", self.place, self.written)
        }
    }
}

fn settings<'a>(plan: &'a Plan, environment: &str) -> (Option<&'a Testing>, Option<&'a Override>) {
    let testing = plan.testing.given();
    let found = testing.and_then(|t| {
        t.overrides
            .iter()
            .find(|(env, _)| env == environment)
            .map(|(_, o)| o)
    });
    (testing, found)
}

/// The plan as a rehearsal in `environment` notifies with: its channels replaced by the
/// environment's override channels, or cut down to those `testing.notify` lists. Idempotent.
pub fn seal(mut plan: Plan, environment: &str) -> Plan {
    let (testing, found) = settings(&plan, environment);
    let replacement = found.and_then(|o| o.channels.clone());
    let allowed: Vec<String> = testing.map(|t| t.notify.clone()).unwrap_or_default();
    if let backout_model::plan::Answer::Given(communication) = &mut plan.communication {
        match replacement {
            Some(channels) => communication.channels = channels,
            None => communication
                .channels
                .retain(|c| allowed.iter().any(|a| a == &c.name)),
        }
    }
    plan
}

/// [`seal`] for rehearsal runs; any other run's plan unchanged.
pub fn for_run(plan: Plan, kind: backout_store::RunKind, environment: &str) -> Plan {
    if kind == backout_store::RunKind::Rehearsal {
        seal(plan, environment)
    } else {
        plan
    }
}

/// Where a rehearsal's notifications go, in words, for its output: "the staging channels
/// (ops, status-page)", "the channels testing.notify lists (team)", or "nowhere".
pub fn channels_said(plan: &Plan, environment: &str) -> String {
    let (_, found) = settings(plan, environment);
    let sealed = seal(plan.clone(), environment);
    let names: Vec<&str> = sealed
        .communication
        .given()
        .map(|c| c.channels.iter().map(|ch| ch.name.as_str()).collect())
        .unwrap_or_default();
    match (found.and_then(|o| o.channels.as_ref()), names.is_empty()) {
        (Some(_), true) => format!(
            "notifications: nowhere (testing.overrides.{environment}.channels declares none)"
        ),
        (Some(_), false) => format!(
            "notifications: only to testing.overrides.{environment}.channels ({})",
            names.join(", ")
        ),
        (None, true) => format!(
            "notifications: nowhere (a rehearsal notifies only testing.notify or testing.overrides.{environment}.channels, and the plan gives neither)"
        ),
        (None, false) => format!(
            "notifications: only to the channels testing.notify lists ({})",
            names.join(", ")
        ),
    }
}

/// Every http(s) URL a rehearsal in `environment` would reach that nothing seals (see the
/// module documentation). `resolver` is the rehearsal's (the environment's `env` applied), so
/// `${VAR}` references resolve as the run would resolve them; a reference that does not
/// resolve is left to the run to report.
pub fn unsealed_urls(plan: &Plan, environment: &str, resolver: &Resolver) -> Vec<Unsealed> {
    let (testing, found) = settings(plan, environment);
    let rewrites: Vec<&(String, String)> =
        found.map(|o| o.urls.iter().collect()).unwrap_or_default();
    let overridden: Vec<&str> = found
        .map(|o| o.env.iter().map(|(k, _)| k.as_str()).collect())
        .unwrap_or_default();
    let shared: Vec<&str> = testing
        .map(|t| t.shared_hosts.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut out: Vec<Unsealed> = Vec::new();
    for (place, written) in reached(plan, environment) {
        if !is_http(&written) {
            continue;
        }
        let references = crate::env::references(&written);
        if !references.is_empty() && references.iter().all(|r| overridden.contains(&r.as_str())) {
            // The environment's own `env` supplies the whole URL's variable part.
            continue;
        }
        let Ok(url) = resolver.resolve(&written) else {
            continue;
        };
        let lower = url.to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            continue;
        }
        if rewrites
            .iter()
            .any(|(from, _)| url.starts_with(from.as_str()))
        {
            continue;
        }
        if host_of(&url).is_some_and(|h| shared.iter().any(|s| s.eq_ignore_ascii_case(h))) {
            continue;
        }
        if !out.iter().any(|u| u.url == url && u.place == place) {
            out.push(Unsealed {
                place,
                written,
                url,
            });
        }
    }
    out
}

/// The URLs (as written) a rehearsal reaches, with where the plan uses them.
pub fn reached(plan: &Plan, environment: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(procedure) = plan.procedure.given() {
        for p in &procedure.preconditions {
            if let Action::Http(h) = &p.action {
                out.push((format!("precondition `{}`", p.id), h.url.clone()));
            }
        }
    }
    let steps: Vec<&Step> = plan
        .steps()
        .iter()
        .chain(
            plan.contingency
                .given()
                .into_iter()
                .flatten()
                .flat_map(|c| &c.steps),
        )
        .collect();
    let mut criteria: Vec<(String, &str)> = Vec::new();
    for step in steps {
        let place = format!("step `{}`", step.id);
        match &step.kind {
            StepKind::Http(h) => out.push((place.clone(), h.url.clone())),
            StepKind::Wait(Wait::Until { criterion, .. }) => {
                criteria.push((
                    format!("{place} (waits on criterion `{criterion}`)"),
                    criterion,
                ));
            }
            _ => {}
        }
        if let Some(verify) = &step.verify {
            let place = format!("{place}'s verify");
            match &verify.check {
                Check::Http(h) => out.push((place, h.url.clone())),
                Check::Prometheus(_) => {
                    out.extend(endpoint(plan, "prometheus").map(|url| (place.clone(), url)))
                }
                Check::Criterion(id) => {
                    criteria.push((format!("{place} (criterion `{id}`)"), id));
                }
                Check::Command(_) => {}
            }
        }
    }
    for (place, id) in criteria {
        let Some(criterion) = plan.criterion(id) else {
            continue;
        };
        match &criterion.source {
            Source::Http(h) => out.push((place, h.url.clone())),
            Source::Prometheus(_) => {
                out.extend(endpoint(plan, "prometheus").map(|u| (place.clone(), u)))
            }
            Source::Alertmanager { .. } => {
                out.extend(endpoint(plan, "alertmanager").map(|u| (place.clone(), u)));
            }
            Source::Command(_) => {}
        }
    }
    // Channels the rehearsal keeps from production's (`testing.notify`); an environment's own
    // override channels are its own and need no rewrite.
    let (_, found) = settings(plan, environment);
    if found.and_then(|o| o.channels.as_ref()).is_none()
        && let Some(communication) = seal(plan.clone(), environment).communication.given()
    {
        for channel in &communication.channels {
            if let ChannelKind::Webhook(url) | ChannelKind::Slack(url) | ChannelKind::Teams(url) =
                &channel.kind
            {
                out.push((format!("channel `{}`", channel.name), url.clone()));
            }
        }
    }
    out
}

/// A monitoring endpoint's URL: the plan's `criteria.sources`, else the variable named for it,
/// written as a reference so the rehearsal's resolver gives its value.
fn endpoint(plan: &Plan, kind: &str) -> Option<String> {
    let sources = plan.criteria.given().map(|c| &c.sources);
    let given = match kind {
        "prometheus" => sources.and_then(|s| s.prometheus.as_ref()),
        _ => sources.and_then(|s| s.alertmanager.as_ref()),
    };
    Some(match given {
        Some(e) => e.url.clone(),
        None if kind == "prometheus" => "${PROMETHEUS_URL}".into(),
        None => "${ALERTMANAGER_URL}".into(),
    })
}

fn is_http(text: &str) -> bool {
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("${")
}

/// The host of an http(s) URL, without port or user info.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(testing: &str) -> Plan {
        let text = format!(
            r#"version: 1
release: {{ service: s, version: "2", rollback_to: "1", environment: production }}
owners: {{ deployment_engineer: a@example.com }}
people: {{ ops: [a@example.com] }}
criteria:
  sources: {{ prometheus: {{ url: "https://prometheus.internal.example.com" }} }}
  rollback_when:
    - {{ id: health, http: {{ url: "https://app.internal.example.com/healthz" }} }}
    - {{ id: errors, prometheus: "q", fails_if: "> 1" }}
window: {{ closes_after: 4h }}
authorization: {{ deciders: ops }}
execution: {{ performers: ops }}
procedure:
  steps:
    - {{ id: deploy, http: {{ method: POST, url: "https://app.internal.example.com/deploy" }}, expected: 1s }}
    - {{ id: settle, needs: [deploy], wait: {{ until: health, timeout: 1m }}, expected: 1s }}
    - {{ id: check, needs: [settle], run: "true", verify: {{ criterion: errors }}, expected: 1s }}
    - {{ id: hook, needs: [check], http: {{ url: "${{HOOK_URL}}/x" }}, expected: 1s }}
contingency: {{ not_applicable: "t" }}
workarounds: []
expected_duration: {{ not_applicable: "t" }}
communication:
  channels:
    ops: {{ webhook: "https://hooks.example.com/ops" }}
    pager: {{ command: "page" }}
  notify: {{ completed: [ops, pager] }}
{testing}"#
        );
        let linted = backout_model::lint(&text);
        linted
            .plan
            .unwrap_or_else(|| panic!("test plan lints: {:#?}", linted.diagnostics))
    }

    fn channels(plan: &Plan) -> Vec<String> {
        plan.communication
            .given()
            .map(|c| c.channels.iter().map(|ch| ch.name.clone()).collect())
            .unwrap_or_default()
    }

    fn places(unsealed: &[Unsealed]) -> Vec<&str> {
        unsealed.iter().map(|u| u.place.as_str()).collect()
    }

    #[test]
    fn channels_are_the_environments_or_only_those_testing_notify_lists() {
        let none = plan("testing: { rehearse_in: staging }");
        assert!(channels(&seal(none.clone(), "staging")).is_empty());
        assert_eq!(
            channels(&none),
            ["ops", "pager"],
            "the plan itself is unchanged"
        );
        let listed = plan("testing: { rehearse_in: staging, notify: [pager] }");
        assert_eq!(channels(&seal(listed, "staging")), ["pager"]);
        let own = plan(
            "testing:\n  rehearse_in: staging\n  notify: [pager]\n  overrides:\n    staging:\n      channels: { ops: { webhook: \"https://hooks.example.com/staging\" } }",
        );
        let sealed = seal(own, "staging");
        assert_eq!(channels(&sealed), ["ops"]);
        assert_eq!(seal(sealed.clone(), "staging"), sealed, "idempotent");
    }

    #[test]
    fn every_url_must_be_rewritten_set_by_the_environment_or_shared() {
        let resolver = Resolver::from_vars([(
            "HOOK_URL".to_string(),
            "https://hooks.example.com".to_string(),
        )]);
        let bare = plan("testing: { rehearse_in: staging, notify: [ops] }");
        assert_eq!(
            places(&unsealed_urls(&bare, "staging", &resolver)),
            [
                "step `deploy`",
                "step `hook`",
                "step `settle` (waits on criterion `health`)",
                "step `check`'s verify (criterion `errors`)",
                "channel `ops`",
            ]
        );
        let sealed = plan(
            r#"testing:
  rehearse_in: staging
  notify: [ops]
  shared_hosts: [prometheus.internal.example.com, HOOKS.example.com]
  overrides:
    staging:
      env: { HOOK_URL: "http://127.0.0.1:9" }
      urls: { "https://app.internal.example.com": "https://app.staging.example.com" }"#,
        );
        let mut resolver = resolver;
        resolver.extend([("HOOK_URL".to_string(), "http://127.0.0.1:9".to_string())]);
        assert_eq!(unsealed_urls(&sealed, "staging", &resolver), []);
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://a.example.com:8443/x"),
            Some("a.example.com")
        );
        assert_eq!(
            host_of("http://user:pw@b.example.com/"),
            Some("b.example.com")
        );
        assert_eq!(host_of("http://[::1]:80/"), Some("::1"));
        assert_eq!(host_of("ftp://x"), None);
    }
}
