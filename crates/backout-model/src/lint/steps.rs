//! The shape of each step and the graph its `needs` draw: one kind per step, unique ids,
//! needs that exist, no cycles, well-formed http, wait and outputs, and risky steps.

use std::collections::HashMap;

use super::{Checker, StepList, duplicate_ids, unknown};
use crate::codes;
use crate::decode::{Section, Spanned};
use crate::diagnostic::Diagnostic;
use crate::spec::{HttpRequestSpec, PlanSpec, StepSpec};

pub(super) fn check(spec: &PlanSpec, lists: &[StepList<'_>], checker: &mut Checker) {
    let namespaces = lists.iter().map(|l| l.namespace).max().map_or(0, |n| n + 1);
    for namespace in 0..namespaces {
        let ids = lists
            .iter()
            .filter(|l| l.namespace == namespace)
            .flat_map(|l| l.steps.iter().map(|s| &s.id));
        duplicate_ids(ids, "step", checker);
    }
    for namespace in 0..namespaces {
        output_collisions(lists, namespace, checker);
    }
    for list in lists {
        if list.steps.is_empty() {
            checker.push(Diagnostic::warning(
                codes::EMPTY_PROCEDURE,
                crate::diagnostic::Span::default(),
                format!("{} has no steps", list.label),
            ));
        }
        for step in list.steps {
            shape(step, list, checker);
        }
        if checker.resolve {
            needs(list, lists, checker);
        }
    }
    if let Some(Section::Given(procedure)) = spec.procedure.as_deref() {
        if let Some(preconditions) = &procedure.preconditions {
            duplicate_ids(preconditions.iter().map(|p| &p.id), "precondition", checker);
            for p in preconditions {
                let kinds = [p.run.is_some(), p.exec.is_some(), p.http.is_some()];
                if kinds.iter().filter(|k| **k).count() != 1 {
                    checker.push(
                        Diagnostic::error(
                            codes::STEP_KIND,
                            p.id.span,
                            format!("precondition `{}` must have exactly one of run, exec, http", p.id.value),
                        )
                        .with_help("a precondition is one check: a command (`run`/`exec`) or an `http` request"),
                    );
                }
                if let Some(http) = &p.http {
                    http_request(http, checker);
                }
                if let Some(exec) = &p.exec {
                    shell_interpolation(exec, &format!("precondition `{}`", p.id.value), checker);
                }
            }
        }
        for name in procedure.pass_env.iter().flatten() {
            let v = &name.value;
            let variable = !v.is_empty()
                && !v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !variable {
                checker.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        name.span,
                        format!("`{v}` in pass_env is not an environment variable name"),
                    )
                    .with_help("names are letters, digits and `_`, e.g. KUBECONFIG"),
                );
            } else if v.starts_with("BACKOUT_") {
                checker.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        name.span,
                        format!("`{v}` in pass_env: backout's own variables are never passed"),
                    )
                    .with_help(
                        "steps get the BACKOUT_* values of their run (BACKOUT_RUN_ID, \
                         BACKOUT_STEP_ID, …) anyway; backout's configuration (BACKOUT_TOKEN, \
                         BACKOUT_DATABASE_URL) is never theirs",
                    ),
                );
            }
        }
        if let Some(max) = &procedure.max_parallel
            && max.value == 0
        {
            checker.push(
                Diagnostic::error(
                    codes::INVALID_VALUE,
                    max.span,
                    "max_parallel must be at least 1",
                )
                .with_help("leave it out for the default of 16"),
            );
        }
    }
}

/// Outputs of one run whose `BACKOUT_OUTPUT_<STEP>_<NAME>` variables are the same after
/// normalization (`a-b` and `a_b`, or step `a` output `b_x` and step `a_b` output `x`): the
/// later one would silently replace the earlier one.
fn output_collisions(lists: &[StepList<'_>], namespace: usize, checker: &mut Checker) {
    let mut seen: HashMap<String, (String, String, usize)> = HashMap::new();
    for list in lists.iter().filter(|l| l.namespace == namespace) {
        for step in list.steps {
            for (name, _) in step.outputs.iter().flat_map(|o| o.iter()) {
                let variable = crate::plan::output_variable(&step.id.value, &name.value);
                match seen.get(&variable) {
                    Some((first_step, first_name, line)) => checker.push(
                        Diagnostic::error(
                            codes::OUTPUT_COLLISION,
                            name.span,
                            format!(
                                "output `{}` of step `{}` and output `{first_name}` of step \
                                 `{first_step}` (line {line}) both become `{variable}`",
                                name.value, step.id.value
                            ),
                        )
                        .with_help(
                            "rename a step or an output: ids and names are upper-cased and `-` \
                             becomes `_` in the variable",
                        ),
                    ),
                    None => {
                        seen.insert(
                            variable,
                            (step.id.value.clone(), name.value.clone(), name.span.line),
                        );
                    }
                }
            }
        }
    }
}

/// Programs that are shells: `exec: [sh, -c, SCRIPT]` runs SCRIPT as code.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"];

/// The script argument of an `exec` that runs a shell with `-c` (or `-ec`, `-euc`, …).
pub(crate) fn shell_script(argv: &[String]) -> Option<&str> {
    let program = argv.first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    if !SHELLS.contains(&base) {
        return None;
    }
    let mut args = argv[1..].iter();
    if base == "busybox" && args.next().is_none_or(|a| a != "sh") {
        return None;
    }
    while let Some(arg) = args.next() {
        if arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c') {
            return args.next().map(String::as_str);
        }
    }
    None
}

