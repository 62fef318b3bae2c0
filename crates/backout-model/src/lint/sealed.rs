//! Sealed rehearsals (Q9): what a rehearsal may reach. The channels of `testing.notify` and of
//! `testing.overrides.<env>.channels` must be real channels; `testing.shared_hosts` holds host
//! names; and once an environment declares `urls` rewrites, every literal http(s) URL its
//! rehearsal would reach (steps, preconditions, verifies, the criteria that waits and verifies
//! measure, the `testing.notify` channels) must be rewritten, set through the environment's
//! `env`, or on a shared host (B090).
//!
//! `backout rehearse` refuses the same URLs at run time whether or not `urls` is declared, with
//! `${VAR}`s resolved; lint warns only where the author started sealing an environment, so a
//! plan that never rehearses against real hosts is not flooded with warnings.

use super::Checker;
use crate::codes;
use crate::decode::{Map, Section, Spanned};
use crate::diagnostic::Diagnostic;
use crate::spec::{ChannelSpec, CriterionSpec, PlanSpec, StepSpec};

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let Some(Section::Given(testing)) = spec.testing.as_deref() else {
        return;
    };
    let declared: Vec<&str> = match spec.communication.as_deref() {
        Some(Section::Given(c)) => c.channels.keys().collect(),
        _ => Vec::new(),
    };
    for name in testing.notify.iter().flatten() {
        if !declared.contains(&name.value.as_str()) {
            checker.push(
                Diagnostic::error(
                    codes::UNKNOWN_CHANNEL,
                    name.span,
                    format!(
                        "testing.notify names `{}`, which communication.channels does not declare",
                        name.value
                    ),
                )
                .with_help(if declared.is_empty() {
                    "declare the channel under communication.channels first".to_string()
                } else {
                    format!("declared channels: {}", declared.join(", "))
                }),
            );
        }
    }
    for host in testing.shared_hosts.iter().flatten() {
        let h = host.value.as_str();
        if h.is_empty() || h.contains("://") || h.contains(['/', ' ', '@', '?', '#']) {
            checker.push(
                Diagnostic::error(
                    codes::SHARED_HOST,
                    host.span,
                    format!("`{h}` in testing.shared_hosts is not a host name"),
                )
                .with_help("write the host alone, like prometheus.internal.example.com (no scheme, path or port)"),
            );
        }
    }
    for (env, settings) in testing.overrides.iter().flat_map(Map::iter) {
        for (name, channel) in settings.channels.iter().flat_map(Map::iter) {
            channel_kind(&env.value, name, channel, checker);
        }
        let Some(urls) = &settings.urls else {
            continue;
        };
        let rewrites: Vec<&str> = urls.keys().collect();
        if rewrites
            .iter()
            .any(|from| !(from.starts_with("http://") || from.starts_with("https://")))
        {
            // B087 already says the rewrites are broken; what they miss is not known yet.
            continue;
        }
        let shared: Vec<&str> = testing
            .shared_hosts
            .iter()
            .flatten()
            .map(|h| h.value.as_str())
            .collect();
        let mut reached = reached(spec);
        if settings.channels.is_none()
            && let Some(Section::Given(c)) = spec.communication.as_deref()
        {
            for name in testing.notify.iter().flatten() {
                if let Some(channel) = c.channels.get(&name.value) {
                    for url in [&channel.webhook, &channel.slack, &channel.teams]
                        .into_iter()
                        .flatten()
                    {
                        reached.push((format!("channel `{}`", name.value), url));
                    }
                }
            }
        }
        for (place, url) in reached {
            let v = url.value.as_str();
            let references = references(v);
            if !references.is_empty() {
                // Known only once resolved: `rehearse` checks it then.
                continue;
            }
            if !(v.starts_with("http://") || v.starts_with("https://"))
                || rewrites.iter().any(|from| v.starts_with(from))
                || host_of(v).is_some_and(|h| shared.iter().any(|s| s.eq_ignore_ascii_case(h)))
            {
                continue;
            }
            checker.push(
                Diagnostic::warning(
                    codes::UNSEALED_URL,
                    url.span,
                    format!(
                        "a rehearsal in `{}` would reach `{v}` ({place}): testing.overrides.{}.urls does not rewrite it",
                        env.value, env.value
                    ),
                )
                .with_help(format!(
                    "add a rewrite under testing.overrides.{}.urls, or list `{}` in testing.shared_hosts if every environment shares it; `backout rehearse` refuses to start until then",
                    env.value,
                    host_of(v).unwrap_or(v)
                )),
            );
        }
    }
}

