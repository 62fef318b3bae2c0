//! Values reaching steps: `${VAR}` references resolved from the environment at the moment of use,
//! and the redaction of those values from everything captured.
//!
//! A `run:` string is never rewritten: the shell expands `$VAR` itself from the environment the
//! step receives, so data can never become code. Argument lists, URLs, headers, bodies and `env`
//! values are resolved here.

use std::collections::{BTreeMap, BTreeSet};

use crate::criteria::Observation;
use crate::criteria::sources::Source;

/// Variables of backout's own environment that every process of a plan receives.
pub const ALWAYS_PASSED: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

/// Resolves `${NAME}` references against the process environment.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    vars: BTreeMap<String, String>,
    /// Names the plan itself gives values to (a rehearsal's overrides, [`Resolver::extend`])
    /// or lists in `procedure.pass_env` ([`Resolver::passing`]): passed to its processes.
    passed: BTreeSet<String>,
    /// URL prefixes replaced in every resolved URL (a rehearsal's
    /// `testing.overrides.<env>.urls`), longest prefix first.
    url_rewrites: Vec<(String, String)>,
}

/// A `${NAME}` the environment does not define.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{0}` is not set (the plan references it as ${{{0}}})")]
pub struct MissingVar(pub String);

impl Resolver {
    /// A resolver over the current process environment.
    pub fn from_env() -> Resolver {
        Resolver {
            vars: std::env::vars().collect(),
            passed: BTreeSet::new(),
            url_rewrites: Vec::new(),
        }
    }

    /// A resolver over given variables (tests, overrides).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Resolver {
        Resolver {
            vars: vars.into_iter().collect(),
            passed: BTreeSet::new(),
            url_rewrites: Vec::new(),
        }
    }

    /// Adds or replaces variables (environment overrides of a rehearsal). They are the plan's
    /// own values, so its processes receive them.
    pub fn extend(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            self.passed.insert(name.clone());
            self.vars.insert(name, value);
        }
    }

    /// The same resolver, whose processes also receive the variables named (the plan's
    /// `procedure.pass_env`).
    pub fn passing(&self, names: &[String]) -> Resolver {
        let mut resolver = self.clone();
        resolver.passed.extend(names.iter().cloned());
        resolver
    }

    /// The part of backout's environment a process of the plan receives: [`ALWAYS_PASSED`],
    /// the variables `referenced` as `${VAR}`, those of [`Resolver::extend`] and
    /// [`Resolver::passing`] — never a `BACKOUT_*` variable of backout's own (`BACKOUT_TOKEN`,
    /// `BACKOUT_DATABASE_URL`, …: the caller adds the run's `BACKOUT_*` values itself), and
    /// nothing else. Processes are started with a cleared environment and exactly this plus
    /// what the caller adds.
    pub fn passed_env<S: AsRef<str>>(&self, referenced: &[S]) -> Vec<(String, String)> {
        let names: BTreeSet<&str> = ALWAYS_PASSED
            .iter()
            .copied()
            .chain(referenced.iter().map(AsRef::as_ref))
            .chain(self.passed.iter().map(String::as_str))
            .filter(|name| !name.starts_with("BACKOUT_"))
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                self.vars
                    .get(name)
                    .map(|value| (name.to_string(), value.clone()))
            })
            .collect()
    }

    /// Adds URL prefix rewrites (`https://checkout.internal.example.com` →
    /// `http://127.0.0.1:8080`): a rehearsal reaches the staging hosts of a plan written with
    /// production URLs.
    pub fn rewrite_urls(&mut self, rewrites: impl IntoIterator<Item = (String, String)>) {
        self.url_rewrites.extend(rewrites);
        self.url_rewrites
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// Resolves `${NAME}` in a URL, then applies the longest matching prefix rewrite.
    pub fn resolve_url(&self, text: &str) -> Result<String, MissingVar> {
        let url = self.resolve(text)?;
        Ok(
            match self
                .url_rewrites
                .iter()
                .find(|(from, _)| url.starts_with(from.as_str()))
            {
                Some((from, to)) => format!("{to}{}", &url[from.len()..]),
                None => url,
            },
        )
    }

    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Replaces every `${NAME}` in `text` with its value.
    pub fn resolve(&self, text: &str) -> Result<String, MissingVar> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            match self.vars.get(name) {
                Some(value) => out.push_str(value),
                None => return Err(MissingVar(name.to_string())),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Names referenced as `${NAME}` anywhere in a text.
pub fn references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    names
}

/// Removes secret values from captured text, replacing each with `${NAME}`.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// (value, name), longest value first so a secret containing another is replaced whole.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Every variable the plan references as `${NAME}` is a secret; values shorter than 4
    /// characters are ignored (redacting "1" would garble all output and protects nothing).
    pub fn new(plan_source: &str, resolver: &Resolver) -> Redactor {
        let mut secrets: Vec<(String, String)> = references(plan_source)
            .into_iter()
            .filter_map(|name| resolver.vars.get(&name).map(|v| (v.clone(), name)))
            .filter(|(value, _)| value.len() >= 4)
            .collect();
        secrets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, name) in &self.secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        out
    }
}

