//! `report REL`: the whole story of a release — its events, the acts on its runs, the
//! rollback's runs against what the plan promised, its notifications and measurements.

use backout_core::release::{self, Tracker};

use super::short;
use crate::cli::LintFormat;
use crate::commands::context::Context;
use crate::commands::shared::listing::deliveries_table;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;
use backout_core::time::{left, utc};

/// `report rel-…`: the story of a release in order: opening, checkpoints, verdict changes with
/// their evidence, requests, decisions, escalations, executions and the window's close; the
/// measurements are summarized per criterion (they are all in the journal).
pub fn report(
    release_id: &str,
    format: LintFormat,
    ctx: &Context,
) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        let store = ctx.open_store().await?;
        let release = store.get_release(release_id).await?;
        let mut events = Vec::new();
        release::for_each_event(store.as_ref(), release_id, |e| events.push(e.clone())).await?;
        let mut measured: std::collections::BTreeMap<String, (usize, usize)> =
            std::collections::BTreeMap::new();
        for e in events.iter().filter(|e| e.kind == "measurement") {
            let id = e.payload["criterion"].as_str().unwrap_or("?").to_string();
            let entry = measured.entry(id).or_default();
            entry.0 += 1;
            entry.1 += usize::from(e.payload["class"] == "failing");
        }
        // The acts on the release's runs (a resume after a crash, steps in doubt and how people
        // settled them, failures) belong to its story too.
        let mut acts = Vec::new();
        for run_id in events
            .iter()
            .filter(|e| e.kind == "run_started")
            .filter_map(|e| e.run_id.clone())
        {
            for e in store.run_events(&run_id, 0, 100_000).await? {
                if e.release_id.is_none() && RUN_ACTS.contains(&e.kind.as_str()) {
                    acts.push(e);
                }
            }
        }
        let mut story: Vec<&backout_store::Event> = events
            .iter()
            .chain(acts.iter())
            .filter(|e| {
                !matches!(
                    e.kind.as_str(),
                    "measurement" | "verification" | "criteria_snapshot"
                )
            })
            .collect();
        story.sort_by_key(|e| e.seq);
        // The runs of the rollback, with what the plan promised.
        let mut runs = Vec::new();
        for e in events.iter().filter(|e| e.kind == "execution_finished") {
            // A run reopened by a person (retry, skip) ends twice: list it once.
            if let Some(id) = e.payload["run_id"].as_str()
                && runs.iter().all(|r: &backout_store::Run| r.id != id)
            {
                runs.push(store.get_run(id).await?);
            }
        }
        let promised = Tracker::plan_of(&release)
            .ok()
            .and_then(|p| p.expected_duration.given().copied());
        let mut deliveries = store.list_deliveries(Some(release_id), 500).await?;
        deliveries.reverse();
        let outcome = match release::decide::load(store.as_ref(), release_id).await {
            Ok(loaded) => release::decide::Outcome::of(&loaded.release, &loaded.decisions),
            Err(_) => release::decide::Outcome::of_record(&release),
        };
        if format == LintFormat::Json {
            let value = serde_json::json!({
                "release": { "id": release.id, "service": release.service, "version": release.version,
                    "rollback_to": release.rollback_to, "environment": release.environment,
                    "plan_hash": release.plan_hash, "state": release.state.as_str(),
                    "opened_at_ms": release.opened_at_ms, "closes_at_ms": release.closes_at_ms,
                    "closed_at_ms": release.closed_at_ms, "close_reason": release.close_reason,
                    "outcome": outcome.as_str() },
                "events": story,
                "measurements": measured.iter().map(|(id, (n, failing))| {
                    serde_json::json!({ "criterion": id, "count": n, "failing": failing })
                }).collect::<Vec<_>>(),
                "runs": runs.iter().map(|r| serde_json::json!({
                    "id": r.id, "state": r.state.as_str(), "actor": r.actor,
                    "started_at_ms": r.created_at_ms, "finished_at_ms": r.finished_at_ms,
                    "expected_duration": promised.map(|d| d.to_string()),
                })).collect::<Vec<_>>(),
                "deliveries": deliveries,
            });
            output::out(&format!("{}\n", output::json(&value)?));
            return Ok(ExitCode::Ok);
        }
        let mut out = format!(
            "# Release {} — {} {} → {} ({})\n\n",
            release.id, release.service, release.version, release.rollback_to, release.environment
        );
        out.push_str(&format!(
            "- outcome: **{}**\n- plan hash {}\n- opened {} by {}\n",
            outcome.as_str(),
            short(&release.plan_hash),
            utc(release.opened_at_ms),
            release.actor
        ));
        match (&release.closed_at_ms, &release.close_reason) {
            (Some(at), Some(reason)) => {
                out.push_str(&format!("- window closed {}: {reason}\n", utc(*at)))
            }
            _ => out.push_str(&format!(
                "- window {}\n",
                release
                    .closes_at_ms
                    .map_or("not applicable".into(), |t| format!("closes {}", utc(t)))
            )),
        }
        out.push_str("\n## Timeline\n\n");
        for e in &story {
            out.push_str(&format!(
                "- {} **{}** by {}{}\n",
                utc(e.at_ms),
                e.kind,
                e.actor,
                story_detail(e)
            ));
        }
        if !runs.is_empty() {
            out.push_str("\n## The rollback\n\n");
            for run in &runs {
                let took = run.finished_at_ms.unwrap_or(run.updated_at_ms) - run.created_at_ms;
                let promise = promised
                    .map(|d| format!(" (the plan promises {d})"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "- run {} by {}: {} after {}{promise}; `backout report {}` has every step\n",
                    run.id,
                    run.actor,
                    run.state,
                    left(took),
                    run.id
                ));
            }
        }
        if !deliveries.is_empty() {
            out.push_str("\n## Notifications\n\n```\n");
            out.push_str(&deliveries_table(&deliveries, false, ctx.now()));
            out.push_str("```\n");
        }
        if !measured.is_empty() {
            out.push_str("\n## Measurements\n\n");
            for (id, (n, failing)) in &measured {
                out.push_str(&format!("- {id}: {n} measured, {failing} failing\n"));
            }
        }
        output::out(&out);
        Ok(ExitCode::Ok)
    })
}

