//! Builds the validated [`Plan`] from a spec that linted without errors, applying defaults.
//!
//! Lint has already checked every invariant; the conversions here still return `None` rather
//! than panic if one were ever violated.

use crate::decode::{Map, Section, Spanned};
use crate::duration::Duration;
use crate::plan::*;
use crate::spec::{self, Authorize, OnError, PlanSpec};

/// Defaults of plan format v1, in one place (the README documents the same values).
pub mod defaults {
    use crate::duration::Duration;
    pub const EVERY: Duration = Duration(std::time::Duration::from_secs(60));
    pub const SOURCE_TIMEOUT: Duration = Duration(std::time::Duration::from_secs(10));
    pub const TRIPS_AFTER: u32 = 1;
    pub const ERRORS_AFTER: u32 = 3;
    pub const QUORUM: u32 = 1;
    pub const CLOSING_NOTICE: Duration = Duration(std::time::Duration::from_secs(15 * 60));
    pub const MAX_PARALLEL: u32 = 16;
    pub const RETRY_DELAY: Duration = Duration(std::time::Duration::from_secs(10));
    pub const MAX_AGE: Duration = Duration(std::time::Duration::from_secs(30 * 86_400));
    pub const HTTP_METHOD: &str = "GET";
}

pub(crate) fn plan(spec: &PlanSpec) -> Option<Plan> {
    let release = spec.release.as_deref()?;
    let owners = spec.owners.as_deref()?;
    let automatic_listed: Vec<String> = match spec.authorization.as_deref() {
        Some(Section::Given(a)) => strings(a.automatic.iter().flatten()),
        _ => Vec::new(),
    };
    let criteria = answer(spec.criteria.as_deref()?, |c| {
        Some(criteria(c, &automatic_listed))
    })?;
    let automatic: Vec<String> = criteria
        .given()
        .map(|c| {
            c.rollback_when
                .iter()
                .filter(|c| c.automatic)
                .map(|c| c.id.clone())
                .collect()
        })
        .unwrap_or_default();
    Some(Plan {
        description: spec.description.clone(),
        release: Release {
            service: release.service.value.clone(),
            version: release.version.value.clone(),
            rollback_to: release.rollback_to.value.clone(),
            environment: release.environment.value.clone(),
            change_ticket: release.change_ticket.clone(),
            checkpoints: strings(release.checkpoints.iter().flatten()),
        },
        owners: Owners {
            deployment_engineer: owners.deployment_engineer.value.clone(),
            authors: strings(owners.authors.iter().flatten()),
        },
        people: spec
            .people
            .iter()
            .flat_map(Map::iter)
            .map(|(name, members)| Group {
                name: name.value.clone(),
                members: strings(members.value.iter()),
            })
            .collect(),
        criteria,
        window: answer(spec.window.as_deref()?, |w| {
            Some(Window {
                opens: w.opens.unwrap_or(Opens::Deploy),
                closes_after: w.closes_after.value,
                closes_at_checkpoint: w.closes_at_checkpoint.as_ref().map(|c| c.value.clone()),
                after_close: w.after_close.clone(),
                closing_notice: w
                    .closing_notice
                    .as_ref()
                    .map_or(defaults::CLOSING_NOTICE, |n| n.value),
            })
        })?,
        authorization: answer(spec.authorization.as_deref()?, |a| {
            Some(Authorization {
                deciders: a.deciders.value.clone(),
                quorum: a.quorum.as_ref().map_or(defaults::QUORUM, |q| q.value),
                fallback: a.fallback.as_ref().map(|f| Fallback {
                    after: f.after.value,
                    deciders: f.deciders.value.clone(),
                }),
                automatic: automatic.clone(),
                separation_of_duties: a.separation_of_duties.as_ref().is_some_and(|s| s.value),
            })
        })?,
        execution: answer(spec.execution.as_deref()?, |e| {
            Some(Execution {
                performers: e.performers.value.clone(),
                start_within: e.start_within.as_ref().map(|s| s.value),
            })
        })?,
        procedure: answer(spec.procedure.as_deref()?, procedure)?,
        contingency: answer(spec.contingency.as_deref()?, |c| {
            c.iter()
                .map(|(id, c)| {
                    Some(Contingency {
                        id: id.value.clone(),
                        description: c.description.clone(),
                        steps: steps(&c.steps)?,
                    })
                })
                .collect()
        })?,
        workarounds: answer(spec.workarounds.as_deref()?, |ws| {
            ws.iter()
                .map(|w| {
                    Some(Workaround {
                        id: w.id.value.clone(),
                        description: w.description.clone(),
                        steps: steps(w.steps.as_deref().unwrap_or_default())?,
                    })
                })
                .collect()
        })?,
        expected_duration: answer(spec.expected_duration.as_deref()?, |d| Some(d.value))?,
        communication: answer(spec.communication.as_deref()?, communication)?,
        testing: answer(spec.testing.as_deref()?, |t| {
            Some(Testing {
                rehearse_in: t.rehearse_in.value.clone(),
                max_age: t.max_age.as_ref().map_or(defaults::MAX_AGE, |m| m.value),
                overrides: t
                    .overrides
                    .iter()
                    .flat_map(Map::iter)
                    .map(|(env, o)| {
                        Some((
                            env.value.clone(),
                            Override {
                                env: pairs(o.env.as_ref()),
                                urls: pairs(o.urls.as_ref()),
                                channels: match &o.channels {
                                    Some(map) => Some(channels(map)?),
                                    None => None,
                                },
                            },
                        ))
                    })
                    .collect::<Option<_>>()?,
                notify: strings(t.notify.iter().flatten()),
                shared_hosts: strings(t.shared_hosts.iter().flatten()),
                schedule: t.schedule.as_ref().map(|s| s.value.clone()),
                time_zone: t
                    .time_zone
                    .as_ref()
                    .map_or_else(|| "UTC".to_string(), |z| z.value.clone()),
                renew_before: t.renew_before.as_ref().map(|d| d.value),
            })
        })?,
    })
}

