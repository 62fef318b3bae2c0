//! `report RUN`: what happened in a run — its timeline, expected against actual per step, the
//! critical path, what failed steps said — as text, JSON, or an HTML page with a Gantt chart.

use super::*;

/// `report RUN` (the dispatcher sends `rel-…` and `--durations` to their commands); `format`
/// is `--format` for everything but the HTML page.
pub fn report(
    args: &ReportArgs,
    format: LintFormat,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let run = store.get_run(&args.run).await?;
        let steps = store.list_steps(&args.run).await?;
        let events = store.run_events(&args.run, 0, 100_000).await?;
        if args.format == ReportFormat::Html {
            output::out(&report_html(&run, &steps, &events, ctx.now())?);
        } else if format == LintFormat::Json {
            let value =
                serde_json::json!({ "run": run_json(&run), "steps": steps, "events": events });
            output::out(&format!("{}\n", output::json(&value)?));
        } else {
            output::out(&report_text(&run, &steps, &events));
            output::out(&failed_output(&steps));
        }
        Ok(ExitCode::Ok)
    })
}

/// Each step record as the Gantt chart draws it: the start of every attempt from the journal's
/// `step_started` events (the record keeps only the last), in milliseconds after the run began.
pub(super) fn actual_steps(
    run: &Run,
    steps: &[StepRecord],
    events: &[backout_store::Event],
) -> Vec<backout_model::render::ActualStep> {
    let after = |t: i64| u64::try_from(t - run.created_at_ms).unwrap_or(0);
    steps
        .iter()
        .map(|s| {
            let mut attempts: Vec<u64> = events
                .iter()
                .filter(|e| e.kind == "step_started" && e.step_id.as_deref() == Some(&s.step_id))
                .map(|e| after(e.at_ms))
                .collect();
            if attempts.is_empty()
                && let Some(t) = s.started_at_ms
            {
                attempts.push(after(t));
            }
            backout_model::render::ActualStep {
                id: s.step_id.clone(),
                state: s.state.as_str().to_string(),
                attempts,
                finished: s.finished_at_ms.map(after),
            }
        })
        .collect()
}

/// `report RUN --format html`: the run's facts, its Gantt chart and its step table.
fn report_html(
    run: &Run,
    steps: &[StepRecord],
    events: &[backout_store::Event],
    now: i64,
) -> Result<String, CommandError> {
    let Some(plan) = backout_model::lint(&run.plan_source).plan else {
        return Err(CommandError::internal(format!(
            "the plan stored with run `{}` does not lint",
            run.id
        )));
    };
    let end = run.finished_at_ms.unwrap_or(if run.state.is_terminal() {
        run.updated_at_ms
    } else {
        now
    });
    let elapsed = Duration::from_millis(u64::try_from(end - run.created_at_ms).unwrap_or(0));
    let schedule = Schedule::of_steps(plan.steps());
    let mut lines = vec![
        format!(
            "{} run in {}, started by {}; {}",
            run.kind, run.environment, run.actor, run.state
        ),
        format!(
            "took {elapsed}; expected_duration {}; ideal critical path {} ({})",
            plan.expected_duration
                .given()
                .map_or("not applicable".to_string(), ToString::to_string),
            schedule.total,
            schedule.critical_path.join(" → ")
        ),
    ];
    if !run.checkpoints.is_empty() {
        lines.push(format!(
            "checkpoints reached: {}",
            run.checkpoints.join(", ")
        ));
    }
    if let Some(release) = &run.release_id {
        lines.push(format!("release {release}"));
    }
    let facts = backout_model::render::RunFacts {
        heading: format!("Run {} — {}", run.id, service_of(run)),
        lines,
    };
    Ok(backout_model::render::run_html(
        &plan,
        &facts,
        &actual_steps(run, steps, events),
        elapsed,
    ))
}

fn report_text(run: &Run, steps: &[StepRecord], events: &[backout_store::Event]) -> String {
    let plan = backout_model::lint(&run.plan_source).plan;
    let mut out = String::new();
    out.push_str(&format!("# Run {} — {}\n\n", run.id, service_of(run)));
    out.push_str(&format!(
        "- kind: {}, environment: {}, started by {}\n- state: {}\n",
        run.kind, run.environment, run.actor, run.state
    ));
    if !run.checkpoints.is_empty() {
        out.push_str(&format!(
            "- checkpoints reached: {}\n",
            run.checkpoints.join(", ")
        ));
    }
    let total = run.finished_at_ms.unwrap_or(run.updated_at_ms) - run.created_at_ms;
    let total = Duration::from_millis(u64::try_from(total).unwrap_or(0));
    if let Some(plan) = &plan {
        let schedule = Schedule::of_steps(plan.steps());
        let promised = plan
            .expected_duration
            .given()
            .map_or("not applicable".to_string(), ToString::to_string);
        out.push_str(&format!(
            "- took {total}; expected_duration {promised}; ideal critical path {} ({})\n",
            schedule.total,
            schedule.critical_path.join(" → ")
        ));
    }
    out.push_str("\n## Steps: expected vs actual\n\n| step | state | attempts | started (+s) | took | expected | note |\n|---|---|---|---|---|---|---|\n");
    let expected = expected_of(run);
    for s in steps {
        let start = s.started_at_ms.map_or("-".into(), |t| {
            format!("{:.1}", (t - run.created_at_ms) as f64 / 1000.0)
        });
        let took = match (s.started_at_ms, s.finished_at_ms) {
            (Some(a), Some(b)) => {
                Duration::from_millis(u64::try_from(b - a).unwrap_or(0)).to_string()
            }
            _ => "-".into(),
        };
        let exp = expected
            .get(&s.step_id)
            .map_or("-".into(), ToString::to_string);
        let note = s
            .note
            .clone()
            .unwrap_or_default()
            .replace('|', "\\|")
            .replace('\n', " ");
        out.push_str(&format!(
            "| {} | {} | {} | {start} | {took} | {exp} | {note} |\n",
            s.step_id, s.state, s.attempt
        ));
    }
    out.push_str("\n## Timeline\n\n");
    // Where a step's process group was (`step_process`) is for crash recovery, not the story.
    for e in events.iter().filter(|e| e.kind != "step_process") {
        let at = format!("+{:.3}s", (e.at_ms - run.created_at_ms) as f64 / 1000.0);
        let step = e
            .step_id
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        out.push_str(&format!("- {at} {}{step} by {}\n", e.kind, e.actor));
    }
    out
}