/// The words after an event in the timeline.
/// Events of a release's runs that `report REL` shows in the release's timeline.
const RUN_ACTS: [&str; 10] = [
    "run_resumed",
    "step_in_doubt",
    "step_requeued",
    "step_resolved",
    "step_confirmed",
    "step_failed",
    "step_failed_waiting",
    "manual_step_escalated",
    "run_failed",
    "run_succeeded",
];

fn story_detail(e: &backout_store::Event) -> String {
    let p = &e.payload;
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match e.kind.as_str() {
        "verdict" => {
            let why: Vec<String> = p["evidence"]["criteria"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| {
                            format!(
                                "{}: {}",
                                c["criterion"].as_str().unwrap_or("?"),
                                c["reason"].as_str().unwrap_or("no measurement")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            };
            format!(": {}{why}", s("verdict"))
        }
        "decision" => format!(
            ": {}{}{} — {}",
            s("decision"),
            if p["fallback"] == true {
                " as fallback decider"
            } else {
                ""
            },
            if p["override_window"] == true {
                " OVERRIDING THE CLOSED WINDOW"
            } else {
                ""
            },
            s("reason")
        ),
        "rollback_requested" => format!(": {}", s("reason")),
        "checkpoint_reached" | "window_closed" if !s("checkpoint").is_empty() => {
            format!(": {}", s("checkpoint"))
        }
        "window_closed" => format!(": {}", s("reason")),
        "escalated" if s("reason") == "start_within" => format!(
            ": approved, but no execution started within {}",
            s("start_within")
        ),
        "escalated" => format!(
            ": no decision within {}; `{}` may decide now",
            s("after"),
            s("fallback_deciders")
        ),
        "decision_requested" => format!(": `{}` asked (quorum {})", s("deciders"), p["quorum"]),
        "execution_finished" => format!(": run {} {}", s("run_id"), s("state")),
        "execution_abandoned" => format!(": {}", s("error")),
        "rollback_verified" | "rolled_back" | "rollback_unverified" => {
            format!(": {}", s("detail"))
        }
        "execution_started" if !s("workaround").is_empty() => {
            format!(": workaround `{}`", s("workaround"))
        }
        "run_started" => format!(
            ": run {}{}",
            e.run_id.as_deref().unwrap_or("?"),
            match s("workaround") {
                "" => String::new(),
                w => format!(" (workaround `{w}`)"),
            }
        ),
        "run_reopened" => format!(
            ": run {} reopened ({}, was {})",
            e.run_id.as_deref().unwrap_or("?"),
            s("act"),
            s("was")
        ),
        "step_retry_requested" => format!(
            ": {} gets a new attempt (was {})",
            e.step_id.as_deref().unwrap_or("?"),
            s("was")
        ),
        "step_skipped_by_person" => format!(
            ": {} skipped: {}",
            e.step_id.as_deref().unwrap_or("?"),
            s("reason")
        ),
        "run_aborted" => format!(": {}", s("reason")),
        "run_resumed" => format!(
            ": run {} resumed{}",
            e.run_id.as_deref().unwrap_or("?"),
            match p["stopped_process_groups"].as_array().map(Vec::len) {
                Some(n) if n > 0 =>
                    format!("; stopped {n} process group(s) of the steps that were running"),
                _ => String::new(),
            }
        ),
        "step_in_doubt" | "step_requeued" | "step_failed" | "step_failed_waiting" => format!(
            ": {}{}",
            e.step_id.as_deref().unwrap_or("?"),
            match s("detail") {
                "" => String::new(),
                d => format!(" ({d})"),
            }
        ),
        "step_resolved" | "step_confirmed" => format!(
            ": {} {}{}",
            e.step_id.as_deref().unwrap_or("?"),
            s("outcome"),
            match s("note") {
                "" => String::new(),
                n => format!(" — {n}"),
            }
        ),
        "window_closing" => format!(
            ": closes in {}",
            backout_model::Duration::from_millis(
                p["remaining_ms"].as_u64().unwrap_or(0) / 1000 * 1000
            )
        ),
        _ => String::new(),
    }
}
