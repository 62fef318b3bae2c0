//! [`Feed`]: a [`Store`] decorator that tells subscribers, as soon as a write commits, that the
//! journal grew, so live tails wake at once instead of polling.
//!
//! The feed publishes the highest `seq` it knows of on a `tokio::sync::watch` channel. Writes
//! made through the decorator publish themselves; a backend that can hear other processes'
//! writes (PostgreSQL's LISTEN/NOTIFY) publishes into the same sender ([`Feed::sender`]). The
//! value only ever grows. A subscriber must treat a change as "read the store now", never as
//! the event itself: values may be skipped (watch keeps the latest only) and a write made by a
//! process nobody listens to is not announced at all, so readers keep a slow fallback poll.
//!
//! The decorator changes no behaviour of the store it wraps: every method, including those the
//! trait gives a default body, is forwarded, so a backend's own implementation still runs.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::delivery::{Delivery, DeliveryNext, NewAttempt};
use crate::errors::StoreError;
use crate::event::{Event, NewEvent};
use crate::evidence::{Evidence, EvidenceFilter};
use crate::lease::Lease;
use crate::release::{Checkpoint, NewRelease, Release};
use crate::run::{NewRun, Run, RunUpdate};
use crate::step::StepRecord;
use crate::store::Store;
use crate::token::{NewToken, Token};

/// A [`Store`] that announces the journal's new end after every successful write.
pub struct Feed {
    inner: Arc<dyn Store>,
    sender: watch::Sender<u64>,
}

impl Feed {
    /// Wraps `inner` with a channel of its own, starting at 0 ("nothing announced yet").
    pub fn new(inner: Arc<dyn Store>) -> Feed {
        Feed::with_sender(inner, watch::Sender::new(0))
    }

    /// Wraps `inner`, publishing into `sender`: share one sender between the decorator and a
    /// listener of other processes' writes, so subscribers wake for both.
    pub fn with_sender(inner: Arc<dyn Store>, sender: watch::Sender<u64>) -> Feed {
        Feed { inner, sender }
    }

    /// A receiver that changes whenever the journal is known to have grown; its value is the
    /// highest `seq` announced so far.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }

    /// The sender this feed publishes into (for a listener of other processes' writes).
    pub fn sender(&self) -> watch::Sender<u64> {
        self.sender.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn publish_seq(&self, seq: u64) {
        announce(&self.sender, seq);
    }

    fn published<T>(
        &self,
        written: Result<T, StoreError>,
        last: impl Fn(&T) -> Option<u64>,
    ) -> Result<T, StoreError> {
        if let Ok(value) = &written
            && let Some(seq) = last(value)
        {
            self.publish_seq(seq);
        }
        written
    }
}

/// Raises the value of `sender` to `seq` (never lowers it) and wakes its receivers when it
/// grew. Lets a listener of another process's writes publish the same way the decorator does.
pub fn announce(sender: &watch::Sender<u64>, seq: u64) {
    sender.send_if_modified(|current| {
        if seq > *current {
            *current = seq;
            true
        } else {
            false
        }
    });
}

fn one(event: &Event) -> Option<u64> {
    Some(event.seq)
}

fn many(events: &[Event]) -> Option<u64> {
    events.iter().map(|event| event.seq).max()
}

#[async_trait]
impl Store for Feed {
    async fn create_run(&self, run: &NewRun, event: &NewEvent) -> Result<Event, StoreError> {
        self.published(self.inner.create_run(run, event).await, one)
    }

    async fn update_run(&self, update: &RunUpdate, event: &NewEvent) -> Result<Event, StoreError> {
        self.published(self.inner.update_run(update, event).await, one)
    }

    async fn record_step(&self, step: &StepRecord, event: &NewEvent) -> Result<Event, StoreError> {
        self.published(self.inner.record_step(step, event).await, one)
    }

    async fn record_process(
        &self,
        step: &StepRecord,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        self.published(self.inner.record_process(step, event).await, one)
    }

    async fn record_steps(
        &self,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        self.published(self.inner.record_steps(batch).await, |e| many(e))
    }

    async fn append_event(&self, event: &NewEvent) -> Result<Event, StoreError> {
        self.published(self.inner.append_event(event).await, one)
    }

    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        self.published(self.inner.append_events(events).await, |e| many(e))
    }

