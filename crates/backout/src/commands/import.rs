//! `backout import argo|flagger FILE…`: criteria from Argo Rollouts analysis templates and
//! Flagger metric templates and canaries, printed as a `criteria:` block to paste into a plan.
//!
//! Only what maps exactly is written as a field; every source field that does not map is a
//! comment next to the criterion saying why, so nothing is dropped silently. What cannot be
//! imported at all (another provider, a condition that is not `result[0] OP N`, an argument
//! without a value) is named on standard error and the command exits 2, after printing what
//! could be imported. The documents are read with the plan's own YAML reader (`yaml::parse`),
//! one `---` document at a time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use backout_model::Condition;
use backout_model::yaml::{Node, Value, parse};

use crate::cli::{ImportArgs, ImportCommand};
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// One imported criterion: its fields in order, each with an optional comment.
#[derive(Default)]
struct Criterion {
    id: String,
    fields: Vec<(String, String, Option<String>)>,
    notes: Vec<String>,
}

impl Criterion {
    fn field(&mut self, key: &str, value: String, comment: Option<String>) {
        self.fields.push((key.to_string(), value, comment));
    }
}

/// Everything read from the files.
#[derive(Default)]
struct Imported {
    criteria: Vec<Criterion>,
    prometheus: Option<String>,
    refused: Vec<String>,
}

pub fn run(args: &ImportArgs) -> Result<ExitCode, CommandError> {
    let mut imported = Imported::default();
    let (files, vars): (&[PathBuf], &[String]) = match &args.command {
        ImportCommand::Argo { files, args } => (files, args),
        ImportCommand::Flagger { files } => (files, &[]),
    };
    let mut given = BTreeMap::new();
    for var in vars {
        let (name, value) = var
            .split_once('=')
            .ok_or_else(|| CommandError::usage(format!("--arg `{var}`: write it as NAME=VALUE")))?;
        given.insert(name.to_string(), value.to_string());
    }
    let mut documents = Vec::new();
    for file in files {
        let text = read_plan(file).map_err(CommandError::usage)?;
        for (i, doc) in split_documents(&text).into_iter().enumerate() {
            let root = parse(doc)
                .map_err(|d| {
                    CommandError::usage(format!(
                        "{} (document {}): {}",
                        file.display(),
                        i + 1,
                        d.message
                    ))
                })?
                .root;
            if !matches!(root.value, Value::Null) {
                documents.push((format!("{} (document {})", file.display(), i + 1), root));
            }
        }
    }
    match &args.command {
        ImportCommand::Argo { .. } => {
            for (place, root) in &documents {
                argo(place, root, &given, &mut imported);
            }
        }
        ImportCommand::Flagger { .. } => flagger(&documents, &mut imported),
    }
    output::out(&yaml(&imported));
    if imported.refused.is_empty() {
        return Ok(ExitCode::Ok);
    }
    for r in &imported.refused {
        output::error(&format!("cannot import: {r}"));
    }
    Ok(ExitCode::Usage)
}

/// The `---`-separated documents of a Kubernetes manifest.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

fn text(node: Option<&Node>) -> Option<String> {
    match &node?.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn path<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a Node> {
    keys.iter().try_fold(node, |n, k| n.get(k))
}

fn seq(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items,
        _ => &[],
    }
}

/// An id backout accepts: lowercase letters, digits and dashes.
fn id_of(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    id.trim_matches('-').to_string()
}

/// A YAML string, quoted.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// `result[0] OP N` (or `result OP N`) as a condition; anything else is `None`.
fn argo_condition(expr: &str) -> Option<Condition> {
    let rest = expr.trim();
    let rest = rest
        .strip_prefix("result[0]")
        .or_else(|| rest.strip_prefix("result"))?;
    Condition::parse(rest)
}

