//! What needs a person's attention around a run: manual steps that wait too long (reminders,
//! escalation), a run whose executor is gone, and what a failed step said last.

use std::collections::HashMap;

use backout_store::{NewEvent, Run, RunState, StepRecord, StepState, Store};
use serde_json::json;

use super::graph::Graph;
use super::{Context, Executor, is_backout, me, run_lease_name};
use crate::errors::ExecError;
use crate::notify::routed;
use crate::process;

impl Executor {
    /// Manual steps that wait are not forgotten: every `manual.remind_every` their people hear
    /// again (`manual_step_reminded`, announced as `manual_step_waiting`), and after
    /// `manual.timeout` it escalates (`manual_step_escalated`, announced as `escalated`). Only
    /// while an executor waits for people (a terminal, or the server).
    pub(super) async fn remind(
        &self,
        context: &Context,
        graph: &Graph,
        actor: &str,
        reminded: &mut HashMap<String, (u64, bool)>,
    ) -> Result<(), ExecError> {
        let now = self.clock.now_ms();
        let mut events = Vec::new();
        for node in &graph.nodes {
            let Some(record) = node.record.as_ref() else {
                continue;
            };
            if record.state != StepState::WaitingManual {
                continue;
            }
            let (by, wait) = match &node.step.kind {
                backout_model::plan::StepKind::Manual { by, .. } => (by, &node.step.manual_wait),
                _ => continue,
            };
            let waited = now - record.started_at_ms.unwrap_or(now);
            let entry = reminded.entry(node.step.id.clone()).or_default();
            if let Some(every) = wait.remind_every.map(|d| d.as_millis()).filter(|e| *e > 0) {
                let due = u64::try_from(waited).unwrap_or(0) / every;
                if due > entry.0 {
                    entry.0 = due;
                    events.push(
                        NewEvent::new("manual_step_reminded", actor, now)
                            .run(&context.run_id)
                            .step(&node.step.id)
                            .payload(json!({ "by": by, "reminder": due, "waited_ms": waited })),
                    );
                }
            }
            if let Some(timeout) = wait.timeout
                && !entry.1
                && u64::try_from(waited).unwrap_or(0) >= timeout.as_millis()
            {
                entry.1 = true;
                events.push(
                    NewEvent::new("manual_step_escalated", actor, now)
                        .run(&context.run_id)
                        .step(&node.step.id)
                        .payload(json!({ "by": by, "timeout": timeout.to_string(), "waited_ms": waited })),
                );
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let events: Vec<NewEvent> = events
            .into_iter()
            .map(|e| routed(&context.plan, e).fenced(context.fence.clone()))
            .collect();
        self.store.append_events(&events).await?;
        Ok(())
    }
}

/// For a run recorded `running` whose executor was a process on this machine that is gone (a
/// crash, `kill -9`): a line saying so and naming `backout resume`. `None` otherwise.
pub fn executor_gone(run: &Run) -> Option<String> {
    let executor = run.executor.as_ref()?;
    let gone = run.state == RunState::Running
        && executor.hostname == me().hostname
        && executor.pid != std::process::id()
        && !(process::is_alive(executor.pid) && is_backout(executor.pid));
    gone.then(|| {
        format!(
            "no executor runs it any more: process {} on {} is gone (crashed or killed). \
             Continue it with `backout resume {}` (finished steps never run again)",
            executor.pid, executor.hostname, run.id
        )
    })
}

/// [`executor_gone`], also for runs shared by replicas: a `running` run whose lease `run:<id>`
/// expired has no executor either (its replica died or stopped); one whose lease is held does.
pub async fn executor_gone_at(store: &dyn Store, run: &Run, now_ms: i64) -> Option<String> {
    if run.state != RunState::Running {
        return None;
    }
    let name = run_lease_name(&run.id);
    if let Ok(leases) = store.leases(&name).await
        && let Some(lease) = leases.iter().find(|l| l.name == name)
    {
        if lease.is_held(now_ms) {
            return None;
        }
        return Some(format!(
            "no executor runs it any more: the lease `{name}` of replica {} expired {}s ago. \
             A running server takes it over within seconds; with no server, continue it with \
             `backout resume {}` (finished steps never run again)",
            lease.owner,
            (now_ms - lease.expires_at_ms) / 1000,
            run.id
        ));
    }
    executor_gone(run)
}

/// How many of a failed step's last output lines `status`, `report`, notifications and the web
/// UI show.
pub const TAIL_LINES: usize = 20;

/// The last `lines` lines of a step's stderr, then of its stdout (already capped and redacted
/// when recorded), each under its name: what a failed step said, where the on-call looks.
pub fn output_tail(record: &StepRecord, lines: usize) -> String {
    let tail = |text: &str| -> Option<String> {
        let all: Vec<&str> = text.trim_end().lines().collect();
        (!all.is_empty()).then(|| all[all.len().saturating_sub(lines)..].join("\n"))
    };
    let mut out = String::new();
    for (name, text) in [("stderr", &record.stderr), ("stdout", &record.stdout)] {
        if let Some(t) = tail(text) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{name}:\n{t}"));
        }
    }
    out
}
