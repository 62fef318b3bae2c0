//! `decide` and `execute`: the rules of `authorization` and `execution` (Q3, Q4) in front of
//! the procedure of a release. Every refusal exits 5 and names the rule.

mod remote;

use backout_core::release::decide::{self, Choice, Decide, Decided};

use crate::cli::{DecideArgs, DecisionChoice, ExecuteArgs};
use crate::commands::context::Context;
use crate::commands::shared::execution::{Watching, run_release};
use crate::commands::shared::progress::{interactive, spawn_prompter};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn decide(args: &DecideArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let who = ctx.actor();
    let choice = match args.choice {
        DecisionChoice::Approve => Choice::Approve,
        DecisionChoice::Deny => Choice::Deny,
    };
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote::decide(r, args, choice)) {
        return done;
    }
    ctx.with_store(|store| async move {
        let decided = decide::decide(
            store.as_ref(),
            &Decide {
                release_id: &args.release,
                actor: &who,
                choice,
                reason: &args.reason,
                override_window: args.override_window,
                now_ms: ctx.now(),
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
        output::answer(&serde_json::json!({
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

pub fn execute(args: &ExecuteArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    if let Some(done) = crate::remote::run(&ctx.global, |r| remote::execute(r, args, ctx)) {
        return done;
    }
    let who = ctx.actor();
    let prompter = interactive(args.format).then(|| spawn_prompter(ctx));
    let wait = args.wait || prompter.is_some();
    ctx.with_store(|store| async move {
        let (code, _) = run_release(
            ctx,
            &store,
            &args.release,
            &who,
            args.workaround.as_deref(),
            Watching {
                format: args.format,
                wait,
                prompter,
            },
        )
        .await?;
        Ok(code)
    })
}
