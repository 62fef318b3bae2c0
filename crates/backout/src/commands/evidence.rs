//! `backout evidence list|show|export`: the rehearsal evidence of the store (only one that
//! exists: looking never creates one). The lookups `lint`, `render`, `start` and
//! `report --durations` share with it are in `shared/evidence.rs`.

use std::path::Path;

use backout_core::time::utc;
use backout_model::Duration;
use backout_store::{Evidence, EvidenceFilter};

use crate::cli::{EvidenceArgs, EvidenceCommand, LintFormat};
use crate::commands::context::Context;
use crate::commands::shared::evidence::{LIMIT, of_service, untested};
use crate::commands::shared::plan::load_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn run(args: &EvidenceArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    ctx.runtime()?.block_on(async {
        match &args.command {
            EvidenceCommand::List { plan, format } => list(ctx, plan.as_deref(), *format).await,
            EvidenceCommand::Show { id, format } => show(ctx, id, *format).await,
            EvidenceCommand::Export { plan } => export(ctx, plan.as_deref()).await,
        }
    })
}

async fn list(
    ctx: &Context,
    plan: Option<&Path>,
    format: LintFormat,
) -> Result<ExitCode, CommandError> {
    let current = plan.map(load_plan).transpose()?;
    let store = ctx.open_existing().await?;
    let evidence = match (&store, &current) {
        (None, _) => Vec::new(),
        (Some(store), Some((_, plan, _))) => {
            of_service(store.as_ref(), &plan.release.service).await?
        }
        (Some(store), None) => {
            store
                .list_evidence(&EvidenceFilter::default(), LIMIT)
                .await?
        }
    };
    let hash = current.as_ref().map(|(_, _, hash)| hash.as_str());
    if format == LintFormat::Json {
        let rows: Vec<serde_json::Value> = evidence
            .iter()
            .map(|e| {
                let mut value = summary_json(e);
                if let (Some(hash), Some(map)) = (hash, value.as_object_mut()) {
                    map.insert("current".into(), (e.plan_hash == hash).into());
                }
                value
            })
            .collect();
        output::out(&format!("{}\n", output::json(&rows)?));
        return Ok(ExitCode::Ok);
    }
    if evidence.is_empty() {
        output::out("no rehearsal evidence yet; rehearse with `backout rehearse PLAN --env E`\n");
        return Ok(ExitCode::Ok);
    }
    for e in &evidence {
        let mark = match hash {
            Some(h) if e.plan_hash == h => "  (this version)",
            Some(_) => "  (another version)",
            None => "",
        };
        output::out(&format!(
            "{}  {}  {:<10} {:<16} took {:<8} hash {}…  {}{}{mark}\n",
            e.id,
            utc(e.finished_at_ms),
            e.environment,
            e.actor,
            Duration::from_millis(u64::try_from(e.took_ms()).unwrap_or(0)).to_string(),
            short(&e.plan_hash),
            e.service,
            if e.round_trip.is_some() {
                ", round trip"
            } else {
                ""
            },
        ));
    }
    Ok(ExitCode::Ok)
}

async fn show(ctx: &Context, id: &str, format: LintFormat) -> Result<ExitCode, CommandError> {
    let store = ctx.open_store().await?;
    let e = store.get_evidence(id).await?;
    if format == LintFormat::Json {
        output::out(&format!("{}\n", output::json(&e)?));
        return Ok(ExitCode::Ok);
    }
    let ms = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0)).to_string();
    let mut out = format!(
        "evidence {}: a successful rehearsal of {} in {}\n  run:         {}\n  plan hash:   {}\n  by:          {}\n  started:     {}\n  finished:    {}\n  took:        {}\n",
        e.id,
        e.service,
        e.environment,
        e.run_id,
        e.plan_hash,
        e.actor,
        utc(e.started_at_ms),
        utc(e.finished_at_ms),
        ms(e.took_ms())
    );
    out.push_str(&format!(
        "  contingency: {}\n",
        if e.contingencies.is_empty() {
            "none ran".to_string()
        } else {
            e.contingencies.join(", ")
        }
    ));
    if let Some(rt) = &e.round_trip {
        out.push_str(&format!(
            "  round trip:  `{}` succeeded before ({}) and after ({}) the backout\n",
            rt.command,
            ms(rt.first.finished_at_ms - rt.first.started_at_ms),
            ms(rt.second.finished_at_ms - rt.second.started_at_ms)
        ));
    }
    out.push_str(&format!(
        "\n{:<28} {:<10} {:>8} {:>10}  branch\n",
        "step", "state", "attempts", "took"
    ));
    for s in &e.steps {
        out.push_str(&format!(
            "{:<28} {:<10} {:>8} {:>10}  {}\n",
            s.step_id,
            s.state.to_string(),
            s.attempts,
            s.duration_ms.map_or("-".into(), ms),
            s.contingency.as_deref().unwrap_or("")
        ));
    }
    output::out(&out);
    Ok(ExitCode::Ok)
}

async fn export(ctx: &Context, plan: Option<&Path>) -> Result<ExitCode, CommandError> {
    let store = ctx.open_existing().await?;
    let value = match plan {
        Some(path) => {
            let (source, plan, hash) = load_plan(path)?;
            let all = match &store {
                Some(store) => of_service(store.as_ref(), &plan.release.service).await?,
                None => Vec::new(),
            };
            let untested = untested(&source, &plan, &all, ctx.now());
            let current: Vec<&Evidence> = all.iter().filter(|e| e.plan_hash == hash).collect();
            serde_json::json!({
                "plan": path.display().to_string(),
                "service": plan.release.service,
                "plan_hash": hash,
                "exported_at": utc(ctx.now()),
                "tested": untested.is_none(),
                "problem": untested.map(|d| d.message),
                "evidence": current,
            })
        }
        None => {
            let all = match &store {
                Some(store) => {
                    store
                        .list_evidence(&EvidenceFilter::default(), LIMIT)
                        .await?
                }
                None => Vec::new(),
            };
            serde_json::json!({ "exported_at": utc(ctx.now()), "evidence": all })
        }
    };
    output::out(&format!("{}\n", output::json(&value)?));
    Ok(ExitCode::Ok)
}

fn summary_json(e: &Evidence) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "run_id": e.run_id,
        "service": e.service,
        "plan_hash": e.plan_hash,
        "environment": e.environment,
        "actor": e.actor,
        "started_at": utc(e.started_at_ms),
        "finished_at": utc(e.finished_at_ms),
        "took_ms": e.took_ms(),
        "contingencies": e.contingencies,
        "round_trip": e.round_trip.is_some(),
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
