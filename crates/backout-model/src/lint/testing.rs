//! Q9's settings: the URL rewrites of a rehearsal environment must be URLs, or a rehearsal
//! would quietly reach production's hosts.

use super::Checker;
use crate::codes;
use crate::decode::{Map, Section};
use crate::diagnostic::Diagnostic;
use crate::spec::PlanSpec;

pub(super) fn check(spec: &PlanSpec, checker: &mut Checker) {
    let Some(Section::Given(testing)) = spec.testing.as_deref() else {
        return;
    };
    schedule(testing, checker);
    for (env, settings) in testing.overrides.iter().flat_map(Map::iter) {
        for (from, to) in settings.urls.iter().flat_map(Map::iter) {
            if !is_url(&from.value) {
                checker.push(
                    Diagnostic::error(
                        codes::URL_REWRITE,
                        from.span,
                        format!(
                            "`{}` in testing.overrides.{}.urls is not an http(s) URL prefix",
                            from.value, env.value
                        ),
                    )
                    .with_help(
                        "write the scheme and host, like \"https://checkout.internal.example.com\"",
                    ),
                );
            } else if !is_url(to) && !to.trim_start().starts_with("${") {
                checker.push(
                    Diagnostic::error(
                        codes::URL_REWRITE,
                        from.span,
                        format!(
                            "`{}` in testing.overrides.{}.urls is rewritten to `{to}`, which is not an http(s) URL",
                            from.value, env.value
                        ),
                    )
                    .with_help("write the staging host, like \"https://checkout.staging.example.com\", or a ${VAR}"),
                );
            }
        }
    }
}

fn is_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty() && !host.starts_with('/'))
}

/// `testing.schedule`, `time_zone` and `renew_before`: a schedule the server cannot read would
/// silently never rehearse, which is what scheduling is meant to prevent.
fn schedule(testing: &crate::spec::TestingSpec, checker: &mut Checker) {
    if let Some(text) = &testing.schedule
        && let Err(why) = crate::rehearsal_schedule::RehearsalSchedule::parse(&text.value)
    {
        checker.push(
            Diagnostic::error(codes::REHEARSAL_SCHEDULE, text.span, format!("testing.schedule: {why}"))
                .with_help("write daily, weekly, hourly, `every 6h`, or cron like \"0 3 * * 1\" (03:00 on Mondays)"),
        );
    }
    if let Some(zone) = &testing.time_zone
        && !crate::rehearsal_schedule::plausible_time_zone(&zone.value)
    {
        checker.push(
            Diagnostic::error(
                codes::TIME_ZONE,
                zone.span,
                format!("`{}` is not a time zone", zone.value),
            )
            .with_help("write UTC, a fixed offset like +02:00, or an IANA name like Europe/Berlin"),
        );
    }
    if let Some(renew) = &testing.renew_before {
        let max_age = testing
            .max_age
            .as_ref()
            .map_or(crate::convert::defaults::MAX_AGE, |m| m.value);
        if renew.value.as_millis() >= max_age.as_millis() {
            checker.push(
                Diagnostic::warning(
                    codes::RENEW_BEFORE,
                    renew.span,
                    format!(
                        "testing.renew_before ({}) is not shorter than max_age ({max_age}): evidence would always be about to expire",
                        renew.value
                    ),
                )
                .with_help("renew some days before max_age runs out, e.g. renew_before: 7d with max_age: 30d"),
            );
        }
    }
}
