//! Release commands: `start` opens a release and its window, `checkpoint` records the forward
//! deployment's milestones, and `status REL` shows the window and checkpoints.

use backout_core::release::{self, StartRelease};
use backout_model::Duration;
use backout_store::{Release, ReleaseState};

use super::runs::{actor, json, now, open_store, runtime};
use crate::cli::{CheckArgs, CheckpointArgs, Global, LintFormat, RequestArgs, StartArgs};
use crate::exit_codes::{CommandError, ExitCode};
use crate::output;

pub fn start(args: &StartArgs, global: &Global) -> Result<ExitCode, CommandError> {
    let source = super::read_plan(&args.plan).map_err(CommandError::usage)?;
    let linted = backout_model::lint(&source);
    if linted.plan.is_none() {
        return Err(CommandError::usage(format!(
            "`{}` has {} error(s); run `backout lint {}` and fix them first",
            args.plan.display(),
            linted.errors(),
            args.plan.display()
        )));
    }
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let request = StartRelease {
            source: &source,
            version: args.version.as_deref(),
            rollback_to: args.rollback_to.as_deref(),
            actor: &actor(global),
            at_ms: now(),
        };
        let release = release::start(store.as_ref(), &request).await?;
        eprintln!(
            "release {} of {} {} (rolls back to {}): window {}",
            release.id,
            release.service,
            release.version,
            release.rollback_to,
            match release.closes_at_ms {
                Some(t) => format!("open until {}", utc(t)),
                None => "not applicable (a rollback is possible at any time)".into(),
            }
        );
        // The id alone on standard output, for scripts: REL=$(backout start …).
        output::out(&format!("{}\n", release.id));
        Ok(ExitCode::Ok)
    })
}

pub fn request(args: &RequestArgs, global: &Global) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let release = release::request(
            store.as_ref(),
            &args.release,
            &args.reason,
            &actor(global),
            now(),
        )
        .await?;
        eprintln!(
            "release {}: rollback requested by {} ({}); the verdict is now rollback_required",
            release.id,
            actor(global),
            args.reason
        );
        Ok(ExitCode::Ok)
    })
}

pub fn checkpoint(args: &CheckpointArgs, global: &Global) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let release = release::checkpoint(store.as_ref(), &args.release, &args.name, &actor(global), now()).await?;
        match (&release.state, &release.close_reason) {
            (ReleaseState::Closed, Some(reason)) => {
                eprintln!("release {}: checkpoint `{}` recorded; the rollback window is now closed ({reason})", release.id, args.name)
            }
            _ => eprintln!("release {}: checkpoint `{}` recorded", release.id, args.name),
        }
        Ok(ExitCode::Ok)
    })
}

pub fn check(args: &CheckArgs, global: &Global) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let resolver = std::sync::Arc::new(backout_core::env::Resolver::from_env());
        let report = release::check(
            store.as_ref(),
            &args.release,
            resolver,
            &actor(global),
            now(),
            false,
        )
        .await?;
        print_report(&report, args.format, false)?;
        Ok(exit_for(report.verdict))
    })
}

/// Watches a release: measures each criterion at its cadence until the verdict needs action
/// (exit 3 rollback required, 4 inconclusive) or the window closes (exit 0).
pub fn watch(args: &CheckArgs, global: &Global) -> Result<ExitCode, CommandError> {
    use backout_core::criteria::Verdict;
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let resolver = std::sync::Arc::new(backout_core::env::Resolver::from_env());
        let release = store.get_release(&args.release).await?;
        let Some(plan) = backout_model::lint(&release.plan_source).plan else {
            return Err(CommandError::internal(
                "the plan stored with the release no longer lints",
            ));
        };
        loop {
            let report = release::check(
                store.as_ref(),
                &args.release,
                resolver.clone(),
                &actor(global),
                now(),
                true,
            )
            .await?;
            print_report(&report, args.format, true)?;
            match report.verdict {
                Verdict::RollbackRequired
                | Verdict::Inconclusive
                | Verdict::Success
                | Verdict::Closed => {
                    return Ok(exit_for(report.verdict));
                }
                Verdict::Healthy => {}
            }
            let release = store.get_release(&args.release).await?;
            let next = release::next_due_ms(&release, &plan, &report).unwrap_or(now() + 60_000);
            let wait = u64::try_from(next - now()).unwrap_or(0).clamp(200, 60_000);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
    })
}

fn exit_for(verdict: backout_core::criteria::Verdict) -> ExitCode {
    use backout_core::criteria::Verdict;
    match verdict {
        Verdict::RollbackRequired => ExitCode::RollbackRequired,
        Verdict::Inconclusive => ExitCode::Inconclusive,
        Verdict::Success | Verdict::Healthy => ExitCode::Ok,
        // A closed window refuses rollbacks: say so in the exit code too.
        Verdict::Closed => ExitCode::Refused,
    }
}

