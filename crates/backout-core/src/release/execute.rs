//! Carrying out a rollback that [`decide::clear_execution`] cleared: the release's procedure
//! runs (only the steps whose checkpoints the deployment reached), the outcome is journaled
//! (`execution_finished`, or `execution_abandoned` when no run started so a performer may try
//! again), and a succeeded run is verified (`procedure.verify_after`). `backout execute`,
//! `watch --execute` and the server all go through here, so the sequence is written once.

use std::sync::Arc;

use backout_store::{NewEvent, RunKind, RunState, Store};
use serde_json::json;

use super::decide::{self, Cleared};
use super::verify::{Verified, verify_after};
use crate::clock::Clock;
use crate::env::Resolver;
use crate::errors::ExecError;
use crate::executor::{Executor, RunOptions, RunSummary};

/// How a cleared rollback ended.
#[derive(Clone, Debug)]
pub struct Rollback {
    /// The run as the executor left it (`refused` when a precondition failed: nothing ran).
    pub summary: RunSummary,
    /// The verification of a succeeded run (`None` when the run did not succeed).
    pub verified: Option<Verified>,
}

/// The run options of a release's rollback performed by `actor`.
pub fn rollback_options(cleared: &Cleared, actor: &str, wait_for_people: bool) -> RunOptions {
    RunOptions {
        kind: RunKind::Release,
        environment: cleared.release.environment.clone(),
        // Steps that undo a milestone run only when the deployment reached it.
        checkpoints: cleared
            .release
            .checkpoints
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        actor: actor.to_string(),
        release_id: Some(cleared.release.id.clone()),
        workaround: cleared.workaround.clone(),
        wait_for_people,
        extra_env: Vec::new(),
        break_glass: None,
    }
}

/// Runs the procedure of a cleared rollback with `executor`, journals how it ended, and
/// verifies a succeeded run. A run that never started (the executor failed, or a precondition
/// refused it) is journaled as abandoned, so a performer may try again.
pub async fn carry_out(
    store: &Arc<dyn Store>,
    executor: &Executor,
    cleared: &Cleared,
    actor: &str,
    wait_for_people: bool,
    resolver: Arc<Resolver>,
    clock: &dyn Clock,
) -> Result<Rollback, ExecError> {
    let release_id = cleared.release.id.as_str();
    let options = rollback_options(cleared, actor, wait_for_people);
    let summary = match executor.start(&cleared.release.plan_source, &options).await {
        Ok(summary) => summary,
        // Another replica took the run over, or this one shut down and handed it over: it is
        // not abandoned, whoever resumes it finishes it (and concludes it, `conclude_resumed`).
        Err(
            error @ (ExecError::Store(backout_store::StoreError::Fenced { .. })
            | ExecError::Drained(_)),
        ) => {
            return Err(error);
        }
        Err(error) => {
            decide::abandon_execution(
                store.as_ref(),
                release_id,
                actor,
                &error.to_string(),
                clock.now_ms(),
            )
            .await?;
            return Err(error);
        }
    };
    if summary.run.state == RunState::Refused {
        // A precondition refused it: nothing ran, so a performer may try again.
        decide::abandon_execution(
            store.as_ref(),
            release_id,
            actor,
            &format!("run {} was refused", summary.run.id),
            clock.now_ms(),
        )
        .await?;
        return Ok(Rollback {
            summary,
            verified: None,
        });
    }
    let verified = conclude(
        store,
        release_id,
        &summary,
        actor,
        resolver,
        clock,
        executor.progress(),
    )
    .await?;
    Ok(Rollback { summary, verified })
}

/// Journals how a release's rollback run ended and verifies it when it succeeded: the backout
/// itself succeeded only when `procedure.verify_after` holds.
async fn conclude(
    store: &Arc<dyn Store>,
    release_id: &str,
    summary: &RunSummary,
    actor: &str,
    resolver: Arc<Resolver>,
    clock: &dyn Clock,
    progress: &dyn crate::executor::Progress,
) -> Result<Option<Verified>, ExecError> {
    // A run that waits for a person has not ended: whoever continues it concludes it
    // (`conclude_resumed`), so its verification is never skipped.
    if !summary.run.state.is_terminal() {
        return Ok(None);
    }
    store
        .append_event(
            &NewEvent::new("execution_finished", actor, clock.now_ms())
                .payload(json!({
                    "run_id": summary.run.id,
                    "state": summary.run.state.as_str(),
                }))
                .release(release_id),
        )
        .await?;
    if summary.run.state != RunState::Succeeded {
        return Ok(None);
    }
    let verified = verify_after(
        store.as_ref(),
        release_id,
        &summary.run.id,
        resolver,
        clock,
        actor,
        progress,
    )
    .await?;
    Ok(Some(verified))
}

/// Ends a release's rollback whose run was finished by a resume (after a crash, or by the
/// replica that took it over) rather than by the [`carry_out`] that started it: journals
/// `execution_finished` and verifies a succeeded run, unless the release already records the
/// end of this run. Nothing for a run of no release or one still unfinished.
pub async fn conclude_resumed(
    store: &Arc<dyn Store>,
    summary: &RunSummary,
    actor: &str,
    resolver: Arc<Resolver>,
    clock: &dyn Clock,
    progress: &dyn crate::executor::Progress,
) -> Result<Option<Verified>, ExecError> {
    let Some(release_id) = summary.run.release_id.as_deref() else {
        return Ok(None);
    };
    if !summary.run.state.is_terminal() {
        return Ok(None);
    }
    // The run's end is recorded unless a person reopened it since (`retry`, `skip`).
    let mut after = 0;
    let mut ended = false;
    loop {
        let page = store.release_events(release_id, after, 1000).await?;
        for e in &page {
            let this_run = e.payload.get("run_id").and_then(serde_json::Value::as_str)
                == Some(summary.run.id.as_str());
            match e.kind.as_str() {
                "execution_finished" if this_run => ended = true,
                "execution_reopened" if this_run => ended = false,
                _ => {}
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => break,
        }
    }
    if ended {
        return Ok(None);
    }
    conclude(store, release_id, summary, actor, resolver, clock, progress).await
}