/// One AnalysisTemplate or ClusterAnalysisTemplate.
fn argo(place: &str, root: &Node, given: &BTreeMap<String, String>, out: &mut Imported) {
    let kind = text(root.get("kind")).unwrap_or_default();
    if kind != "AnalysisTemplate" && kind != "ClusterAnalysisTemplate" {
        out.refused.push(format!(
            "{place}: kind `{kind}` is not an AnalysisTemplate or ClusterAnalysisTemplate"
        ));
        return;
    }
    let template = text(path(root, &["metadata", "name"])).unwrap_or_default();
    let spec = root.get("spec");
    // Arguments: their value in the template, or from --arg; valueFrom (secrets) cannot be read.
    let mut args = BTreeMap::new();
    for arg in seq(spec.and_then(|s| s.get("args"))) {
        let Some(name) = text(arg.get("name")) else {
            continue;
        };
        match given.get(&name).cloned().or_else(|| text(arg.get("value"))) {
            Some(v) => {
                args.insert(name, v);
            }
            None => {
                args.insert(name.clone(), String::new());
            }
        }
    }
    let dry_run: Vec<String> = seq(spec.and_then(|s| s.get("dryRun")))
        .iter()
        .filter_map(|d| text(d.get("metricName")))
        .collect();
    for metric in seq(spec.and_then(|s| s.get("metrics"))) {
        let name = text(metric.get("name")).unwrap_or_default();
        let what = format!("{place}: metric `{name}` of `{template}`");
        let Some(prometheus) = path(metric, &["provider", "prometheus"]) else {
            let provider = metric
                .get("provider")
                .and_then(|p| p.as_map())
                .and_then(|m| m.first())
                .map_or("none".to_string(), |(k, _)| k.name.clone());
            out.refused.push(format!(
                "{what}: provider `{provider}`; only prometheus maps to a backout criterion"
            ));
            continue;
        };
        let Some(mut query) = text(prometheus.get("query")) else {
            out.refused.push(format!("{what}: no prometheus query"));
            continue;
        };
        let mut missing = Vec::new();
        for (arg, value) in &args {
            let pattern = format!("{{{{args.{arg}}}}}");
            if query.contains(&pattern) {
                if value.is_empty() {
                    missing.push(arg.clone());
                }
                query = query.replace(&pattern, value);
            }
        }
        if !missing.is_empty() {
            out.refused.push(format!(
                "{what}: argument(s) {} have no value in the template; give --arg NAME=VALUE",
                missing.join(", ")
            ));
            continue;
        }
        let mut c = Criterion {
            id: id_of(&name),
            ..Criterion::default()
        };
        c.field(
            "title",
            quoted(&format!("{name} (Argo Rollouts {template})")),
            None,
        );
        c.field("prometheus", quoted(query.trim()), None);
        let mut refused = false;
        for (key, ours) in [
            ("failureCondition", "fails_if"),
            ("successCondition", "passes_if"),
        ] {
            if let Some(expr) = text(metric.get(key)) {
                match argo_condition(&expr) {
                    Some(cond) => c.field(
                        ours,
                        quoted(&cond.to_string()),
                        Some(format!("{key}: {expr}")),
                    ),
                    None => {
                        out.refused.push(format!(
                            "{what}: {key} `{expr}` is not of the form `result[0] OP NUMBER`"
                        ));
                        refused = true;
                    }
                }
            }
        }
        if refused {
            continue;
        }
        if let Some(interval) = text(metric.get("interval")) {
            c.field(
                "every",
                interval.clone(),
                Some(format!("interval: {interval}")),
            );
        }
        if let Some(delay) = text(metric.get("initialDelay")) {
            c.field(
                "delay",
                delay.clone(),
                Some(format!("initialDelay: {delay}")),
            );
        }
        let failure_limit = text(metric.get("failureLimit")).and_then(|v| v.parse::<u32>().ok());
        let n = failure_limit.unwrap_or(0) + 1;
        c.field(
            "trips_after_total",
            n.to_string(),
            Some(format!(
                "failureLimit: {} (Argo fails after more than that many failed measurements)",
                failure_limit.unwrap_or(0)
            )),
        );
        let errors = text(metric.get("consecutiveErrorLimit")).and_then(|v| v.parse::<u32>().ok());
        c.field(
            "errors_after",
            (errors.unwrap_or(4) + 1).to_string(),
            Some(format!(
                "consecutiveErrorLimit: {}; Argo then fails the analysis, backout calls it \
                 inconclusive (a person looks)",
                errors.unwrap_or(4)
            )),
        );
        if dry_run.iter().any(|d| d == &name || d == ".*") {
            c.field("shadow", "true".into(), Some("dryRun".into()));
        }
        if let Some(count) = text(metric.get("count")) {
            c.notes.push(format!(
                "count: {count} does not map: backout measures until the window closes \
                 (window.closes_after)"
            ));
        }
        if let Some(limit) = text(metric.get("inconclusiveLimit"))
            && limit != "0"
        {
            c.notes.push(format!(
                "inconclusiveLimit: {limit} does not map: an inconclusive measurement asks a \
                 person at once"
            ));
        }
        for key in ["timeout", "measurementRetention"] {
            if metric.get(key).is_some() {
                c.notes.push(format!("{key} does not map"));
            }
        }
        if let Some(address) = text(prometheus.get("address")) {
            match &out.prometheus {
                Some(url) if url != &address => c.notes.push(format!(
                    "provider.prometheus.address {address} differs from the first one ({url}); \
                     a plan has one Prometheus"
                )),
                Some(_) => {}
                None => out.prometheus = Some(address),
            }
        }
        out.criteria.push(c);
    }
}

