//! Who: people groups, the deciders' quorum, separation of duties, and the channels people are
//! reached through. Unknown group names are reported by `references`.

use super::Checker;
use crate::codes;
use crate::decode::{Section, Spanned};
use crate::diagnostic::Diagnostic;
use crate::spec::{ChannelSpec, PlanSpec};

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let members = |name: &str| -> Option<Vec<&str>> {
        spec.people
            .as_ref()?
            .get(name)
            .map(|m| m.value.iter().map(|s| s.value.as_str()).collect())
    };
    let mut referenced: Vec<&Spanned<String>> = Vec::new();
    if let Some(Section::Given(auth)) = spec.authorization.as_deref() {
        referenced.push(&auth.deciders);
        if let Some(fallback) = &auth.fallback {
            referenced.push(&fallback.deciders);
        }
        let quorum = auth.quorum.as_ref().map_or(1, |q| q.value);
        if let Some(q) = &auth.quorum
            && q.value == 0
        {
            checker.push(
                Diagnostic::error(
                    codes::ZERO_QUORUM,
                    q.span,
                    "quorum is 0: nobody would need to approve",
                )
                .with_help("use `quorum: 1` or more; automatic rollbacks go in `automatic`"),
            );
        }
        if let Some(deciders) = members(&auth.deciders.value) {
            let distinct = distinct(&deciders);
            if quorum as usize > distinct && distinct > 0 {
                checker.push(
                    Diagnostic::error(
                        codes::QUORUM_TOO_LARGE,
                        auth.quorum.as_ref().map_or(auth.deciders.span, |q| q.span),
                        format!(
                            "quorum {quorum} needs more approvers than the {distinct} in `{}`",
                            auth.deciders.value
                        ),
                    )
                    .with_help("lower the quorum or add people to the deciders group"),
                );
            }
            if let Some(sod) = &auth.separation_of_duties
                && sod.value
                && let Some(Section::Given(execution)) = spec.execution.as_deref()
                && let Some(performers) = members(&execution.performers.value)
                && performers.iter().all(|p| deciders.contains(p))
                && !performers.is_empty()
            {
                checker.push(
                    Diagnostic::error(
                        codes::NO_SEPARATE_PERFORMER,
                        sod.span,
                        format!(
                            "separation_of_duties: every performer in `{}` is also a decider in `{}`, so nobody could perform an approved rollback",
                            execution.performers.value, auth.deciders.value
                        ),
                    )
                    .with_help("add a performer who is not a decider, or drop separation_of_duties"),
                );
            }
        }
    }
    if let Some(Section::Given(execution)) = spec.execution.as_deref() {
        referenced.push(&execution.performers);
    }
    for list in super::step_lists(spec) {
        for step in list.steps {
            if let Some(manual) = &step.manual {
                referenced.push(&manual.by);
            }
        }
    }
    if let Some(people) = &spec.people {
        for (name, group) in people.iter() {
            let list: Vec<&str> = group.value.iter().map(|s| s.value.as_str()).collect();
            if list.is_empty() {
                let used = referenced.iter().any(|r| r.value == name.value);
                let message = format!("people group `{}` is empty", name.value);
                let d = if used {
                    Diagnostic::error(
                        codes::EMPTY_GROUP,
                        name.span,
                        format!("{message}, but the plan relies on it"),
                    )
                } else {
                    Diagnostic::warning(codes::EMPTY_GROUP, name.span, message)
                };
                checker
                    .push(d.with_help("list at least one person (an email address or user name)"));
            }
            for member in &group.value {
                if member.value.trim().is_empty() {
                    checker.push(Diagnostic::error(
                        codes::EMPTY_GROUP,
                        member.span,
                        "an empty name in a people group",
                    ));
                }
            }
            if distinct(&list) < list.len() {
                checker.push(Diagnostic::warning(
                    codes::EMPTY_GROUP,
                    group.span,
                    format!("people group `{}` lists someone twice", name.value),
                ));
            }
        }
    }
    if let Some(Section::Given(communication)) = spec.communication.as_deref() {
        for (name, channel) in communication.channels.iter() {
            let kinds = super::given(&[
                ("webhook", channel.webhook.is_some()),
                ("slack", channel.slack.is_some()),
                ("email", channel.email.is_some()),
                ("command", channel.command.is_some()),
                ("pagerduty", channel.pagerduty.is_some()),
                ("teams", channel.teams.is_some()),
            ]);
            if kinds.len() != 1 {
                let found = if kinds.is_empty() {
                    "no kind".to_string()
                } else {
                    format!("several kinds: {}", kinds.join(", "))
                };
                checker.push(
                    Diagnostic::error(
                        codes::CHANNEL_KIND,
                        name.span,
                        format!("channel `{}` has {found}", name.value),
                    )
                    .with_help(
                        "give it exactly one of webhook, slack, email, command, pagerduty, teams",
                    ),
                );
            }
            channel_options(name, channel, checker);
            for address in channel.email.iter().flatten() {
                if !address.value.contains('@') && !address.value.starts_with("${") {
                    checker.push(
                        Diagnostic::error(
                            codes::INVALID_VALUE,
                            address.span,
                            format!("`{}` is not an email address", address.value),
                        )
                        .with_help("write name@example.com, or a ${VAR} holding one"),
                    );
                }
            }
        }
    }
}