fn answer<S, T>(section: &Section<S>, f: impl FnOnce(&S) -> Option<T>) -> Option<Answer<T>> {
    match section {
        Section::Given(s) => f(s).map(Answer::Given),
        Section::NotApplicable(reason) => Some(Answer::NotApplicable(reason.value.clone())),
    }
}

fn strings<'a>(items: impl Iterator<Item = &'a Spanned<String>>) -> Vec<String> {
    items.map(|s| s.value.clone()).collect()
}

fn pairs(map: Option<&Map<String>>) -> Vec<(String, String)> {
    map.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| (k.value.clone(), v.clone()))
        .collect()
}

fn spanned_pairs(map: Option<&Map<Spanned<String>>>) -> Vec<(String, String)> {
    map.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| (k.value.clone(), v.value.clone()))
        .collect()
}

fn criteria(c: &spec::CriteriaSpec, automatic: &[String]) -> Criteria {
    let endpoint = |e: &spec::EndpointSpec| Endpoint {
        url: e.url.value.clone(),
        headers: spanned_pairs(e.headers.as_ref()),
        timeout: e.timeout.as_ref().map(|t| t.value),
    };
    Criteria {
        sources: Sources {
            prometheus: c
                .sources
                .as_ref()
                .and_then(|s| s.prometheus.as_ref())
                .map(endpoint),
            alertmanager: c
                .sources
                .as_ref()
                .and_then(|s| s.alertmanager.as_ref())
                .map(endpoint),
        },
        rollback_when: c
            .rollback_when
            .iter()
            .filter_map(|c| criterion(c, automatic))
            .collect(),
        success_when: c.success_when.as_ref().map(|s| Success {
            hold: s.hold.value,
            checks: strings(s.checks.iter()),
        }),
    }
}