/// `exec: [sh, -c, "… ${VAR} …"]`: the value is substituted into the argument before the shell
/// reads it, so a value with `;` or `$(…)` runs as code. `run:` gets the value as an
/// environment variable instead.
fn shell_interpolation(exec: &Spanned<Vec<String>>, owner: &str, checker: &mut Checker) {
    if let Some(script) = shell_script(&exec.value)
        && crate::lint::secrets_references(script)
    {
        checker.push(
            Diagnostic::warning(
                codes::SHELL_INTERPOLATION,
                exec.span,
                format!(
                    "{owner} runs a shell with `${{VAR}}` inside its script: the value is \
                     pasted into the code the shell runs"
                ),
            )
            .with_help(
                "use `run:` and write `\"$VAR\"` (the shell reads the value from its environment \
                 and never runs it), or pass the value as a separate argument: \
                 `exec: [sh, -c, 'tool \"$1\"', sh, \"${VAR}\"]`",
            ),
        );
    }
}

fn shape(step: &Spanned<StepSpec>, list: &StepList<'_>, checker: &mut Checker) {
    if let Some(exec) = &step.exec {
        shell_interpolation(exec, &format!("step `{}`", step.id.value), checker);
    }
    let kinds = super::given(&[
        ("run", step.run.is_some()),
        ("exec", step.exec.is_some()),
        ("http", step.http.is_some()),
        ("manual", step.manual.is_some()),
        ("notify", step.notify.is_some()),
        ("wait", step.wait.is_some()),
    ]);
    match kinds.len() {
        1 => {}
        0 => checker.push(
            Diagnostic::error(
                codes::STEP_KIND,
                step.id.span,
                format!("step `{}` does nothing", step.id.value),
            )
            .with_help("give it exactly one of run, exec, http, manual, notify, wait"),
        ),
        _ => checker.push(
            Diagnostic::error(
                codes::STEP_KIND,
                step.id.span,
                format!(
                    "step `{}` has several kinds: {}",
                    step.id.value,
                    kinds.join(", ")
                ),
            )
            .with_help("split it into one step per kind, joined by `needs`"),
        ),
    }
    if let Some(exec) = &step.exec
        && exec.value.is_empty()
    {
        checker.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                exec.span,
                "exec needs a program to run",
            )
            .with_help("write the program and its arguments as a list: [./bin/tool, arg]"),
        );
    }
    if let Some(http) = &step.http {
        http_request(http, checker);
    }
    if step.message.is_some() && step.notify.is_none() {
        checker.push(
            Diagnostic::error(
                codes::INVALID_VALUE,
                step.id.span,
                format!("step `{}` has a `message` but no `notify`", step.id.value),
            )
            .with_help(
                "`message` is the text of a notify step; add `notify: [channels]` or remove it",
            ),
        );
    }
    if let Some(wait) = &step.wait {
        match (&wait.r#for, &wait.until) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => checker.push(
                Diagnostic::error(
                    codes::WAIT_SPEC,
                    wait.span,
                    "a wait needs exactly one of `for` or `until`",
                )
                .with_help(
                    "`wait: { for: 5m }` or `wait: { until: <criterion id>, timeout: 10m }`",
                ),
            ),
        }
        if wait.until.is_some() && wait.timeout.is_none() && step.timeout.is_none() {
            checker.push(
                Diagnostic::warning(
                    codes::WAIT_SPEC,
                    wait.span,
                    "a wait until a criterion has no timeout: it could wait forever",
                )
                .with_help("add `timeout:` to the wait"),
            );
        }
        if let (Some(_), Some(timeout)) = (&wait.r#for, &wait.timeout) {
            checker.push(
                Diagnostic::error(
                    codes::WAIT_SPEC,
                    timeout.span,
                    "`timeout` only applies to `wait: { until }`",
                )
                .with_help("a fixed wait ends after `for`; remove the timeout"),
            );
        }
    }
    if let Some(outputs) = &step.outputs {
        for (name, from) in outputs.iter() {
            if from.value != "stdout" {
                checker.push(
                    Diagnostic::error(
                        codes::OUTPUT_SPEC,
                        from.span,
                        format!("output `{}` is captured from `{}`", name.value, from.value),
                    )
                    .with_help(
                        "outputs are captured from the step's standard output: `name: stdout`",
                    ),
                );
            }
            if !name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                || name.value.is_empty()
            {
                checker.push(
                    Diagnostic::error(
                        codes::OUTPUT_SPEC,
                        name.span,
                        format!(
                            "output name `{}` is not usable in an environment variable",
                            name.value
                        ),
                    )
                    .with_help("use letters, digits, `_` and `-` only"),
                );
            }
        }
        if step.run.is_none() && step.exec.is_none() && !outputs.is_empty() {
            checker.push(
                Diagnostic::error(
                    codes::OUTPUT_SPEC,
                    step.id.span,
                    format!("step `{}` has outputs but runs no command", step.id.value),
                )
                .with_help("only run and exec steps print to standard output"),
            );
        }
    }
    // More than 100 retries is an error (B047, `timing.rs`): it bounds attempt arithmetic.
    let side_effects = step.run.is_some() || step.exec.is_some() || step.http.is_some();
    let idempotent = step.is_idempotent();
    if list.is_procedure && side_effects && !idempotent && step.on_failure.is_none() {
        checker.push(
            Diagnostic::warning(
                codes::RISKY_STEP,
                step.id.span,
                format!(
                    "step `{}` is not idempotent and has no on_failure: if it fails halfway or the executor \
                     crashes while it runs, the run halts and a person must find out what it did",
                    step.id.value
                ),
            )
            .with_help("mark it `idempotent: true` if running it twice is safe, or name a contingency with `on_failure`"),
        );
    }
}

