//! `/healthz` and `/metrics` (Prometheus text format), both without authentication: they say
//! how much there is, never what it is.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backout_core::criteria::Verdict;
use backout_core::release::decide::{self, Outcome};
use backout_store::{DeliveryState, RunState, Store, StoreError};
use tokio::sync::Mutex;

use crate::errors::ApiError;
use crate::state::AppState;

/// How long a rendered answer is reused: scrapes from several Prometheus replicas, or a
/// dashboard refreshing, cost one read of the store.
const FRESH: Duration = Duration::from_secs(2);
/// Journal events read per query when tallying step durations.
const PAGE: u32 = 5_000;
/// Upper bounds (seconds) of the step-duration histogram's buckets.
const BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// What `/metrics` keeps between scrapes: the step durations tallied from the journal so far
/// (read incrementally: each scrape reads only the events since the last one) and the last
/// answer. One per server (a layer of the router). Cheap to clone.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Tally>>,
}

#[derive(Default)]
struct Tally {
    /// The journal is tallied up to this `seq`.
    after_seq: u64,
    /// When each step attempt in flight started: (run, step) → ms.
    started: HashMap<(String, String), i64>,
    /// Step durations by outcome (`succeeded`, `failed`, `aborted`).
    durations: BTreeMap<&'static str, Histogram>,
    answer: Option<(Instant, String)>,
    /// Each open release's decisions, replayed incrementally: release → (the last `seq` read of
    /// its journal, its plan's quorum, the decisions so far).
    decisions: HashMap<String, (u64, u32, decide::Decisions)>,
}

#[derive(Default)]
struct Histogram {
    /// Count per bucket of [`BUCKETS`] (not cumulative), then the count above the last.
    counts: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len() + 1];
        }
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