fn criterion(c: &spec::CriterionSpec, automatic: &[String]) -> Option<Criterion> {
    let source = if let Some(q) = &c.prometheus {
        Source::Prometheus(q.value.clone())
    } else if let Some(a) = &c.alertmanager {
        Source::Alertmanager {
            alert: a.alert.value.clone(),
            matchers: pairs(a.matchers.as_ref()),
        }
    } else if let Some(h) = &c.http {
        Source::Http(http_check(h))
    } else {
        Source::Command(c.command.as_ref()?.value.clone())
    };
    Some(Criterion {
        id: c.id.value.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
        source,
        fails_if: c.fails_if.as_ref().map(|f| f.value),
        passes_if: c.passes_if.as_ref().map(|p| p.value),
        every: c.every.as_ref().map_or(defaults::EVERY, |e| e.value),
        delay: c.delay.as_ref().map_or(Duration::ZERO, |d| d.value),
        // `trips_after_total` alone is a cumulative limit only (Argo's failureLimit): the
        // consecutive one then defaults to it, so it never trips first.
        trips_after: c.trips_after.as_ref().map_or(
            c.trips_after_total
                .as_ref()
                .map_or(defaults::TRIPS_AFTER, |t| t.value.max(1)),
            |t| t.value,
        ),
        no_data: c.no_data.unwrap_or(NoData::Inconclusive),
        errors_after: c
            .errors_after
            .as_ref()
            .map_or(defaults::ERRORS_AFTER, |e| e.value),
        on_error: c.on_error.unwrap_or(OnError::Inconclusive),
        automatic: c.authorize == Some(Authorize::Automatic) || automatic.contains(&c.id.value),
        timeout: c
            .timeout
            .as_ref()
            .map_or(defaults::SOURCE_TIMEOUT, |t| t.value),
        shadow: c.shadow.as_ref().is_some_and(|s| s.value),
        trips_after_total: c.trips_after_total.as_ref().map(|t| t.value),
        baseline: c.baseline.as_ref().and_then(|b| {
            match (&b.value.offset, &b.value.before_deploy) {
                (Some(o), None) => Some(Baseline::Offset(o.value)),
                (None, Some(d)) => Some(Baseline::BeforeDeploy(d.value)),
                _ => None,
            }
        }),
    })
}

fn http_check(h: &spec::HttpCheckSpec) -> HttpCheck {
    HttpCheck {
        url: h.url.value.clone(),
        method: h.method.as_ref().map_or(defaults::HTTP_METHOD.into(), |m| {
            m.value.to_ascii_uppercase()
        }),
        headers: spanned_pairs(h.headers.as_ref()),
        body: h.body.as_ref().map(|b| b.value.clone()),
        expect_status: h.expect_status.as_ref().map(|s| s.value),
        expect_body: h.expect_body.clone(),
        json_pointer: h.json_pointer.as_ref().map(|p| p.value.clone()),
    }
}

fn http_request(h: &spec::HttpRequestSpec) -> HttpRequest {
    HttpRequest {
        method: h.method.as_ref().map_or(defaults::HTTP_METHOD.into(), |m| {
            m.value.to_ascii_uppercase()
        }),
        url: h.url.value.clone(),
        headers: spanned_pairs(h.headers.as_ref()),
        body: h.body.as_ref().map(|b| b.value.clone()),
        expect_status: h.expect_status.as_ref().map(|s| s.value),
        expect_body: h.expect_body.clone(),
    }
}

fn procedure(p: &spec::ProcedureSpec) -> Option<Procedure> {
    Some(Procedure {
        max_parallel: p
            .max_parallel
            .as_ref()
            .map_or(defaults::MAX_PARALLEL, |m| m.value),
        preconditions: p
            .preconditions
            .iter()
            .flatten()
            .map(|c| {
                let action = if let Some(run) = &c.run {
                    Action::Run(run.value.clone())
                } else if let Some(exec) = &c.exec {
                    Action::Exec(exec.value.clone())
                } else {
                    Action::Http(http_request(c.http.as_ref()?))
                };
                Some(Precondition {
                    id: c.id.value.clone(),
                    title: c.title.clone(),
                    action,
                    timeout: c.timeout.as_ref().map(|t| t.value),
                })
            })
            .collect::<Option<_>>()?,
        steps: steps(&p.steps)?,
        verify_after: p.verify_after.as_ref().map(|v| VerifyAfter {
            checks: strings(v.checks.iter()),
            hold: v.hold.as_ref().map_or(Duration::ZERO, |h| h.value),
        }),
        pass_env: strings(p.pass_env.iter().flatten()),
    })
}

fn steps(steps: &[Spanned<spec::StepSpec>]) -> Option<Vec<Step>> {
    steps.iter().map(|s| step(s)).collect()
}