fn http_request(http: &Spanned<HttpRequestSpec>, checker: &mut Checker) {
    super::http_method_and_body(http.method.as_ref(), http.body.as_ref(), checker);
    super::http_status(http.expect_status.as_ref(), checker);
    super::http_url(&http.url, checker);
}

/// Needs resolve within the step's own graph, and the graph has no cycle.
fn needs(list: &StepList<'_>, lists: &[StepList<'_>], checker: &mut Checker) {
    let index: HashMap<&str, usize> = list
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.value.as_str(), i))
        .collect();
    let known: Vec<&str> = list.steps.iter().map(|s| s.id.value.as_str()).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); list.steps.len()];
    for (i, step) in list.steps.iter().enumerate() {
        for need in step.needs.iter().flatten() {
            if need.value == step.id.value {
                checker.push(
                    Diagnostic::error(
                        codes::NEEDS_ACROSS,
                        need.span,
                        format!("step `{}` needs itself", step.id.value),
                    )
                    .with_help("remove it from its own `needs`"),
                );
                continue;
            }
            match index.get(need.value.as_str()) {
                Some(j) => edges[i].push(*j),
                None => {
                    let elsewhere = lists
                        .iter()
                        .find(|l| l.steps.iter().any(|s| s.id.value == need.value));
                    let mut d = unknown(codes::UNKNOWN_NEEDS, "step in needs", need, &known);
                    if let Some(other) = elsewhere {
                        d.code = codes::NEEDS_ACROSS;
                        d.message = format!(
                            "`{}` is a step of {}, not of {}",
                            need.value, other.label, list.label
                        );
                        d.help = Some("steps can only need steps of the same procedure".into());
                    }
                    checker.push(d);
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|i| list.steps[*i].id.value.as_str())
            .collect();
        let first = &list.steps[cycle[0]];
        checker.push(
            Diagnostic::error(
                codes::CYCLE,
                first.id.span,
                format!(
                    "the needs of {} form a cycle: {} → {}",
                    list.label,
                    names.join(" → "),
                    names[0]
                ),
            )
            .with_help("a step cannot (indirectly) wait for itself; remove one of these needs"),
        );
    }
}

/// Each elementary cycle found by depth-first search, reported once (rotated to start at its
/// smallest index). Iterative, so deep chains cannot overflow the stack.
fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut found: Vec<Vec<usize>> = Vec::new();
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, next edge index); `path` mirrors the active nodes.
        let mut stack = vec![(root, 0usize)];
        let mut path = vec![root];
        mark[root] = Mark::Active;
        while let Some((node, edge)) = stack.last_mut() {
            let node = *node;
            if let Some(&next) = edges[node].get(*edge) {
                *edge += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::Active;
                        stack.push((next, 0));
                        path.push(next);
                    }
                    Mark::Active => {
                        if let Some(pos) = path.iter().position(|n| *n == next) {
                            let mut cycle = path[pos..].to_vec();
                            let min = cycle
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, n)| **n)
                                .map_or(0, |(i, _)| i);
                            cycle.rotate_left(min);
                            if !found.contains(&cycle) {
                                found.push(cycle);
                            }
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
                path.pop();
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::cycles;

    #[test]
    fn finds_the_whole_cycle_once() {
        // 0 → 1 → 2 → 0, and 3 → 3 is handled elsewhere (self-needs).
        let edges = vec![vec![1], vec![2], vec![0], vec![0]];
        assert_eq!(cycles(&edges), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn acyclic_graphs_have_none() {
        let edges = vec![vec![], vec![0], vec![0, 1]];
        assert!(cycles(&edges).is_empty());
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let edges: Vec<Vec<usize>> = (0..100_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(cycles(&edges).is_empty());
    }
}