impl Tally {
    /// Reads the step events appended since the last scrape.
    async fn catch_up(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        // A manual step starts waiting for a person and ends confirmed: its duration is the
        // person's, which is what the plan's `expected` promised too.
        const KINDS: &[&str] = &[
            "step_started",
            "manual_step_waiting",
            "step_succeeded",
            "step_confirmed",
            "step_failed",
            "step_aborted",
        ];
        loop {
            let page = store.events_of_kinds(self.after_seq, KINDS, PAGE).await?;
            for event in &page {
                self.after_seq = event.seq;
                let (Some(run), Some(step)) = (&event.run_id, &event.step_id) else {
                    continue;
                };
                let key = (run.clone(), step.clone());
                let outcome = match event.kind.as_str() {
                    "step_started" | "manual_step_waiting" => {
                        self.started.insert(key, event.at_ms);
                        continue;
                    }
                    "step_succeeded" | "step_confirmed" => "succeeded",
                    "step_failed" => "failed",
                    _ => "aborted",
                };
                if let Some(started) = self.started.remove(&key) {
                    let seconds = (event.at_ms - started).max(0) as f64 / 1000.0;
                    self.durations.entry(outcome).or_default().observe(seconds);
                }
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }
}

/// `GET /healthz`: whether the server and its store answer.
///
/// 200 when the store answers, 503 when it does not. No token needed.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "server",
    responses(
        (status = 200, description = "The store answers.", body = backout_api::Health),
        (status = 503, description = "The store does not answer.", body = backout_api::ErrorBody),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.last_event().await {
        Ok(last) => Json(backout_api::Health {
            status: "ok".into(),
            events: last.map_or(0, |e| e.seq),
        })
        .into_response(),
        Err(error) => {
            tracing::error!(%error, "health check: the store does not answer");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store does not answer",
            )
            .into_response()
        }
    }
}

/// `GET /metrics`: counts and step durations in the Prometheus text format.
///
/// No token needed: it says how much there is, never what it is.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "server",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String),
        (status = "default", description = "A failure.", body = backout_api::ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    Extension(recorder): Extension<Recorder>,
) -> Result<Response, ApiError> {
    let mut tally = recorder.inner.lock().await;
    let text = match &tally.answer {
        Some((at, text)) if at.elapsed() < FRESH => text.clone(),
        _ => {
            tally.catch_up(state.store.as_ref()).await?;
            let mut text = counts(&state, &mut tally).await?;
            durations(&mut text, &tally.durations);
            tally.answer = Some((Instant::now(), text.clone()));
            text
        }
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The step-duration histograms, in the Prometheus text format.
fn durations(text: &mut String, durations: &BTreeMap<&'static str, Histogram>) {
    let name = "backout_step_duration_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} How long step attempts took, by outcome, since the store began."
    );
    let _ = writeln!(text, "# TYPE {name} histogram");
    for outcome in ["succeeded", "failed", "aborted"] {
        let empty = Histogram::default();
        let histogram = durations.get(outcome).unwrap_or(&empty);
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += histogram.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                text,
                "{name}_bucket{{outcome=\"{outcome}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            text,
            "{name}_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            text,
            "{name}_sum{{outcome=\"{outcome}\"}} {}",
            histogram.sum_seconds
        );
        let _ = writeln!(
            text,
            "{name}_count{{outcome=\"{outcome}\"}} {}",
            histogram.count
        );
    }
}

/// Open releases, verdicts, runs and deliveries by state: count queries of the store, so a
/// scrape costs the same with 10 or 100,000 runs behind it. Only the open releases (few, and
/// not history) replay their decisions, to tell `open` from `rolling_back`/`rollback_failed`.
async fn counts(state: &AppState, tally: &mut Tally) -> Result<String, ApiError> {
    let prefixes: Vec<&str> = Outcome::CLOSED_BY_REASON.iter().map(|(p, _)| *p).collect();
    let stored = state.store.counts(&prefixes).await?;
    let open = stored.open_releases;
    let mut outcomes: BTreeMap<&'static str, u64> =
        Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
    let mut by_reason = 0;
    for ((_, outcome), n) in Outcome::CLOSED_BY_REASON
        .iter()
        .zip(&stored.closed_by_reason)
    {
        *outcomes.entry(outcome.as_str()).or_default() += n;
        by_reason += n;
    }
    *outcomes.entry(Outcome::Closed.as_str()).or_default() +=
        stored.closed_releases.saturating_sub(by_reason);
    let open_releases = state.store.open_releases().await?;
    tally
        .decisions
        .retain(|id, _| open_releases.iter().any(|r| &r.id == id));
    for release in &open_releases {
        let outcome = match catch_up_decisions(state.store.as_ref(), tally, release).await {
            Ok(decisions) => Outcome::of(release, decisions),
            Err(_) => Outcome::Open,
        };
        *outcomes.entry(outcome.as_str()).or_default() += 1;
    }
    let mut verdicts: BTreeMap<&'static str, usize> = [
        Verdict::RollbackRequired,
        Verdict::Inconclusive,
        Verdict::Degrading,
        Verdict::Success,
        Verdict::Healthy,
        Verdict::Closed,
    ]
    .into_iter()
    .map(|v| (v.as_str(), 0))
    .collect();
    for verdict in state.verdicts().values() {
        *verdicts.entry(verdict.as_str()).or_default() += 1;
    }
    let runs: BTreeMap<&'static str, u64> = RunState::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                stored.runs.get(s.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let deliveries: BTreeMap<&'static str, u64> = DeliveryState::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                stored.deliveries.get(s.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    let failed = deliveries
        .get(DeliveryState::Failed.as_str())
        .copied()
        .unwrap_or(0);

    let mut text = String::new();
    gauge(
        &mut text,
        "backout_open_releases",
        "Releases whose rollback window is open.",
    );
    let _ = writeln!(text, "backout_open_releases {open}");
    gauge(
        &mut text,
        "backout_releases",
        "Releases by outcome (open, rolling_back, rolled_back, rollback_unverified, rollback_failed, succeeded, closed).",
    );
    for (outcome, n) in &outcomes {
        let _ = writeln!(text, "backout_releases{{state=\"{outcome}\"}} {n}");
    }
    gauge(
        &mut text,
        "backout_release_verdicts",
        "Releases watched by this server, by their current verdict.",
    );
    for (verdict, n) in &verdicts {
        let _ = writeln!(
            text,
            "backout_release_verdicts{{verdict=\"{verdict}\"}} {n}"
        );
    }
    gauge(&mut text, "backout_runs", "Runs by state.");
    for (state, n) in &runs {
        let _ = writeln!(text, "backout_runs{{state=\"{state}\"}} {n}");
    }
    gauge(&mut text, "backout_deliveries", "Notifications by state.");
    for (state, n) in &deliveries {
        let _ = writeln!(text, "backout_deliveries{{state=\"{state}\"}} {n}");
    }
    gauge(
        &mut text,
        "backout_delivery_failures",
        "Notifications given up after their retries.",
    );
    let _ = writeln!(text, "backout_delivery_failures {failed}");
    Ok(text)
}

/// The decisions of an open release, read from its journal since the last scrape only (the
/// first scrape of a server replays the whole journal once).
async fn catch_up_decisions<'a>(
    store: &dyn Store,
    tally: &'a mut Tally,
    release: &backout_store::Release,
) -> Result<&'a decide::Decisions, StoreError> {
    let entry = match tally.decisions.entry(release.id.clone()) {
        std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::hash_map::Entry::Vacant(entry) => {
            let quorum = backout_model::lint(&release.plan_source)
                .plan
                .as_ref()
                .map_or(1, decide::quorum_of);
            entry.insert((0, quorum, decide::Decisions::default()))
        }
    };
    let (after, quorum, decisions) = entry;
    loop {
        let page = store.release_events(&release.id, *after, PAGE).await?;
        for event in &page {
            decisions.apply(event, *quorum);
            *after = event.seq;
        }
        if page.len() < PAGE as usize {
            return Ok(decisions);
        }
    }
}

fn gauge(text: &mut String, name: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} gauge");
}