impl Redactor {
    /// The redactor of one criterion's measurements: the values of every variable the criterion
    /// and its plan's source configuration (`criteria.sources`: URLs, headers) reference.
    /// Nothing else reaches the measurement: a command criterion's environment holds only what
    /// its script references (and `pass_env`), an HTTP criterion sends only its own headers.
    pub fn of_criterion(
        criterion: &backout_model::plan::Criterion,
        sources: &backout_model::plan::Sources,
        resolver: &Resolver,
    ) -> Redactor {
        let text = format!(
            "{}{}{}",
            serde_json::to_string(criterion).unwrap_or_default(),
            serde_json::to_string(sources).unwrap_or_default(),
            resolver
                .passed
                .iter()
                .map(|name| format!("${{{name}}}"))
                .collect::<String>()
        );
        Redactor::new(&text, resolver)
    }

    /// Redacts every string of a JSON value in place (keys too).
    pub fn json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => *text = self.redact(text),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.redact(&key), v);
                }
            }
            _ => {}
        }
    }

    /// An observation with every secret value replaced by its `${NAME}`: the text of errors and
    /// judgements (a mismatch message quoting `expect_body`, a command's stderr) and series
    /// labels. Numbers are not text and stay as they are.
    pub fn observation(&self, observation: Observation) -> Observation {
        match observation {
            Observation::Judged { failing, detail } => Observation::Judged {
                failing,
                detail: self.redact(&detail),
            },
            Observation::Error { message } => Observation::Error {
                message: self.redact(&message),
            },
            Observation::Values { series } => Observation::Values {
                series: series
                    .into_iter()
                    .map(|mut s| {
                        for (name, value) in &mut s.labels {
                            *name = self.redact(name);
                            *value = self.redact(value);
                        }
                        s
                    })
                    .collect(),
            },
            Observation::NoData => Observation::NoData,
        }
    }
}

/// A criterion's source whose every observation passes through the criterion's redactor
/// before anyone (the journal, `status`, the API, a notification) sees it.
pub struct RedactedSource {
    inner: std::sync::Arc<dyn Source>,
    redactor: Redactor,
}

impl RedactedSource {
    pub fn new(inner: std::sync::Arc<dyn Source>, redactor: Redactor) -> RedactedSource {
        RedactedSource { inner, redactor }
    }
}

#[async_trait::async_trait]
impl Source for RedactedSource {
    async fn observe(&self) -> Observation {
        self.redactor.observation(self.inner.observe().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_by_the_longest_prefix_after_resolution() {
        let mut r = Resolver::from_vars([("HOST".to_string(), "api.example.com".to_string())]);
        r.rewrite_urls([
            (
                "https://api.example.com".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            (
                "https://api.example.com/v2".to_string(),
                "http://127.0.0.1:2".to_string(),
            ),
        ]);
        assert_eq!(
            r.resolve_url("https://${HOST}/v1/x").unwrap(),
            "http://127.0.0.1:1/v1/x"
        );
        assert_eq!(
            r.resolve_url("https://${HOST}/v2/x").unwrap(),
            "http://127.0.0.1:2/x"
        );
        assert_eq!(
            r.resolve_url("https://other.example.com/").unwrap(),
            "https://other.example.com/"
        );
        assert_eq!(
            r.resolve("https://${HOST}/v1").unwrap(),
            "https://api.example.com/v1",
            "only URLs"
        );
    }

    #[test]
    fn resolves_and_reports_missing() {
        let r = Resolver::from_vars([("TOKEN".to_string(), "s3cr3t".to_string())]);
        assert_eq!(r.resolve("Bearer ${TOKEN}!").unwrap(), "Bearer s3cr3t!");
        assert_eq!(r.resolve("${NOPE}"), Err(MissingVar("NOPE".into())));
        assert_eq!(r.resolve("no refs $PLAIN").unwrap(), "no refs $PLAIN");
    }

    #[test]
    fn processes_get_only_what_the_plan_names() {
        let mut r = Resolver::from_vars(
            [
                ("PATH", "/usr/bin"),
                ("HOME", "/home/x"),
                ("AWS_SECRET_ACCESS_KEY", "leak"),
                ("BACKOUT_TOKEN", "tok-1.secret"),
                ("BACKOUT_DATABASE_URL", "postgres://u:p@db/x"),
                ("API_TOKEN", "referenced"),
                ("KUBECONFIG", "/k"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        r.extend([("OVERRIDE".to_string(), "o".to_string())]);
        let r = r.passing(&["KUBECONFIG".to_string()]);
        let env = r.passed_env(&["API_TOKEN", "BACKOUT_TOKEN", "UNSET"]);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["API_TOKEN", "HOME", "KUBECONFIG", "OVERRIDE", "PATH"],
            "{env:?}"
        );
    }

    #[test]
    fn redacts_referenced_values_only() {
        let r = Resolver::from_vars([
            ("TOKEN".to_string(), "s3cr3t-value".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        let red = Redactor::new("url: https://x/${TOKEN}", &r);
        assert_eq!(
            red.redact("got s3cr3t-value in /root"),
            "got ${TOKEN} in /root"
        );
    }
}