/// The URLs of a channel are URLs; `headers` and `secret` belong to webhooks; the secret and the
/// PagerDuty routing key are `${VAR}` references, never written out.
pub(super) fn channel_options(
    name: &Spanned<String>,
    channel: &ChannelSpec,
    checker: &mut Checker,
) {
    for url in [&channel.webhook, &channel.slack, &channel.teams]
        .into_iter()
        .flatten()
    {
        super::http_url(url, checker);
    }
    if let Some(url) = channel.pagerduty.as_ref().and_then(|p| p.url.as_ref()) {
        super::http_url(url, checker);
    }
    if channel.webhook.is_none() {
        let given = [
            ("headers", channel.headers.as_ref().map(|h| h.span)),
            ("secret", channel.secret.as_ref().map(|s| s.span)),
        ];
        for (field, span) in given {
            if let Some(span) = span {
                checker.push(
                    Diagnostic::error(
                        codes::WEBHOOK_OPTION,
                        span,
                        format!(
                            "channel `{}` has `{field}`, which only webhook channels take",
                            name.value
                        ),
                    )
                    .with_help("remove it, or make the channel a `webhook: URL`"),
                );
            }
        }
    }
    for (header, _) in channel.headers.iter().flat_map(|h| h.value.iter()) {
        let token = !header.value.is_empty()
            && header
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            checker.push(
                Diagnostic::error(
                    codes::WEBHOOK_OPTION,
                    header.span,
                    format!("`{}` is not an HTTP header name", header.value),
                )
                .with_help("use letters, digits and dashes, e.g. X-Team"),
            );
        }
    }
    let secrets = [
        ("secret", channel.secret.as_ref()),
        (
            "routing_key",
            channel.pagerduty.as_ref().map(|p| &p.routing_key),
        ),
    ];
    for (field, value) in secrets {
        if let Some(value) = value
            && !is_reference(&value.value)
        {
            checker.push(
                Diagnostic::error(
                    codes::CHANNEL_SECRET,
                    value.span,
                    format!("channel `{}` has its {field} written out", name.value),
                )
                .with_help(format!(
                    "write a reference such as `${{{}}}` and set that variable where backout runs",
                    if field == "secret" {
                        "WEBHOOK_SECRET"
                    } else {
                        "PD_ROUTING_KEY"
                    }
                )),
            );
        }
    }
}

/// `${NAME}` and nothing else.
fn is_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|name| !name.is_empty() && !name.contains(['{', '}', '$']))
}

fn distinct(names: &[&str]) -> usize {
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len()
}