/// Prints a check report; `only_measured` prints just the criteria measured in this round (watch).
fn print_report(
    report: &release::CheckReport,
    format: LintFormat,
    only_measured: bool,
) -> Result<(), CommandError> {
    use backout_core::criteria::CriterionStatus;
    if format == LintFormat::Json {
        output::out(&format!(
            "{}\n",
            serde_json::to_string(report).map_err(|e| CommandError::internal(e.to_string()))?
        ));
        return Ok(());
    }
    {
        {
            for c in report
                .criteria
                .iter()
                .filter(|c| c.measured || !only_measured)
            {
                let status = match c.state.status {
                    CriterionStatus::Pending => "pending",
                    CriterionStatus::Passing => "passing",
                    CriterionStatus::Failing => "failing",
                    CriterionStatus::Inconclusive => "inconclusive",
                    CriterionStatus::Tripped => "TRIPPED",
                };
                let count = if c.state.consecutive_failures > 0 {
                    format!(" ({} failing in a row)", c.state.consecutive_failures)
                } else {
                    String::new()
                };
                let reason = c
                    .state
                    .last_reason
                    .as_deref()
                    .unwrap_or("no measurement yet");
                let stale = if c.measured {
                    ""
                } else {
                    " [not measured now]"
                };
                output::out(&format!(
                    "{:<14} {:<24} {reason}{count}{stale}\n",
                    status, c.id
                ));
            }
            let verdict = serde_json::to_value(report.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            output::out(&format!("verdict: {verdict}\n"));
        }
    }
    Ok(())
}

/// `status rel-…`: window, checkpoints and the plan guarding the release.
pub fn status(
    release_id: &str,
    format: LintFormat,
    global: &Global,
) -> Result<ExitCode, CommandError> {
    runtime()?.block_on(async {
        let store = open_store(global).await?;
        let release = store.get_release(release_id).await?;
        if format == LintFormat::Json {
            let mut value = serde_json::to_value(&release)
                .map_err(|e| CommandError::internal(e.to_string()))?;
            if let Some(map) = value.as_object_mut() {
                map.remove("plan_source");
                map.insert("window_closed".into(), release.window_closed(now()).into());
            }
            output::out(&format!("{}\n", json(&value)?));
        } else {
            output::out(&describe(&release, now()));
        }
        Ok(ExitCode::Ok)
    })
}

/// One line per release for `status` without arguments.
pub fn line(release: &Release, now_ms: i64) -> String {
    let window = if release.window_closed(now_ms) {
        "closed"
    } else {
        "open"
    };
    format!(
        "{}  {:<10} {:<10} {} {} → {}  by {}\n",
        release.id,
        window,
        "release",
        release.service,
        release.version,
        release.rollback_to,
        release.actor
    )
}

fn describe(release: &Release, now_ms: i64) -> String {
    let plan = backout_model::lint(&release.plan_source).plan;
    let mut out = format!(
        "release {}  {} {} → {} ({})\n",
        release.id, release.service, release.version, release.rollback_to, release.environment
    );
    out.push_str(&format!(
        "  started by {} at {}, plan hash {}\n",
        release.actor,
        utc(release.opened_at_ms),
        short(&release.plan_hash)
    ));
    let window = match (release.state, release.closes_at_ms) {
        (ReleaseState::Closed, _) => format!(
            "closed at {}: {}",
            release.closed_at_ms.map_or("?".into(), utc),
            release.close_reason.as_deref().unwrap_or("closed")
        ),
        (ReleaseState::Open, Some(t)) if now_ms >= t => {
            format!("closed at {} (its time ran out)", utc(t))
        }
        (ReleaseState::Open, Some(t)) => format!(
            "open until {} ({} left)",
            utc(t),
            Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0) / 1000 * 1000)
        ),
        (ReleaseState::Open, None) => "not applicable: a rollback is possible at any time".into(),
    };
    out.push_str(&format!("  window: {window}\n"));
    if let Some(plan) = &plan {
        let no_return = plan
            .window
            .given()
            .and_then(|w| w.closes_at_checkpoint.clone());
        let declared = &plan.release.checkpoints;
        if !declared.is_empty() {
            out.push_str("  checkpoints:\n");
            for name in declared {
                let mark = if no_return.as_deref() == Some(name) {
                    "  (point of no return)"
                } else {
                    ""
                };
                match release.checkpoints.iter().find(|c| &c.name == name) {
                    Some(c) => out.push_str(&format!(
                        "    ✓ {name} at {} by {}{mark}\n",
                        utc(c.at_ms),
                        c.actor
                    )),
                    None => out.push_str(&format!("    · {name}{mark}\n")),
                }
            }
        }
        if let Some(criteria) = plan.criteria.given() {
            let ids: Vec<&str> = criteria
                .rollback_when
                .iter()
                .map(|c| c.id.as_str())
                .collect();
            out.push_str(&format!(
                "  criteria: {} (measure them with `backout check {}`)\n",
                ids.join(", "),
                release.id
            ));
        }
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// RFC 3339 in UTC, to the second: `2026-11-26T18:04:05Z`.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_716_245_000), "2026-11-26T18:04:05Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