/// Flagger: MetricTemplates by name, then each Canary's `analysis.metrics`.
fn flagger(documents: &[(String, Node)], out: &mut Imported) {
    let mut templates = BTreeMap::new();
    for (place, root) in documents {
        match text(root.get("kind")).as_deref() {
            Some("MetricTemplate") => {
                let name = text(path(root, &["metadata", "name"])).unwrap_or_default();
                templates.insert(name, (place.clone(), root));
            }
            Some("Canary") => {}
            other => out.refused.push(format!(
                "{place}: kind `{}` is not a MetricTemplate or Canary",
                other.unwrap_or("none")
            )),
        }
    }
    for (place, root) in documents {
        if text(root.get("kind")).as_deref() != Some("Canary") {
            continue;
        }
        let canary = text(path(root, &["metadata", "name"])).unwrap_or_default();
        let namespace = text(path(root, &["metadata", "namespace"])).unwrap_or_default();
        let target = text(path(root, &["spec", "targetRef", "name"])).unwrap_or_default();
        let analysis = path(root, &["spec", "analysis"]);
        let every = text(analysis.and_then(|a| a.get("interval"))).unwrap_or("1m".into());
        let threshold = text(analysis.and_then(|a| a.get("threshold")));
        for metric in seq(analysis.and_then(|a| a.get("metrics"))) {
            let name = text(metric.get("name")).unwrap_or_default();
            let what = format!("{place}: metric `{name}` of canary `{canary}`");
            let Some(template) = text(path(metric, &["templateRef", "name"])) else {
                out.refused.push(format!(
                    "{what}: a builtin metric (its query depends on the mesh); write it as a \
                     MetricTemplate"
                ));
                continue;
            };
            let Some((_, source)) = templates.get(&template) else {
                out.refused.push(format!(
                    "{what}: MetricTemplate `{template}` is not in the files"
                ));
                continue;
            };
            let provider = text(path(source, &["spec", "provider", "type"])).unwrap_or_default();
            if provider != "prometheus" {
                out.refused.push(format!(
                    "{what}: provider `{provider}`; only prometheus maps to a backout criterion"
                ));
                continue;
            }
            let interval = text(metric.get("interval")).unwrap_or("1m".into());
            let mut query = text(path(source, &["spec", "query"])).unwrap_or_default();
            for (var, value) in [
                ("name", &canary),
                ("namespace", &namespace),
                ("target", &target),
                ("interval", &interval),
            ] {
                query = query.replace(&format!("{{{{ {var} }}}}"), value);
                query = query.replace(&format!("{{{{{var}}}}}"), value);
            }
            if let Some(vars) = metric.get("templateVariables").and_then(|v| v.as_map()) {
                for (key, value) in vars {
                    let value = text(Some(value)).unwrap_or_default();
                    query = query.replace(&format!("{{{{ variables.{} }}}}", key.name), &value);
                }
            }
            if query.contains("{{") {
                out.refused.push(format!(
                    "{what}: the query keeps a template variable: {query}"
                ));
                continue;
            }
            let range = metric.get("thresholdRange");
            let bounds = [
                ("min", ">=", text(range.and_then(|r| r.get("min")))),
                ("max", "<=", text(range.and_then(|r| r.get("max")))),
            ];
            let given: Vec<_> = bounds.iter().filter(|b| b.2.is_some()).collect();
            if given.is_empty() {
                out.refused.push(format!("{what}: no thresholdRange"));
                continue;
            }
            // One criterion per bound: outside `passes_if` is failing, as outside the range is
            // for Flagger; two bounds in one criterion would leave a band of "inconclusive".
            for (bound, op, value) in given {
                let value = value.clone().unwrap_or_default();
                let Some(cond) = Condition::parse(&format!("{op} {value}")) else {
                    out.refused.push(format!(
                        "{what}: thresholdRange.{bound} `{value}` is not a number"
                    ));
                    continue;
                };
                let suffix = if bounds.iter().filter(|b| b.2.is_some()).count() > 1 {
                    format!("-{bound}")
                } else {
                    String::new()
                };
                let mut c = Criterion {
                    id: format!("{}{suffix}", id_of(&name)),
                    ..Criterion::default()
                };
                c.field(
                    "title",
                    quoted(&format!("{name} (Flagger canary {canary})")),
                    None,
                );
                c.field("prometheus", quoted(query.trim()), None);
                c.field(
                    "passes_if",
                    quoted(&cond.to_string()),
                    Some(format!("thresholdRange.{bound}: {value}")),
                );
                c.field("every", every.clone(), Some("analysis.interval".into()));
                if let Some(t) = &threshold {
                    c.field(
                        "trips_after_total",
                        t.clone(),
                        Some(format!(
                            "analysis.threshold: {t} counts the failed checks of all metrics \
                             together; here of this one"
                        )),
                    );
                }
                c.notes.push(format!(
                    "interval: {interval} is the query's window, written into the query"
                ));
                if let Some(address) = text(path(source, &["spec", "provider", "address"])) {
                    out.prometheus.get_or_insert(address);
                }
                out.criteria.push(c);
            }
        }
    }
}