    async fn get_run(&self, run_id: &str) -> Result<Run, StoreError> {
        self.inner.get_run(run_id).await
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        self.inner.list_runs(limit).await
    }

    async fn list_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.list_steps(run_id).await
    }

    async fn run_events(
        &self,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.run_events(run_id, after_seq, limit).await
    }

    async fn events(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.inner.events(after_seq, limit).await
    }

    async fn events_of_kinds(
        &self,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner.events_of_kinds(after_seq, kinds, limit).await
    }

    async fn last_event(&self) -> Result<Option<Event>, StoreError> {
        self.inner.last_event().await
    }

    async fn create_release(
        &self,
        release: &NewRelease,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        self.published(self.inner.create_release(release, event).await, one)
    }

    async fn get_release(&self, release_id: &str) -> Result<Release, StoreError> {
        self.inner.get_release(release_id).await
    }

    async fn release_events(
        &self,
        release_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        self.inner
            .release_events(release_id, after_seq, limit)
            .await
    }

    async fn list_releases(&self, limit: u32) -> Result<Vec<Release>, StoreError> {
        self.inner.list_releases(limit).await
    }

    async fn counts(&self, close_reason_prefixes: &[&str]) -> Result<crate::Counts, StoreError> {
        self.inner.counts(close_reason_prefixes).await
    }

    async fn open_releases(&self) -> Result<Vec<Release>, StoreError> {
        self.inner.open_releases().await
    }

    async fn record_checkpoint(
        &self,
        release_id: &str,
        checkpoint: &Checkpoint,
        close: Option<&str>,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let written = self
            .inner
            .record_checkpoint(release_id, checkpoint, close, event)
            .await;
        self.published(written, one)
    }

    async fn close_release(
        &self,
        release_id: &str,
        at_ms: i64,
        reason: &str,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        let written = self
            .inner
            .close_release(release_id, at_ms, reason, event)
            .await;
        self.published(written, one)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        self.inner.acquire_lease(name, owner, now_ms, ttl_ms).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        self.inner.renew_lease(lease, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release_lease(lease).await
    }

    async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        self.inner.leases(prefix).await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        self.inner.due_deliveries(now_ms, limit).await
    }

    async fn claim_deliveries(
        &self,
        claimant: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner
            .claim_deliveries(claimant, now_ms, lease_ms, limit)
            .await
    }

    async fn record_delivery_attempt(
        &self,
        id: u64,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<Delivery, StoreError> {
        self.inner.record_delivery_attempt(id, attempt, next).await
    }

    async fn get_delivery(&self, id: u64) -> Result<Delivery, StoreError> {
        self.inner.get_delivery(id).await
    }

    async fn list_deliveries(
        &self,
        release_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.list_deliveries(release_id, limit).await
    }

    async fn record_evidence(
        &self,
        evidence: &Evidence,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        self.published(self.inner.record_evidence(evidence, event).await, one)
    }

    async fn get_evidence(&self, id: &str) -> Result<Evidence, StoreError> {
        self.inner.get_evidence(id).await
    }

    async fn evidence_of_run(&self, run_id: &str) -> Result<Option<Evidence>, StoreError> {
        self.inner.evidence_of_run(run_id).await
    }

    async fn list_evidence(
        &self,
        filter: &EvidenceFilter,
        limit: u32,
    ) -> Result<Vec<Evidence>, StoreError> {
        self.inner.list_evidence(filter, limit).await
    }

    async fn create_token(&self, token: &NewToken, event: &NewEvent) -> Result<Event, StoreError> {
        self.published(self.inner.create_token(token, event).await, one)
    }

    async fn get_token(&self, id: &str) -> Result<Token, StoreError> {
        self.inner.get_token(id).await
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.inner.list_tokens().await
    }

    async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        at_ms: i64,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        self.published(self.inner.revoke_token(id, actor, at_ms, event).await, one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcing_only_raises_the_value_and_wakes_only_when_it_grew() {
        let sender = watch::Sender::new(0);
        let mut receiver = sender.subscribe();
        announce(&sender, 5);
        assert!(receiver.has_changed().unwrap());
        assert_eq!(*receiver.borrow_and_update(), 5);
        announce(&sender, 3);
        announce(&sender, 5);
        assert!(!receiver.has_changed().unwrap());
        assert_eq!(*receiver.borrow(), 5);
        announce(&sender, 6);
        assert_eq!(*receiver.borrow_and_update(), 6);
    }
}
