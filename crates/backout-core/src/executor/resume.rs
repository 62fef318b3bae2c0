//! Resuming a run after its executor stopped (crash, `kill -9`, a person awaited, another
//! replica's lease expired): finished steps are never run again, running ones are re-run only
//! when idempotent and otherwise become `in_doubt` for a person.

use std::collections::HashMap;

use backout_store::{NewEvent, RunKind, RunState, RunUpdate, StepState};
use serde_json::json;

use super::graph::Graph;
use super::lease::Held;
use super::{
    Executor, ProgressEvent, RunOptions, RunSummary, find_step, is_backout, me, steps_to_run,
};
use crate::errors::ExecError;
use crate::process;

impl Executor {
    /// Continues a run after its executor stopped (crash, `kill -9`, waiting for a person).
    pub async fn resume(
        &self,
        run_id: &str,
        actor: &str,
        wait_for_people: bool,
    ) -> Result<RunSummary, ExecError> {
        let run = self.store.get_run(run_id).await?;
        if run.state.is_terminal() {
            return Err(ExecError::Refused(format!(
                "run `{run_id}` already ended: {}{}",
                run.state,
                super::ways_forward(&run)
            )));
        }
        // Shared runs are guarded by their lease (taken only when free or expired, whoever held
        // it before); a lone executor checks for a live executor on this machine instead.
        let held = self.take_lease(run_id).await?;
        let fence = held.as_ref().map(Held::fence);
        if held.is_none()
            && let Some(holder) = &run.executor
            && holder.hostname == me().hostname
            && holder.pid != std::process::id()
            && process::is_alive(holder.pid)
            && is_backout(holder.pid)
        {
            return Err(ExecError::Refused(format!(
                "run `{run_id}` is being executed by process {} on this machine; stop it first or wait for it",
                holder.pid
            )));
        }
        let linted = backout_model::lint(&run.plan_source);
        let Some(plan) = linted.plan else {
            return Err(ExecError::InvalidPlan {
                run_id: run_id.into(),
                message: format!("{} error(s)", linted.errors()),
            });
        };
        let workaround = match run.kind {
            RunKind::Workaround => self.workaround_of(run_id).await?,
            _ => None,
        };
        let steps = steps_to_run(&plan, workaround.as_deref())?;
        let now = self.clock.now_ms();
        let records = self.store.list_steps(run_id).await?;
        let groups = self.recorded_groups(run_id).await?;
        let mut stopped = Vec::new();
        for record in records.iter().filter(|r| r.state == StepState::Running) {
            // Only the group of the attempt that was running; a daemon an earlier step
            // started, or one that left its step's group, is never touched.
            match groups.get(&(record.step_id.clone(), record.attempt)) {
                Some(identity) => {
                    let result = process::stop_group(identity, run_id, &record.step_id);
                    stopped.push(json!({
                        "step": record.step_id, "pgid": identity.pgid, "result": result,
                    }));
                }
                None => {
                    for pgid in process::stop_unrecorded(run_id, &record.step_id) {
                        stopped.push(json!({
                            "step": record.step_id, "pgid": pgid, "result": process::Stopped::Killed,
                        }));
                    }
                }
            }
        }
        for record in records.iter().filter(|r| r.state == StepState::Running) {
            let idempotent = find_step(&plan, &record.step_id).is_some_and(|s| s.idempotent);
            let mut next = record.clone();
            next.updated_at_ms = now;
            next.pgid = None;
            let kind = if idempotent {
                next.state = StepState::Pending;
                next.note = Some(format!(
                    "was running (attempt {}) when its executor stopped; idempotent, so it runs again",
                    record.attempt
                ));
                "step_requeued"
            } else {
                next.state = StepState::InDoubt;
                next.note = Some(format!(
                    "was running (attempt {}) when its executor stopped and is not idempotent: check whether it took effect, then `backout resolve {run_id} {} done|failed|retry`",
                    record.attempt, record.step_id
                ));
                self.progress.event(&ProgressEvent::StepInDoubt {
                    step: record.step_id.clone(),
                });
                "step_in_doubt"
            };
            self.store
                .record_step(
                    &next,
                    &NewEvent::new(kind, actor, now)
                        .run(run_id)
                        .step(&record.step_id)
                        .fenced(fence.clone()),
                )
                .await?;
        }
        let mut payload = json!({ "stopped_process_groups": stopped });
        if let Some(settings) = &self.lease {
            payload["replica"] = json!(settings.owner);
        }
        let event = NewEvent::new("run_resumed", actor, now)
            .run(run_id)
            .payload(payload)
            .fenced(fence.clone());
        self.store
            .update_run(
                &RunUpdate {
                    run_id: run_id.into(),
                    state: RunState::Running,
                    executor: Some(me()),
                    at_ms: now,
                },
                &event,
            )
            .await?;
        self.progress.event(&ProgressEvent::RunStarted {
            run_id: run_id.into(),
            steps: steps.len(),
            resumed: true,
        });
        let options = RunOptions {
            kind: run.kind,
            environment: run.environment.clone(),
            checkpoints: run.checkpoints.clone(),
            actor: actor.into(),
            release_id: run.release_id.clone(),
            workaround,
            wait_for_people,
            // A rehearsal resumes in its environment, with that environment's overrides.
            extra_env: if run.kind == RunKind::Rehearsal {
                crate::rehearsal::overrides(&plan, &run.environment, &self.resolver)?
            } else {
                Vec::new()
            },
            break_glass: None,
        };
        let context = self.context(&plan, &run.plan_source, run_id, &options, fence);
        let graph = Graph::new(&plan, steps);
        self.drive_held(context, graph, actor, wait_for_people, held)
            .await
    }

    /// The process groups the run's attempts recorded (`step_process`), by step and attempt.
    async fn recorded_groups(
        &self,
        run_id: &str,
    ) -> Result<HashMap<(String, u32), process::GroupIdentity>, ExecError> {
        let mut groups = HashMap::new();
        let mut after = 0;
        loop {
            let page = self.store.run_events(run_id, after, 1000).await?;
            for event in page.iter().filter(|e| e.kind == "step_process") {
                let attempt = event
                    .payload
                    .get("attempt")
                    .and_then(serde_json::Value::as_u64);
                let group = serde_json::from_value(event.payload["group"].clone()).ok();
                if let (Some(step), Some(attempt), Some(group)) = (&event.step_id, attempt, group) {
                    groups.insert((step.clone(), u32::try_from(attempt).unwrap_or(0)), group);
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = last.seq,
                _ => return Ok(groups),
            }
        }
    }

    /// The workaround a workaround run was started for, from its `run_started` event.
    async fn workaround_of(&self, run_id: &str) -> Result<Option<String>, ExecError> {
        let events = self.store.run_events(run_id, 0, 1).await?;
        Ok(events
            .first()
            .and_then(|e| e.payload.get("workaround"))
            .and_then(|w| w.as_str())
            .map(str::to_string))
    }
}
