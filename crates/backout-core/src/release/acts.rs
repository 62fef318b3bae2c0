//! Who may act on a run, and run or rehearse a plan outside a release: the people rules the
//! CLI, the API and the web UI all apply (`manual.by`, `execution.performers`, separation of
//! duties, break glass in the release's environment). Pure but for reading the run's release.

use backout_model::Plan;
use backout_store::{Run, Store};

use super::decide::{Decisions, describe_group, group, load, member};
use crate::errors::ExecError;

/// What a person does to a run; [`may_act`] says who may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act<'a> {
    /// Confirm the manual step with this id (its `manual.by` group does it).
    Confirm(&'a str),
    /// Settle an in-doubt step: done, failed, retry.
    Resolve,
    /// Give failed steps a new attempt.
    Retry,
    /// Count a step as done by other means.
    Skip,
    /// Stop the run.
    Abort,
}

impl Act<'_> {
    fn verb(self) -> String {
        match self {
            Act::Confirm(step) => format!("confirm step `{step}`"),
            Act::Resolve => "resolve steps of this run".into(),
            Act::Retry => "retry steps of this run".into(),
            Act::Skip => "skip steps of this run".into(),
            Act::Abort => "abort this run".into(),
        }
    }
}

/// Whether `actor` may do `act` to `run`: the one rule the CLI, the API and the web UI all
/// apply. A manual step is confirmed by its `manual.by` group; every other act is a
/// performer's (`execution.performers`); with `authorization.separation_of_duties`, an approver
/// of a release's rollback does none of them. A refusal names the rule and who may.
pub async fn may_act(
    store: &dyn Store,
    run: &Run,
    act: Act<'_>,
    actor: &str,
) -> Result<(), ExecError> {
    let plan =
        backout_model::lint(&run.plan_source)
            .plan
            .ok_or_else(|| ExecError::InvalidPlan {
                run_id: run.id.clone(),
                message: "the plan stored with the run no longer lints".into(),
            })?;
    let decisions = match &run.release_id {
        Some(release_id) => Some(load(store, release_id).await?.decisions),
        None => None,
    };
    check_act(&plan, decisions.as_ref(), act, actor).map_err(ExecError::Refused)
}

/// [`may_act`] on a plan and the release's decisions (none for a run of no release).
pub fn check_act(
    plan: &Plan,
    decisions: Option<&Decisions>,
    act: Act<'_>,
    actor: &str,
) -> Result<(), String> {
    let verb = act.verb();
    let manual_by = match act {
        Act::Confirm(step) => plan
            .all_steps()
            .find(|s| s.id == step)
            .and_then(|s| match &s.kind {
                backout_model::plan::StepKind::Manual { by, .. } => Some(by.as_str()),
                _ => None,
            }),
        _ => None,
    };
    if let Some(by) = manual_by.filter(|by| group(plan, by).is_some()) {
        if !member(plan, by, actor) {
            return Err(format!(
                "`{actor}` may not {verb}: only {} may (the step's manual.by)",
                describe_group(plan, by)
            ));
        }
    } else if let Some(execution) = plan.execution.given()
        && !member(plan, &execution.performers, actor)
    {
        return Err(format!(
            "`{actor}` may not {verb}: only {} may (execution.performers)",
            describe_group(plan, &execution.performers)
        ));
    }
    if plan
        .authorization
        .given()
        .is_some_and(|a| a.separation_of_duties)
        && decisions.is_some_and(|d| d.approved_by(actor))
    {
        return Err(format!(
            "`{actor}` approved this rollback and may not also {verb} \
             (authorization.separation_of_duties); another performer must"
        ));
    }
    Ok(())
}

/// Whether `actor` may run the plan's procedure (or a workaround) outside a release, in
/// `environment`: a performer of the plan (`execution.performers`, when it names them); in the
/// environment the release targets, only as a break-glass act with a reason, since outside a
/// release no decider approved it. A rehearsal environment (`testing.rehearse_in`, any
/// `testing.overrides.<env>`) needs no break glass. Returns whether the run breaks glass.
pub fn may_run(
    plan: &Plan,
    actor: &str,
    environment: &str,
    break_glass: Option<&str>,
) -> Result<bool, String> {
    performer(plan, actor, "run")?;
    let rehearsal = plan.testing.given().is_some_and(|t| {
        t.rehearse_in == environment || t.overrides.iter().any(|(env, _)| env == environment)
    });
    if rehearsal || environment != plan.release.environment {
        return Ok(false);
    }
    match break_glass.map(str::trim) {
        Some(reason) if !reason.is_empty() => Ok(true),
        _ => Err(format!(
            "`{environment}` is the environment the release targets: outside a release nobody \
             approved this. Open a release and have it approved (`backout start`, `backout \
             execute REL`, or `--workaround ID` on execute), rehearse in a test environment \
             (`backout rehearse`), or, in an emergency, `backout run PLAN --break-glass --reason \"…\"` \
             (journaled and announced as break_glass)"
        )),
    }
}

/// Whether `actor` may rehearse the plan: a performer of the plan (`execution.performers`, when
/// it names them), as for a real rollback; a rehearsal proves the people too.
pub fn may_rehearse(plan: &Plan, actor: &str) -> Result<(), String> {
    performer(plan, actor, "rehearse")
}

/// `actor` is a performer of the plan (when it names them), to `verb` its procedure.
fn performer(plan: &Plan, actor: &str, verb: &str) -> Result<(), String> {
    if let Some(execution) = plan.execution.given()
        && !member(plan, &execution.performers, actor)
    {
        return Err(format!(
            "`{actor}` may not {verb} this plan's procedure: only {} may (execution.performers)",
            describe_group(plan, &execution.performers)
        ));
    }
    Ok(())
}
