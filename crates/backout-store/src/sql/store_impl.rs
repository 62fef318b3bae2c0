//! The one [`Store`] implementation of every [`SqlBackend`]: each method hands over to the
//! shared function of the same name (in the file of its record). A blanket impl, so the two
//! backends cannot drift apart in which function a method calls.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Sql, SqlBackend};
use crate::{
    Checkpoint, Counts, Delivery, DeliveryNext, Event, Evidence, EvidenceFilter, Lease, NewAttempt,
    NewEvent, NewRelease, NewRun, NewToken, Release, Run, RunUpdate, StepRecord, Store, StoreError,
    Token,
};

#[async_trait]
impl<B> Store for B
where
    B: SqlBackend,
    for<'c> &'c mut <B::DB as Database>::Connection: Executor<'c, Database = B::DB>,
    <B::DB as Database>::Arguments: IntoArguments<B::DB>,
    for<'r> &'r str: ColumnIndex<<B::DB as Database>::Row>,
    usize: ColumnIndex<<B::DB as Database>::Row>,
    for<'q> i64: Encode<'q, B::DB> + Decode<'q, B::DB> + Type<B::DB>,
    for<'q> i32: Decode<'q, B::DB> + Type<B::DB>,
    for<'q> &'q str: Encode<'q, B::DB> + Type<B::DB>,
    for<'q> Option<&'q str>: Encode<'q, B::DB>,
    for<'q> Option<i64>: Encode<'q, B::DB>,
    for<'q> String: Decode<'q, B::DB> + Type<B::DB>,
    for<'q> &'q [u8]: Encode<'q, B::DB> + Type<B::DB>,
    for<'q> Vec<u8>: Decode<'q, B::DB> + Type<B::DB>,
{
    async fn create_run(&self, run: &NewRun, event: &NewEvent) -> Result<Event, StoreError> {
        Sql::create_run(self, run, event).await
    }

    async fn update_run(&self, update: &RunUpdate, event: &NewEvent) -> Result<Event, StoreError> {
        Sql::update_run(self, update, event).await
    }

    async fn record_steps(
        &self,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError> {
        Sql::record_steps(self, batch).await
    }

    async fn record_process(
        &self,
        step: &StepRecord,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::record_process(self, step, event).await
    }

    async fn append_event(&self, event: &NewEvent) -> Result<Event, StoreError> {
        Sql::append_events(self, std::slice::from_ref(event))
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("an appended event returned nothing"))
    }

    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError> {
        Sql::append_events(self, events).await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run, StoreError> {
        Sql::get_run(self, run_id).await
    }

    async fn list_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        Sql::list_runs(self, limit).await
    }

    async fn list_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        Sql::list_steps(self, run_id).await
    }

    async fn run_events(
        &self,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        Sql::run_events(self, run_id, after_seq, limit).await
    }

    async fn events(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        Sql::events(self, after_seq, limit).await
    }

    async fn events_of_kinds(
        &self,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        Sql::events_of_kinds(self, after_seq, kinds, limit).await
    }

    async fn last_event(&self) -> Result<Option<Event>, StoreError> {
        Sql::last_event(self).await
    }

    async fn create_release(
        &self,
        release: &NewRelease,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::create_release(self, release, event).await
    }

    async fn get_release(&self, release_id: &str) -> Result<Release, StoreError> {
        Sql::get_release(self, release_id).await
    }

    async fn release_events(
        &self,
        release_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        Sql::release_events(self, release_id, after_seq, limit).await
    }

    async fn release_events_of_kinds(
        &self,
        release_id: &str,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        Sql::release_events_of_kinds(self, release_id, after_seq, kinds, limit).await
    }

    async fn last_release_event(
        &self,
        release_id: &str,
        kind: &str,
    ) -> Result<Option<Event>, StoreError> {
        Sql::last_release_event(self, release_id, kind).await
    }

    async fn counts(&self, close_reason_prefixes: &[&str]) -> Result<Counts, StoreError> {
        Sql::counts(self, close_reason_prefixes).await
    }

    async fn list_releases(&self, limit: u32) -> Result<Vec<Release>, StoreError> {
        Sql::list_releases(self, limit).await
    }

    async fn open_releases(&self) -> Result<Vec<Release>, StoreError> {
        Sql::open_releases(self).await
    }

    async fn record_checkpoint(
        &self,
        release_id: &str,
        checkpoint: &Checkpoint,
        close: Option<&str>,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::record_checkpoint(self, release_id, checkpoint, close, event).await
    }

    async fn close_release(
        &self,
        release_id: &str,
        at_ms: i64,
        reason: &str,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::close_release(self, release_id, at_ms, reason, event).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        Sql::acquire_lease(self, name, owner, now_ms, ttl_ms).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        Sql::renew_lease(self, lease, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        Sql::release_lease(self, lease).await
    }

    async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        Sql::leases(self, prefix).await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        Sql::due_deliveries(self, now_ms, limit).await
    }

    async fn claim_deliveries(
        &self,
        claimant: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        Sql::claim_deliveries(self, claimant, now_ms, lease_ms, limit).await
    }

    async fn record_delivery_attempt(
        &self,
        id: u64,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<Delivery, StoreError> {
        Sql::record_delivery_attempt(self, id, attempt, next).await
    }

    async fn get_delivery(&self, id: u64) -> Result<Delivery, StoreError> {
        Sql::get_delivery(self, id).await
    }

    async fn list_deliveries(
        &self,
        release_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        Sql::list_deliveries(self, release_id, limit).await
    }

    async fn record_evidence(
        &self,
        evidence: &Evidence,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::record_evidence(self, evidence, event).await
    }

    async fn get_evidence(&self, id: &str) -> Result<Evidence, StoreError> {
        Sql::get_evidence(self, id).await
    }

    async fn evidence_of_run(&self, run_id: &str) -> Result<Option<Evidence>, StoreError> {
        Sql::evidence_of_run(self, run_id).await
    }

    async fn list_evidence(
        &self,
        filter: &EvidenceFilter,
        limit: u32,
    ) -> Result<Vec<Evidence>, StoreError> {
        Sql::list_evidence(self, filter, limit).await
    }

    async fn create_token(&self, token: &NewToken, event: &NewEvent) -> Result<Event, StoreError> {
        Sql::create_token(self, token, event).await
    }

    async fn get_token(&self, id: &str) -> Result<Token, StoreError> {
        Sql::get_token(self, id).await
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        Sql::list_tokens(self).await
    }

    async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        at_ms: i64,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        Sql::revoke_token(self, id, actor, at_ms, event).await
    }
}
