//! `backout evidence list|show|export`, and the lookups of rehearsal evidence that `lint`,
//! `render`, `start` and `report --durations` share: which store to read (only one that exists;
//! looking never creates one), and what the evidence says about a plan's current content.

use std::path::Path;
use std::sync::Arc;

use backout_core::time::utc;
use backout_model::lint::evidence::{EvidencePolicy, Rehearsed, check_evidence};
use backout_model::{Diagnostic, Duration, Plan, codes};
use backout_store::{Evidence, EvidenceFilter, Store};

use super::runs::{json, now, open_store, runtime};
use crate::cli::{EvidenceArgs, EvidenceCommand, Global, LintFormat};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// How many pieces of evidence of one service are read at most.
const LIMIT: u32 = 10_000;

/// The store, if it exists: the one `--database` / `BACKOUT_DATABASE_URL` names, or the default
/// file when it is there. `None` means there is no store, so no evidence (and none is created).
pub(super) async fn open_existing(global: &Global) -> Result<Option<Arc<dyn Store>>, CommandError> {
    let url = match &global.database {
        Some(url) => url.clone(),
        None => match backout_sqlite::default_database_url() {
            Ok(url) => url,
            Err(_) => return Ok(None),
        },
    };
    if let Some(path) = backout_sqlite::database_file(&url)
        && !path.exists()
    {
        return Ok(None);
    }
    open_store(global).await.map(Some)
}

/// Every piece of evidence of `service`, newest first.
pub(super) async fn of_service(
    store: &dyn Store,
    service: &str,
) -> Result<Vec<Evidence>, CommandError> {
    let filter = EvidenceFilter {
        service: Some(service.to_string()),
        ..EvidenceFilter::default()
    };
    Ok(store.list_evidence(&filter, LIMIT).await?)
}

/// What lint's pure check needs of a piece of evidence.
pub(super) fn rehearsed(e: &Evidence) -> Rehearsed {
    Rehearsed {
        plan_hash: e.plan_hash.clone(),
        environment: e.environment.clone(),
        actor: e.actor.clone(),
        finished_at_ms: e.finished_at_ms,
        steps: e
            .steps
            .iter()
            .filter(|s| s.state == backout_store::StepState::Succeeded)
            .filter_map(|s| Some((s.step_id.clone(), u64::try_from(s.duration_ms?).ok()?)))
            .collect(),
    }
}

/// The diagnostics of `source` given `evidence` (B084 untested, B085 stale, B086 slow).
pub(super) fn diagnostics(
    source: &str,
    plan: &Plan,
    evidence: &[Evidence],
    require_tested: bool,
) -> Vec<Diagnostic> {
    let rehearsals: Vec<Rehearsed> = evidence.iter().map(rehearsed).collect();
    check_evidence(
        source,
        plan,
        &rehearsals,
        EvidencePolicy {
            now_ms: now(),
            require_tested,
        },
    )
}

/// Whether the plan is untested or stale: the B084/B085 diagnostic that says so.
pub(super) fn untested(source: &str, plan: &Plan, evidence: &[Evidence]) -> Option<Diagnostic> {
    diagnostics(source, plan, evidence, true)
        .into_iter()
        .find(|d| d.code == codes::UNTESTED || d.code == codes::STALE)
}

/// A plan file's text, validated plan and hash, or a usage error.
pub(super) fn load_plan(path: &Path) -> Result<(String, Plan, String), CommandError> {
    let source = super::read_plan(path).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    let errors = linted.errors();
    match (linted.plan, linted.hash) {
        (Some(plan), Some(hash)) => Ok((source, plan, hash)),
        _ => Err(CommandError::usage(format!(
            "`{}` has {errors} error(s); run `backout lint {}` and fix them first",
            path.display(),
            path.display()
        ))),
    }
}

pub fn run(args: &EvidenceArgs, global: &Global) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        match &args.command {
            EvidenceCommand::List { plan, format } => list(global, plan.as_deref(), *format).await,
            EvidenceCommand::Show { id, format } => show(global, id, *format).await,
            EvidenceCommand::Export { plan } => export(global, plan.as_deref()).await,
        }
    })
}

async fn list(
    global: &Global,
    plan: Option<&Path>,
    format: LintFormat,
) -> Result<ExitCode, CommandError> {
    let current = plan.map(load_plan).transpose()?;
    let store = open_existing(global).await?;
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
        output::out(&format!("{}\n", json(&rows)?));
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

async fn show(global: &Global, id: &str, format: LintFormat) -> Result<ExitCode, CommandError> {
    let store = open_store(global).await?;
    let e = store.get_evidence(id).await?;
    if format == LintFormat::Json {
        output::out(&format!("{}\n", json(&e)?));
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

async fn export(global: &Global, plan: Option<&Path>) -> Result<ExitCode, CommandError> {
    let store = open_existing(global).await?;
    let value = match plan {
        Some(path) => {
            let (source, plan, hash) = load_plan(path)?;
            let all = match &store {
                Some(store) => of_service(store.as_ref(), &plan.release.service).await?,
                None => Vec::new(),
            };
            let untested = untested(&source, &plan, &all);
            let current: Vec<&Evidence> = all.iter().filter(|e| e.plan_hash == hash).collect();
            serde_json::json!({
                "plan": path.display().to_string(),
                "service": plan.release.service,
                "plan_hash": hash,
                "exported_at": utc(now()),
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
            serde_json::json!({ "exported_at": utc(now()), "evidence": all })
        }
    };
    output::out(&format!("{}\n", json(&value)?));
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
