//! Steps judged by a rollback criterion: `wait: { until: <criterion> }` measures it at its
//! cadence until a measurement passes (or the wait's timeout), and `verify: { criterion }` /
//! `verify: { prometheus }` measure once. The sources and conditions are the release's own
//! (`criteria::sources`, `criteria::classify`); errors and no data are never a pass.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backout_model::Condition;
use backout_model::plan::{Criterion, NoData, OnError, Source, Sources};

use super::{Invocation, Outcome, StepRunner};
use crate::criteria::{Measured, classify, sources};

/// Measures one criterion, once or until it passes.
pub struct CriterionRunner {
    criterion: Criterion,
    sources: Sources,
    /// Keep measuring (at the criterion's `every`) until a measurement passes.
    until: Option<Option<Duration>>,
}

impl CriterionRunner {
    /// `wait: { until, timeout }`: measured until passing, within `timeout` (and the step's).
    pub fn wait(criterion: Criterion, sources: Sources, timeout: Option<Duration>) -> Self {
        CriterionRunner {
            criterion,
            sources,
            until: Some(timeout),
        }
    }

    /// `verify: { criterion }`: one measurement.
    pub fn once(criterion: Criterion, sources: Sources) -> Self {
        CriterionRunner {
            criterion,
            sources,
            until: None,
        }
    }

    /// `verify: { prometheus: QUERY, fails_if/passes_if }`: one instant query, judged by the
    /// verify's conditions like a criterion with the defaults.
    pub fn query(
        query: String,
        fails_if: Option<Condition>,
        passes_if: Option<Condition>,
        sources: Sources,
    ) -> Self {
        let criterion = Criterion {
            id: "verify".into(),
            title: None,
            description: None,
            source: Source::Prometheus(query),
            fails_if,
            passes_if,
            every: backout_model::Duration::from_secs(60),
            delay: backout_model::Duration::from_secs(0),
            trips_after: 1,
            no_data: NoData::Inconclusive,
            errors_after: 1,
            on_error: OnError::Inconclusive,
            automatic: false,
            timeout: backout_model::Duration::from_secs(10),
            shadow: false,
            trips_after_total: None,
            baseline: None,
        };
        CriterionRunner::once(criterion, sources)
    }

    async fn measure(&self, inv: &Invocation) -> (Measured, String) {
        let observation =
            sources::measure(&self.criterion, &self.sources, Arc::clone(&inv.resolver)).await;
        classify(&self.criterion, &observation)
    }
}

#[async_trait]
impl StepRunner for CriterionRunner {
    async fn run(&self, mut inv: Invocation) -> Outcome {
        let id = &self.criterion.id;
        let Some(timeout) = self.until else {
            let (class, reason) = self.measure(&inv).await;
            return if class == Measured::Passing {
                Outcome {
                    ok: true,
                    detail: format!("{id}: {reason}"),
                    ..Outcome::default()
                }
            } else {
                Outcome::failed(format!("{id} does not pass: {reason}"))
            };
        };
        let started = tokio::time::Instant::now();
        let deadline = match (timeout.map(|t| started + t), inv.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let every = self.criterion.every.0.max(Duration::from_millis(100));
        loop {
            let (class, reason) = self.measure(&inv).await;
            if class == Measured::Passing {
                return Outcome {
                    ok: true,
                    detail: format!(
                        "{id} passes after {}: {reason}",
                        backout_model::Duration::from_millis(
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(0) / 1000 * 1000
                        )
                    ),
                    ..Outcome::default()
                };
            }
            let next = tokio::time::Instant::now() + every;
            if deadline.is_some_and(|d| next > d) {
                return Outcome {
                    timed_out: true,
                    detail: format!("timed out waiting until {id} passes; last: {reason}"),
                    ..Outcome::default()
                };
            }
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                _ = inv.cancel.wait_for(|c| *c) => {
                    return Outcome { cancelled: true, detail: "aborted".into(), ..Outcome::default() };
                }
            }
        }
    }
}
