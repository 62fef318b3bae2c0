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
