//! `backout criteria backtest PLAN`: how each Prometheus criterion would have behaved on its own
//! history. The history comes from the plan's Prometheus (`query_range`, in chunks, at each
//! criterion's `every`); the replay is `backout_core::criteria::backtest`, the watcher's own
//! evaluation. Nothing is stored: a backtest reads a plan file and a Prometheus only.

use std::io::IsTerminal;
use std::time::Duration as StdDuration;

use backout_core::criteria::backtest::{self, Options, Report};
use backout_core::criteria::sources;
use backout_core::criteria::suggest::{self, NoSuggestion, Suggestion};
use backout_core::env::Resolver;
use backout_core::time::{parse_rfc3339, utc};
use backout_model::plan::{Criterion, Source};
use backout_model::{Duration, Plan};

use crate::cli::{BacktestArgs, CriteriaArgs, CriteriaCommand, LintFormat};
use crate::commands::context::Context;
use crate::commands::shared::plan::read_plan;
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

/// History when neither --since nor --from is given.
const DEFAULT_SINCE_MS: i64 = 14 * 24 * 3600 * 1000;
/// The window of a plan whose window question is not applicable.
const DEFAULT_WINDOW_MS: i64 = 4 * 3600 * 1000;
/// Trips listed for people; JSON lists all.
const SHOWN_TRIPS: usize = 20;
/// How long one `query_range` request may take: ranges are heavier than instant queries.
const RANGE_TIMEOUT: StdDuration = StdDuration::from_secs(120);

pub fn run(args: &CriteriaArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    match &args.command {
        CriteriaCommand::Backtest(args) => run_backtest(args, ctx),
    }
}

fn run_backtest(args: &BacktestArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let source = read_plan(&args.plan).map_err(CommandError::usage)?;
    let file = args.plan.display().to_string();
    let linted = backout_model::lint(&source);
    let Some(plan) = &linted.plan else {
        return Err(CommandError::usage(format!(
            "`{file}` has {} error(s); run `backout lint {file}` and fix them first",
            linted.errors()
        )));
    };
    let (from_ms, to_ms) = range(args, ctx.now())?;
    let criteria = chosen(plan, &args.criteria)?;
    let times = |flag: &str, texts: &[String]| -> Result<Vec<i64>, CommandError> {
        texts
            .iter()
            .map(|t| parse_rfc3339(t).map_err(|e| CommandError::usage(format!("{flag}: {e}"))))
            .collect()
    };
    let options = Options {
        deploys: times("--deploy-at", &args.deploy_at)?,
        window_ms: window_ms(plan),
        incidents: times("--incident", &args.incidents)?,
    };
    let resolver = Resolver::from_env();
    let endpoint = sources::prometheus_endpoint(&sources::of_plan(plan), &resolver, RANGE_TIMEOUT)
        .map_err(CommandError::usage)?;
    let runtime = ctx.runtime()?;
    let mut reports = Vec::new();
    for criterion in criteria {
        let Source::Prometheus(query) = &criterion.source else {
            continue;
        };
        if let Some(why) = backtest::skipped(criterion) {
            output::warn(&why);
            continue;
        }
        let step = every_ms(criterion);
        // Steps on multiples of `every`, so two runs over the same range see the same times.
        let start = from_ms.div_euclid(step) * step;
        let progress = progress_line(&criterion.id);
        let mut samples = runtime
            .block_on(sources::query_range(
                &endpoint, query, start, to_ms, step, progress,
            ))
            .map_err(|e| {
                CommandError::usage(format!(
                    "criterion `{}`: could not read its history: {e}",
                    criterion.id
                ))
            })?;
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        if let Some((past_start, past_end)) = backtest::baseline_range(criterion, start, to_ms) {
            let past = runtime
                .block_on(sources::query_range(
                    &endpoint,
                    query,
                    past_start,
                    past_end,
                    step,
                    progress_line(&format!("{} (baseline)", criterion.id)),
                ))
                .map_err(|e| {
                    CommandError::usage(format!(
                        "criterion `{}`: could not read its baseline history: {e}",
                        criterion.id
                    ))
                })?;
            if std::io::stderr().is_terminal() {
                eprintln!();
            }
            backtest::attach_baselines(&mut samples, &past, start - past_start);
        }
        let report = backtest::replay(criterion, &samples, &options);
        // Suggestions are absolute thresholds: for a baseline criterion they would change what
        // it means, so none is made.
        let suggestion = (args.suggest && criterion.baseline.is_none())
            .then(|| suggest::suggest(criterion, &samples, &options, args.max_false_trips));
        reports.push((criterion, report, suggestion));
    }
    match args.format {
        LintFormat::Json => {
            let json = serde_json::json!({
                "plan": file,
                "from": utc(from_ms),
                "to": utc(to_ms),
                "window": Duration::from_millis(u64::try_from(options.window_ms).unwrap_or(0)).to_string(),
                "criteria": reports.iter().map(|(c, r, s)| json_of(c, r, s.as_ref())).collect::<Vec<_>>(),
            });
            let text = serde_json::to_string_pretty(&json)
                .map_err(|e| CommandError::internal(e.to_string()))?;
            output::out(&format!("{text}\n"));
        }
        LintFormat::Human => {
            output::out(&format!(
                "Backtest of `{file}` from {} to {} ({}):\n",
                utc(from_ms),
                utc(to_ms),
                if options.deploys.is_empty() {
                    "a release deployed at every step".to_string()
                } else {
                    format!("{} release(s) at the given times", options.deploys.len())
                }
            ));
            for (criterion, report, _) in &reports {
                output::out(&human(criterion, report));
            }
            if args.suggest {
                output::out(&patch(&reports, args.max_false_trips, from_ms, to_ms));
            }
        }
    }
    Ok(ExitCode::Ok)
}