/// An override channel has exactly one kind, and its URLs are URLs.
fn channel_kind(env: &str, name: &Spanned<String>, channel: &ChannelSpec, checker: &mut Checker) {
    let kinds = [
        channel.webhook.is_some(),
        channel.slack.is_some(),
        channel.email.is_some(),
        channel.command.is_some(),
        channel.pagerduty.is_some(),
        channel.teams.is_some(),
    ]
    .into_iter()
    .filter(|k| *k)
    .count();
    if kinds != 1 {
        checker.push(
            Diagnostic::error(
                codes::CHANNEL_KIND,
                name.span,
                format!(
                    "channel `{}` of testing.overrides.{env}.channels has {}",
                    name.value,
                    if kinds == 0 {
                        "no kind".to_string()
                    } else {
                        format!("{kinds} kinds")
                    }
                ),
            )
            .with_help("give it exactly one of webhook, slack, email, command, pagerduty, teams"),
        );
    }
    super::people::channel_options(name, channel, checker);
}

/// The literal URLs a rehearsal reaches, with where the plan uses them: the procedure's and
/// the contingency branches' steps (http, verify, wait until), the preconditions, and the
/// monitoring endpoints and http checks of the criteria those waits and verifies measure.
fn reached(spec: &PlanSpec) -> Vec<(String, &Spanned<String>)> {
    let mut out: Vec<(String, &Spanned<String>)> = Vec::new();
    let (criteria, sources) = match spec.criteria.as_deref() {
        Some(Section::Given(c)) => (c.rollback_when.as_slice(), c.sources.as_ref()),
        _ => (&[][..], None),
    };
    let criterion = |id: &str| -> Option<&CriterionSpec> {
        criteria.iter().map(|c| &c.value).find(|c| c.id.value == id)
    };
    let prometheus = sources.and_then(|s| s.prometheus.as_ref()).map(|e| &e.url);
    let alertmanager = sources
        .and_then(|s| s.alertmanager.as_ref())
        .map(|e| &e.url);
    let mut measured: Vec<(String, &str)> = Vec::new();
    if let Some(Section::Given(procedure)) = spec.procedure.as_deref() {
        for p in procedure.preconditions.iter().flatten() {
            if let Some(http) = &p.http {
                out.push((format!("precondition `{}`", p.id.value), &http.url));
            }
        }
    }
    let steps: Vec<&Spanned<StepSpec>> = super::step_lists(spec)
        .into_iter()
        .filter(|l| l.namespace == 0)
        .flat_map(|l| l.steps.iter())
        .collect();
    for step in steps {
        let place = format!("step `{}`", step.id.value);
        if let Some(http) = &step.http {
            out.push((place.clone(), &http.url));
        }
        if let Some(until) = step.wait.as_ref().and_then(|w| w.until.as_ref()) {
            measured.push((place.clone(), until.value.as_str()));
        }
        if let Some(verify) = &step.verify {
            if let Some(http) = &verify.http {
                out.push((format!("{place}'s verify"), &http.url));
            }
            if verify.prometheus.is_some()
                && let Some(url) = prometheus
            {
                out.push((format!("{place}'s verify"), url));
            }
            if let Some(id) = &verify.criterion {
                measured.push((format!("{place}'s verify"), id.value.as_str()));
            }
        }
    }
    for (place, id) in measured {
        let Some(c) = criterion(id) else { continue };
        let place = format!("{place}, criterion `{id}`");
        if let Some(http) = &c.http {
            out.push((place, &http.url));
        } else if c.prometheus.is_some() {
            out.extend(prometheus.map(|u| (place, u)));
        } else if c.alertmanager.is_some() {
            out.extend(alertmanager.map(|u| (place, u)));
        }
    }
    out
}

/// `${NAME}` references in a text.
fn references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

/// The host of an http(s) URL, without port or user info.
fn host_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then_some(host)
}
