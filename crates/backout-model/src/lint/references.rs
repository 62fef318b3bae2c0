//! Names that must resolve: people groups, channels, criterion ids, checkpoints, contingency ids
//! and notification events. Runs only when decoding dropped nothing, so an unknown name really is
//! unknown.

use super::{Checker, StepList, unknown};
use crate::codes;
use crate::decode::{Section, Spanned};
use crate::diagnostic::Diagnostic;
use crate::plan::Event;
use crate::spec::{OnFailure, PlanSpec};

pub(super) fn check(spec: &PlanSpec, lists: &[StepList<'_>], checker: &mut Checker) {
    let groups: Vec<&str> = spec
        .people
        .as_ref()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    let criteria: Vec<&str> = match spec.criteria.as_deref() {
        Some(Section::Given(c)) => c
            .rollback_when
            .iter()
            .map(|c| c.id.value.as_str())
            .collect(),
        _ => Vec::new(),
    };
    let communication = match spec.communication.as_deref() {
        Some(Section::Given(c)) => Some(c),
        _ => None,
    };
    let channels: Vec<&str> = communication
        .map(|c| c.channels.keys().collect())
        .unwrap_or_default();
    let checkpoints: Vec<&str> = spec
        .release
        .as_ref()
        .and_then(|r| r.checkpoints.as_ref())
        .map(|c| c.iter().map(|c| c.value.as_str()).collect())
        .unwrap_or_default();
    let contingencies: Vec<&str> = match spec.contingency.as_deref() {
        Some(Section::Given(c)) => c.keys().collect(),
        _ => Vec::new(),
    };

    let group = |name: &Spanned<String>, checker: &mut Checker| {
        if !groups.contains(&name.value.as_str()) {
            checker.push(unknown(codes::UNKNOWN_GROUP, "people group", name, &groups));
        }
    };
    let criterion = |name: &Spanned<String>, checker: &mut Checker| {
        if !criteria.contains(&name.value.as_str()) {
            checker.push(unknown(
                codes::UNKNOWN_CRITERION,
                "criterion",
                name,
                &criteria,
            ));
        }
    };
    let channel = |name: &Spanned<String>, checker: &mut Checker| {
        if !channels.contains(&name.value.as_str()) {
            checker.push(unknown(codes::UNKNOWN_CHANNEL, "channel", name, &channels));
        }
    };
    let checkpoint = |name: &Spanned<String>, checker: &mut Checker| {
        if !checkpoints.contains(&name.value.as_str()) {
            checker.push(unknown(
                codes::UNKNOWN_CHECKPOINT,
                "checkpoint",
                name,
                &checkpoints,
            ));
        }
    };

    if let Some(Section::Given(auth)) = spec.authorization.as_deref() {
        group(&auth.deciders, checker);
        if let Some(fallback) = &auth.fallback {
            group(&fallback.deciders, checker);
        }
        for id in auth.automatic.iter().flatten() {
            criterion(id, checker);
        }
    }
    if let Some(Section::Given(execution)) = spec.execution.as_deref() {
        group(&execution.performers, checker);
    }
    if let Some(Section::Given(c)) = spec.criteria.as_deref()
        && let Some(success) = &c.success_when
    {
        for id in &success.checks {
            criterion(id, checker);
        }
    }
    if let Some(Section::Given(procedure)) = spec.procedure.as_deref()
        && let Some(verify_after) = &procedure.verify_after
    {
        for id in &verify_after.checks {
            criterion(id, checker);
        }
    }

    // The point of no return: checkpoints at or after it end the window for good.
    let no_return = match spec.window.as_deref() {
        Some(Section::Given(w)) => w.closes_at_checkpoint.as_ref(),
        _ => None,
    };
    if let Some(name) = no_return {
        checkpoint(name, checker);
    }
    let no_return_index = no_return.and_then(|n| checkpoints.iter().position(|c| *c == n.value));

    let mut reached_contingencies: Vec<&str> = Vec::new();
    for list in lists {
        for step in list.steps {
            if let Some(manual) = &step.manual {
                group(&manual.by, checker);
            }
            for name in step.notify.iter().flat_map(|n| n.value.iter()) {
                channel(name, checker);
            }
            if let Some(wait) = &step.wait
                && let Some(until) = &wait.until
            {
                criterion(until, checker);
            }
            if let Some(verify) = &step.verify
                && let Some(id) = &verify.criterion
            {
                criterion(id, checker);
            }
            if let Some(when) = &step.when_checkpoint {
                checkpoint(when, checker);
                let index = checkpoints.iter().position(|c| *c == when.value);
                if let (Some(index), Some(no_return_index)) = (index, no_return_index)
                    && index >= no_return_index
                {
                    checker.push(
                        Diagnostic::error(
                            codes::AFTER_NO_RETURN,
                            when.span,
                            format!(
                                "step `{}` runs only after checkpoint `{}`, which is at or past the point of no return `{}`: it can never run",
                                step.id.value,
                                when.value,
                                checkpoints[no_return_index]
                            ),
                        )
                        .with_help("after the point of no return the window is closed and no rollback runs; condition the step on an earlier checkpoint or move it to a workaround"),
                    );
                }
            }
            if let Some(on_failure) = &step.on_failure
                && let OnFailure::Contingency(id) = &on_failure.value
            {
                if contingencies.contains(&id.as_str()) {
                    reached_contingencies.push(id);
                } else {
                    let name = Spanned::new(id.clone(), on_failure.span);
                    checker.push(unknown(
                        codes::UNKNOWN_CONTINGENCY,
                        "contingency",
                        &name,
                        &contingencies,
                    ));
                }
            }
        }
    }
    if let Some(Section::Given(c)) = spec.contingency.as_deref() {
        for (id, _) in c.iter() {
            if !reached_contingencies.contains(&id.value.as_str()) {
                checker.push(
                    Diagnostic::warning(
                        codes::UNUSED_CONTINGENCY,
                        id.span,
                        format!("contingency `{}` is never run: no step names it in on_failure", id.value),
                    )
                    .with_help(format!("add `on_failure: contingency.{}` to the step it backs up, or make it a workaround", id.value)),
                );
            }
        }
    }

    if let Some(communication) = communication {
        let events: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        for (event, targets) in communication.notify.iter().flat_map(|n| n.iter()) {
            if Event::parse(&event.value).is_none() {
                checker.push(unknown(codes::UNKNOWN_EVENT, "event", event, &events));
            }
            for name in targets {
                channel(name, checker);
            }
        }
        for (event, _) in communication.templates.iter().flat_map(|t| t.iter()) {
            if Event::parse(&event.value).is_none() {
                checker.push(unknown(codes::UNKNOWN_EVENT, "event", event, &events));
            }
        }
    }
}
