//! `backout plans add|remove|list`: the plans a server rehearses by itself although no release
//! uses them yet. Registrations are journal events (`plan_registered`, `plan_unregistered`,
//! built by `backout_core::drill::rehearse`), so every replica reads the same list.

use backout_core::drill::{rehearse, schedule};
use backout_model::plan::Answer;

use crate::cli::{LintFormat, PlansArgs, PlansCommand};
use crate::commands::context::Context;
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn run(args: &PlansArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    match &args.command {
        PlansCommand::Add { plan } => {
            let source = read_plan(plan).map_err(CommandError::usage)?;
            let event = rehearse::registered(&source, &ctx.actor(), ctx.now())?;
            ctx.with_store(|store| async move {
                let hash = event.payload["plan_hash"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if rehearse::registered_plans(store.as_ref())
                    .await?
                    .contains_key(&hash)
                {
                    eprintln!("plan {} is registered already", short(&hash));
                    return Ok(ExitCode::Ok);
                }
                store.append_event(&event).await?;
                eprintln!(
                    "registered plan {} ({}): `backout serve` rehearses it on its testing.schedule / renew_before once its content is accepted (`backout accept {}`)",
                    short(&hash),
                    plan.display(),
                    plan.display()
                );
                Ok(ExitCode::Ok)
            })
        }
        PlansCommand::Remove { plan } => {
            let source = read_plan(plan).map_err(CommandError::usage)?;
            let hash = backout_model::lint(&source).hash.ok_or_else(|| {
                CommandError::usage(format!("`{}` cannot be read as a plan", plan.display()))
            })?;
            ctx.with_store(|store| async move {
                if !rehearse::registered_plans(store.as_ref())
                    .await?
                    .contains_key(&hash)
                {
                    return Err(CommandError::usage(format!(
                        "plan {} ({}) is not registered; `backout plans list` shows those that are",
                        short(&hash),
                        plan.display()
                    )));
                }
                store
                    .append_event(&rehearse::unregistered(&hash, &ctx.actor(), ctx.now()))
                    .await?;
                eprintln!("plan {} is no longer rehearsed on schedule", short(&hash));
                Ok(ExitCode::Ok)
            })
        }
        PlansCommand::List { format } => list(*format, ctx),
    }
}

fn list(format: LintFormat, ctx: &Context) -> Result<ExitCode, CommandError> {
    ctx.with_store(|store| async move {
        let known = rehearse::known_plans(store.as_ref(), 50).await?;
        let mut rows = Vec::new();
        for k in &known {
            let evidence = rehearse::newest_evidence(store.as_ref(), k).await?;
            let Answer::Given(t) = &k.plan.testing else {
                continue;
            };
            let expires = evidence
                .as_ref()
                .map(|e| e.finished_at_ms + i64::try_from(t.max_age.as_millis()).unwrap_or(0));
            let due = schedule::due(
                t,
                evidence.as_ref().map(|e| e.finished_at_ms),
                None,
                ctx.now(),
            );
            rows.push(serde_json::json!({
                "service": k.plan.release.service,
                "plan_hash": k.hash,
                "registered": k.registered,
                "schedule": t.schedule,
                "time_zone": t.time_zone,
                "renew_before": t.renew_before.map(|d| d.to_string()),
                "rehearse_in": t.rehearse_in,
                "evidence_id": evidence.as_ref().map(|e| e.id.clone()),
                "expires_at": expires.map(backout_core::time::utc),
                "due_now": matches!(due, Ok(Some(_))),
                "problem": due.err(),
            }));
        }
        if format == LintFormat::Json {
            output::out(&format!("{}\n", serde_json::Value::from(rows)));
            return Ok(ExitCode::Ok);
        }
        if rows.is_empty() {
            output::out(
                "no plan is rehearsed on schedule; `backout plans add PLAN` registers one\n",
            );
            return Ok(ExitCode::Ok);
        }
        let mut text = String::new();
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            text.push_str(&format!(
                "{} {} {} schedule {} ({}) renew_before {} in {}: evidence {} expires {}{}\n",
                s("service"),
                short(&s("plan_hash")),
                if r["registered"] == true {
                    "registered"
                } else {
                    "of a release"
                },
                s("schedule"),
                s("time_zone"),
                s("renew_before"),
                s("rehearse_in"),
                s("evidence_id"),
                s("expires_at"),
                match r["problem"].as_str() {
                    Some(p) => format!(" — PROBLEM: {p}"),
                    None if r["due_now"] == true => " — due now".to_string(),
                    None => String::new(),
                }
            ));
        }
        output::out(&text);
        Ok(ExitCode::Ok)
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