/// The `criteria:` block.
fn yaml(imported: &Imported) -> String {
    let mut out = String::from("criteria:\n");
    if let Some(url) = &imported.prometheus {
        out.push_str(&format!(
            "  sources:\n    prometheus: {{ url: {} }}\n",
            quoted(url)
        ));
    }
    out.push_str("  rollback_when:\n");
    for c in &imported.criteria {
        out.push_str(&format!("    - id: {}\n", c.id));
        for (key, value, comment) in &c.fields {
            match comment {
                Some(comment) => out.push_str(&format!("      {key}: {value}   # {comment}\n")),
                None => out.push_str(&format!("      {key}: {value}\n")),
            }
        }
        for note in &c.notes {
            out.push_str(&format!("      # not imported: {note}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_conditions_of_the_simple_shape() {
        assert_eq!(
            argo_condition("result[0] >= 0.95").unwrap().to_string(),
            ">= 0.95"
        );
        assert_eq!(argo_condition("result > 5").unwrap().to_string(), "> 5");
        assert!(argo_condition("len(result) == 0").is_none());
        assert!(argo_condition("result[0] > 1 && result[0] < 5").is_none());
    }

    #[test]
    fn documents_split_on_dashes() {
        assert_eq!(
            split_documents("a: 1\n---\nb: 2\n"),
            vec!["a: 1\n", "b: 2\n"]
        );
    }
}