/// `[from, to]` in ms from --since / --from / --to.
fn range(args: &BacktestArgs, now_ms: i64) -> Result<(i64, i64), CommandError> {
    let to_ms = match &args.to {
        Some(t) => parse_rfc3339(t).map_err(|e| CommandError::usage(format!("--to: {e}")))?,
        None => now_ms,
    };
    let from_ms = match (&args.from, &args.since) {
        (Some(f), _) => {
            parse_rfc3339(f).map_err(|e| CommandError::usage(format!("--from: {e}")))?
        }
        (None, Some(since)) => {
            let d = Duration::parse(since).ok_or_else(|| {
                CommandError::usage(format!(
                    "--since: `{since}` is not a duration; write it like 14d, 36h or 90m"
                ))
            })?;
            to_ms - i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX / 2)
        }
        (None, None) => to_ms - DEFAULT_SINCE_MS,
    };
    if from_ms >= to_ms {
        return Err(CommandError::usage(format!(
            "the history is empty: {} is not before {}",
            utc(from_ms),
            utc(to_ms)
        )));
    }
    Ok((from_ms, to_ms))
}

/// The criteria to backtest: the named ones (each must be a Prometheus criterion), else every
/// Prometheus criterion.
fn chosen<'p>(plan: &'p Plan, ids: &[String]) -> Result<Vec<&'p Criterion>, CommandError> {
    let all: Vec<&Criterion> = plan
        .criteria
        .given()
        .map(|c| c.rollback_when.iter().collect())
        .unwrap_or_default();
    if ids.is_empty() {
        let prometheus: Vec<&Criterion> = all
            .into_iter()
            .filter(|c| matches!(c.source, Source::Prometheus(_)))
            .collect();
        if prometheus.is_empty() {
            return Err(CommandError::usage(
                "the plan has no prometheus criterion; only Prometheus keeps a history to \
                 replay",
            ));
        }
        return Ok(prometheus);
    }
    ids.iter()
        .map(|id| {
            let c = all.iter().find(|c| &c.id == id).ok_or_else(|| {
                CommandError::usage(format!(
                    "--criterion {id}: the plan has no such criterion (it has: {})",
                    all.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if !matches!(c.source, Source::Prometheus(_)) {
                return Err(CommandError::usage(format!(
                    "--criterion {id}: not a prometheus criterion; only Prometheus keeps a \
                     history to replay"
                )));
            }
            Ok(*c)
        })
        .collect()
}

fn every_ms(criterion: &Criterion) -> i64 {
    i64::try_from(criterion.every.0.as_millis())
        .unwrap_or(60_000)
        .max(1)
}

fn window_ms(plan: &Plan) -> i64 {
    plan.window
        .given()
        .and_then(|w| i64::try_from(w.closes_after.0.as_millis()).ok())
        .unwrap_or(DEFAULT_WINDOW_MS)
}

/// Tells a terminal how far the fetch got; a pipe gets nothing.
fn progress_line(id: &str) -> impl FnMut(usize, usize) + use<> {
    let id = id.to_string();
    let terminal = std::io::stderr().is_terminal();
    move |done, total| {
        if terminal {
            eprint!("\rfetching `{id}`: {done}/{total} chunks");
        }
    }
}

fn number(v: f64) -> String {
    backout_model::condition::format_number((v * 1e6).round() / 1e6)
}

fn percent(f: f64) -> String {
    format!("{:.1}%", f * 100.0)
}

fn human(criterion: &Criterion, r: &Report) -> String {
    let mut out = format!(
        "\n{} ({}): {} measurements every {}, {} failing, {} inconclusive ({} no data)\n",
        criterion.id,
        conditions(criterion),
        r.measurements,
        criterion.every,
        r.failing,
        percent(r.inconclusive_fraction()),
        percent(r.no_data_fraction()),
    );
    if let Some(s) = &r.signal {
        out.push_str(&format!(
            "  signal: p50 {}  p95 {}  p99 {}  max {}\n",
            number(s.p50),
            number(s.p95),
            number(s.p99),
            number(s.max)
        ));
    }
    out.push_str(&format!(
        "  would have tripped {} time(s){}\n",
        r.trips.len(),
        if r.incidents.is_empty() {
            String::new()
        } else {
            format!(", {} not during a given incident", r.false_trips)
        }
    ));
    for t in r.trips.iter().take(SHOWN_TRIPS) {
        let deployed = t
            .deployed_ms
            .map(|d| format!(" (deployed {})", utc(d)))
            .unwrap_or_default();
        let incident = t
            .incident_ms
            .map(|i| format!(" [incident {}]", utc(i)))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {}{deployed}: {}{incident}\n",
            utc(t.at_ms),
            t.reason
        ));
    }
    if r.trips.len() > SHOWN_TRIPS {
        out.push_str(&format!(
            "    … and {} more (`--format json` lists every trip)\n",
            r.trips.len() - SHOWN_TRIPS
        ));
    }
    for c in &r.incidents {
        match (c.tripped_ms, c.after_ms) {
            (Some(at), Some(after)) => out.push_str(&format!(
                "  incident {}: caught at {}, {} after it began\n",
                utc(c.incident_ms),
                utc(at),
                Duration::from_millis(u64::try_from(after).unwrap_or(0))
            )),
            _ => out.push_str(&format!(
                "  incident {}: NOT caught within the window\n",
                utc(c.incident_ms)
            )),
        }
    }
    out
}

fn conditions(c: &Criterion) -> String {
    let mut parts = Vec::new();
    if let Some(f) = c.fails_if {
        parts.push(format!("fails_if {f}"));
    }
    if let Some(p) = c.passes_if {
        parts.push(format!("passes_if {p}"));
    }
    parts.push(format!("trips_after {}", c.trips_after));
    parts.join(", ")
}

type Suggested = Option<Result<Suggestion, NoSuggestion>>;

/// The suggestions as a YAML patch of `criteria.rollback_when`, each number with the figures
/// behind it in comments.
fn patch(
    reports: &[(&Criterion, Report, Suggested)],
    max_false: usize,
    from_ms: i64,
    to_ms: i64,
) -> String {
    let mut out = format!(
        "\n# Suggested by `backout criteria backtest --suggest` on {} .. {}:\n# at most {max_false} \
         trip(s) outside the given incidents, every incident caught.\ncriteria:\n  rollback_when:\n",
        utc(from_ms),
        utc(to_ms)
    );
    for (criterion, before, suggested) in reports {
        out.push_str(&format!("    - id: {}\n", criterion.id));
        match suggested {
            Some(Ok(s)) => {
                let was = criterion
                    .fails_if
                    .map_or("none".to_string(), |f| format!("\"{f}\""));
                out.push_str(&format!(
                    "      fails_if: \"{}\"   # was {was}: {} trip(s), {} outside incidents; now {} trip(s), {} outside\n",
                    s.fails_if,
                    before.trips.len(),
                    before.false_trips,
                    s.report.trips.len(),
                    s.report.false_trips
                ));
                out.push_str(&format!(
                    "      # any threshold from {} to {} (exclusive) would have done the same; signal p50 {} p95 {} p99 {} max {}\n",
                    number(s.range.0),
                    number(s.range.1),
                    s.report.signal.as_ref().map_or("-".into(), |x| number(x.p50)),
                    s.report.signal.as_ref().map_or("-".into(), |x| number(x.p95)),
                    s.report.signal.as_ref().map_or("-".into(), |x| number(x.p99)),
                    s.report.signal.as_ref().map_or("-".into(), |x| number(x.max)),
                ));
                out.push_str(&format!(
                    "      trips_after: {}   # was {}\n",
                    s.trips_after, criterion.trips_after
                ));
                if s.drops_passes_if {
                    out.push_str(
                        "      # passes_if: removed, it would contradict the new fails_if\n",
                    );
                }
                for c in &s.report.incidents {
                    if let Some(after) = c.after_ms {
                        out.push_str(&format!(
                            "      # incident {}: caught {} after it began\n",
                            utc(c.incident_ms),
                            Duration::from_millis(u64::try_from(after).unwrap_or(0))
                        ));
                    }
                }
            }
            Some(Err(no)) => out.push_str(&format!("      # no suggestion: {}\n", no.reason)),
            None if criterion.baseline.is_some() => out.push_str(
                "      # no suggestion: suggestions are absolute thresholds; this criterion compares with its baseline\n",
            ),
            None => {}
        }
    }
    out
}

fn json_of(
    criterion: &Criterion,
    r: &Report,
    suggested: Option<&Result<Suggestion, NoSuggestion>>,
) -> serde_json::Value {
    let trips: Vec<serde_json::Value> = r
        .trips
        .iter()
        .map(|t| {
            serde_json::json!({
                "at": utc(t.at_ms),
                "deployed": t.deployed_ms.map(utc),
                "value": t.value,
                "reason": t.reason,
                "incident": t.incident_ms.map(utc),
            })
        })
        .collect();
    let incidents: Vec<serde_json::Value> = r
        .incidents
        .iter()
        .map(|c| {
            serde_json::json!({
                "at": utc(c.incident_ms),
                "caught": c.tripped_ms.is_some(),
                "tripped_at": c.tripped_ms.map(utc),
                "after_seconds": c.after_ms.map(|ms| ms / 1000),
            })
        })
        .collect();
    serde_json::json!({
        "id": criterion.id,
        "every": criterion.every.to_string(),
        "measurements": r.measurements,
        "failing": r.failing,
        "passing": r.passing,
        "inconclusive": r.inconclusive,
        "no_data": r.no_data,
        "inconclusive_fraction": r.inconclusive_fraction(),
        "no_data_fraction": r.no_data_fraction(),
        "signal": r.signal,
        "trips": trips,
        "false_trips": r.false_trips,
        "incidents": incidents,
        "suggestion": suggested.map(|s| match s {
            Ok(s) => serde_json::json!({
                "fails_if": s.fails_if.to_string(),
                "trips_after": s.trips_after,
                "range": [s.range.0, s.range.1],
                "drops_passes_if": s.drops_passes_if,
                "trips": s.report.trips.len(),
                "false_trips": s.report.false_trips,
                "incidents_caught": s.report.incidents.iter().filter(|c| c.tripped_ms.is_some()).count(),
                "caught_after_seconds": s.report.incidents.iter().map(|c| c.after_ms.map(|ms| ms / 1000)).collect::<Vec<_>>(),
            }),
            Err(no) => serde_json::json!({ "none": no.reason }),
        }),
    })
}
