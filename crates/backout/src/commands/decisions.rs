//! `decide` and `execute`: the rules of `authorization` and `execution` (Q3, Q4) in front of
//! the procedure of a release. Every refusal exits 5 and names the rule.

use std::sync::Arc;

use backout_core::Executor;
use backout_core::clock::SystemClock;
use backout_core::env::Resolver;
use backout_core::executor::RunOptions;
use backout_core::release::decide::{self, Choice, Decide};
use backout_store::RunKind;

use super::runs::{
    actor, finish, interactive, now, open_store, printer, run_steps, runtime, spawn_prompter,
};
use crate::cli::{DecideArgs, DecisionChoice, ExecuteArgs, Global};
use crate::exit_codes::{CommandError, ExitCode};

pub fn decide(args: &DecideArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let who = actor(global);
    let choice = match args.choice {
        DecisionChoice::Approve => Choice::Approve,
        DecisionChoice::Deny => Choice::Deny,
    };
    runtime()?.block_on(async {
        let store = open_store(global).await?;
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
                "{loud}release {}: {who} denied the rollback{fallback}; tripped criteria re-arm and the release is still watched",
                args.release
            ),
            Choice::Approve if decided.approved => eprintln!(
                "{loud}release {}: {who} approved{fallback}; {} of {} approvals: the rollback is APPROVED. A performer runs `backout execute {}`",
                args.release, decided.approvals, decided.quorum, args.release
            ),
            Choice::Approve => eprintln!(
                "{loud}release {}: {who} approved{fallback}; {} of {} approvals, {} more needed from distinct deciders",
                args.release,
                decided.approvals,
                decided.quorum,
                decided.quorum as usize - decided.approvals
            ),
        }
        Ok(ExitCode::Ok)
    })
}

pub fn execute(args: &ExecuteArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let who = actor(global);
    let prompter = interactive(args.format).then(|| spawn_prompter(global));
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let cleared = decide::clear_execution(store.as_ref(), &args.release, &who, now()).await?;
        if cleared.override_window {
            eprintln!(
                "WINDOW OVERRIDDEN: release {} is rolled back after its window closed, on the approval of the full quorum",
                args.release
            );
        }
        let options = RunOptions {
            kind: RunKind::Release,
            environment: cleared.release.environment.clone(),
            // Steps that undo a milestone run only when the deployment reached it.
            checkpoints: cleared
                .release
                .checkpoints
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            actor: who.clone(),
            release_id: Some(args.release.clone()),
            workaround: None,
            wait_for_people: args.wait || prompter.is_some(),
            extra_env: Vec::new(),
        };
        let executor = Executor::new(
            store.clone(),
            Arc::new(SystemClock),
            Resolver::from_env(),
            printer(args.format, &run_steps(&cleared.plan, None), prompter),
        );
        match executor.start(&cleared.release.plan_source, &options).await {
            Ok(summary) => Ok(finish(&summary, args.format)),
            Err(error) => {
                decide::abandon_execution(
                    store.as_ref(),
                    &args.release,
                    &who,
                    &error.to_string(),
                    now(),
                )
                .await?;
                Err(error.into())
            }
        }
    })
}
