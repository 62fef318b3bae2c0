//! `decide` and `execute`: the rules of `authorization` and `execution` (Q3, Q4) in front of
//! the procedure of a release. Every refusal exits 5 and names the rule.

use std::sync::Arc;

use backout_core::Executor;
use backout_core::clock::SystemClock;
use backout_core::env::Resolver;
use backout_core::release::decide::{self, Choice, Decide, Decided};
use backout_core::release::{self};
use backout_store::{Run, Store};

use super::progress::{interactive, printer, run_steps, spawn_prompter};
use super::runs::{actor, finish, now, with_store};
use crate::cli::{DecideArgs, DecisionChoice, ExecuteArgs, Global, RunFormat};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn decide(args: &DecideArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let who = actor(global);
    let choice = match args.choice {
        DecisionChoice::Approve => Choice::Approve,
        DecisionChoice::Deny => Choice::Deny,
    };
    if let Some(done) =
        crate::remote::run(global, |r| super::releases::remote::decide(r, args, choice))
    {
        return done;
    }
    with_store(global, |store| async move {
        let decided = decide::decide(
            store.as_ref(),
            &Decide {
                release_id: &args.release,
                actor: &who,
                choice,
                reason: &args.reason,
                override_window: args.override_window,
                now_ms: now(),
            },
        )
        .await?;
        announce_decision(&args.release, &who, choice, &decided, args.format);
        Ok(ExitCode::Ok)
    })
}

/// What `decide` says: who decided what, and how far the quorum is.
pub(super) fn announce_decision(
    release_id: &str,
    who: &str,
    choice: Choice,
    decided: &Decided,
    format: crate::cli::LintFormat,
) {
    if format == crate::cli::LintFormat::Json {
        super::releases::answer(&serde_json::json!({
            "release": release_id,
            "decision": choice.as_str(),
            "by": who,
            "approvals": decided.approvals,
            "quorum": decided.quorum,
            "approved": decided.approved,
            "as_fallback": decided.as_fallback,
            "override_window": decided.override_window,
        }));
    }
    let loud = if decided.override_window {
        "WINDOW OVERRIDDEN: "
    } else {
        ""
    };
    let fallback = if decided.as_fallback {
        " as a fallback decider (the decision escalated)"
    } else {
        ""
    };
    match choice {
        Choice::Deny => eprintln!(
            "{loud}release {release_id}: {who} denied the rollback{fallback}; tripped criteria re-arm and the release is still watched"
        ),
        Choice::Approve if decided.approved => eprintln!(
            "{loud}release {release_id}: {who} approved{fallback}; {} of {} approvals: the rollback is APPROVED. A performer runs `backout execute {release_id}`",
            decided.approvals, decided.quorum
        ),
        Choice::Approve => eprintln!(
            "{loud}release {release_id}: {who} approved{fallback}; {} of {} approvals, {} more needed from distinct deciders",
            decided.approvals,
            decided.quorum,
            (decided.quorum as usize).saturating_sub(decided.approvals)
        ),
    }
}

pub fn execute(args: &ExecuteArgs, global: &Global) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(global, |r| {
        super::releases::remote::execute(r, args, global)
    }) {
        return done;
    }
    let who = actor(global);
    let prompter = interactive(args.format).then(|| spawn_prompter(global));
    let wait = args.wait || prompter.is_some();
    with_store(global, |store| async move {
        let (code, _) = run_release(
            &store,
            &args.release,
            &who,
            args.format,
            wait,
            prompter,
            args.workaround.as_deref(),
        )
        .await?;
        Ok(code)
    })
}

/// Clears the execution of a release's rollback for `who` and runs its procedure; returns the
/// exit code and whether the run completed. A run that never started is journaled as
/// abandoned, so a performer may try again.
pub(super) async fn run_release(
    store: &Arc<dyn Store>,
    release_id: &str,
    who: &str,
    format: RunFormat,
    wait: bool,
    prompter: Option<std::sync::mpsc::Sender<(String, String)>>,
    workaround: Option<&str>,
) -> Result<(ExitCode, Option<Run>), CommandError> {
    let cleared =
        decide::clear_execution_of(store.as_ref(), release_id, who, now(), workaround).await?;
    if let Some(w) = &cleared.workaround {
        eprintln!("release {release_id}: running workaround `{w}` as an execution of the release");
    }
    if cleared.override_window {
        eprintln!(
            "WINDOW OVERRIDDEN: release {release_id} is rolled back after its window closed, on the approval of the full quorum"
        );
    }
    let executor = Executor::new(
        store.clone(),
        Arc::new(SystemClock),
        Resolver::from_env(),
        printer(
            format,
            &run_steps(&cleared.plan, cleared.workaround.as_deref()),
            prompter,
        ),
    );
    let rollback = release::carry_out(
        store,
        &executor,
        &cleared,
        who,
        wait,
        Arc::new(Resolver::from_env()),
        &SystemClock,
    )
    .await?;
    let code = finish(&rollback.summary, format);
    let code = match rollback.verified {
        Some(release::Verified::Held) => {
            eprintln!(
                "release {release_id}: rolled back and verified (procedure.verify_after held)"
            );
            code
        }
        Some(release::Verified::Failed(why)) => {
            output::error(&format!(
                "release {release_id}: the rollback ran but did not verify: {why}"
            ));
            ExitCode::RunFailed
        }
        Some(release::Verified::NotRequired) | None => code,
    };
    Ok((code, Some(rollback.summary.run)))
}