fn step(s: &spec::StepSpec) -> Option<Step> {
    let kind = if let Some(run) = &s.run {
        StepKind::Run(run.value.clone())
    } else if let Some(exec) = &s.exec {
        StepKind::Exec(exec.value.clone())
    } else if let Some(http) = &s.http {
        StepKind::Http(http_request(http))
    } else if let Some(manual) = &s.manual {
        StepKind::Manual {
            by: manual.by.value.clone(),
            instructions: manual.instructions.clone(),
        }
    } else if let Some(notify) = &s.notify {
        StepKind::Notify {
            channels: strings(notify.value.iter()),
            message: s.message.clone(),
        }
    } else {
        let wait = s.wait.as_ref()?;
        match (&wait.r#for, &wait.until) {
            (Some(d), _) => StepKind::Wait(Wait::For(d.value)),
            (None, Some(c)) => StepKind::Wait(Wait::Until {
                criterion: c.value.clone(),
                timeout: wait.timeout.as_ref().map(|t| t.value),
            }),
            (None, None) => return None,
        }
    };
    let verify = match &s.verify {
        None => None,
        Some(v) => {
            let check = if let Some(h) = &v.http {
                Check::Http(http_check(h))
            } else if let Some(c) = &v.command {
                Check::Command(c.value.clone())
            } else if let Some(q) = &v.prometheus {
                Check::Prometheus(q.value.clone())
            } else {
                Check::Criterion(v.criterion.as_ref()?.value.clone())
            };
            Some(Verify {
                check,
                fails_if: v.fails_if.as_ref().map(|f| f.value),
                passes_if: v.passes_if.as_ref().map(|p| p.value),
            })
        }
    };
    Some(Step {
        id: s.id.value.clone(),
        title: s.title.clone(),
        kind,
        needs: strings(s.needs.iter().flatten()),
        expected: s.expected.as_ref().map(|e| e.value),
        timeout: s.timeout.as_ref().map(|t| t.value),
        retries: s.retries.as_ref().map_or(0, |r| r.value),
        retry_delay: s
            .retry_delay
            .as_ref()
            .map_or(defaults::RETRY_DELAY, |r| r.value),
        idempotent: s.is_idempotent(),
        manual_wait: s
            .manual
            .as_ref()
            .map(|m| crate::plan::ManualWait {
                remind_every: m.value.remind_every.as_ref().map(|d| d.value),
                timeout: m.value.timeout.as_ref().map(|d| d.value),
            })
            .unwrap_or_default(),
        when_checkpoint: s.when_checkpoint.as_ref().map(|w| w.value.clone()),
        verify,
        on_failure: match s.on_failure.as_ref().map(|o| &o.value) {
            None | Some(spec::OnFailure::Halt) => OnFailure::Halt,
            Some(spec::OnFailure::Continue) => OnFailure::Continue,
            Some(spec::OnFailure::Ask) => OnFailure::Ask,
            Some(spec::OnFailure::Contingency(id)) => OnFailure::Contingency(id.clone()),
        },
        env: spanned_pairs(s.env.as_ref()),
        outputs: s
            .outputs
            .iter()
            .flat_map(|o| o.keys())
            .map(str::to_string)
            .collect(),
    })
}

fn communication(c: &spec::CommunicationSpec) -> Option<Communication> {
    Some(Communication {
        channels: channels(&c.channels)?,
        notify: by_event(c.notify.as_ref(), |v| strings(v.iter())),
        templates: by_event(c.templates.as_ref(), |v| v.value.clone()),
    })
}

fn channels(map: &Map<Spanned<spec::ChannelSpec>>) -> Option<Vec<Channel>> {
    map.iter()
        .map(|(name, ch)| {
            let kind = if let Some(w) = &ch.webhook {
                ChannelKind::Webhook(w.value.clone())
            } else if let Some(s) = &ch.slack {
                ChannelKind::Slack(s.value.clone())
            } else if let Some(e) = &ch.email {
                ChannelKind::Email(strings(e.iter()))
            } else if let Some(pd) = &ch.pagerduty {
                ChannelKind::PagerDuty {
                    routing_key: pd.routing_key.value.clone(),
                    url: pd.url.as_ref().map(|u| u.value.clone()),
                }
            } else if let Some(t) = &ch.teams {
                ChannelKind::Teams(t.value.clone())
            } else {
                ChannelKind::Command(ch.command.as_ref()?.value.clone())
            };
            Some(Channel {
                name: name.value.clone(),
                kind,
                headers: spanned_pairs(ch.headers.as_ref().map(|h| &h.value)),
                secret: ch.secret.as_ref().map(|s| s.value.clone()),
            })
        })
        .collect()
}

/// Entries keyed by event name, in the order of [`Event::ALL`] (unknown names were lint errors).
fn by_event<V, T>(map: Option<&Map<V>>, f: impl Fn(&V) -> T) -> Vec<(Event, T)> {
    let mut out: Vec<(Event, T)> = map
        .iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| Event::parse(&k.value).map(|e| (e, f(v))))
        .collect();
    out.sort_by_key(|(e, _)| *e);
    out
}
