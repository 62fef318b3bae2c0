//! The [`Store`] trait every backend implements, and [`verify_store`], which checks a whole stored
//! journal page by page. No backend logic lives here.

use async_trait::async_trait;

use crate::chain::{ChainBreak, ChainSummary, ChainVerifier};
use crate::counts::Counts;
use crate::delivery::{Delivery, DeliveryNext, NewAttempt};
use crate::errors::StoreError;
use crate::event::{Event, NewEvent};
use crate::evidence::{Evidence, EvidenceFilter};
use crate::lease::Lease;
use crate::release::{Checkpoint, NewRelease, Release};
use crate::run::{NewRun, Run, RunUpdate};
use crate::step::StepRecord;
use crate::token::{NewToken, Token};

/// Durable storage of runs, step states and the hash-chained event journal.
///
/// Contract for every backend (checked by [`crate::conformance`]):
/// - Each write method commits its record change **and** its event in one transaction, or
///   neither: after a crash there is never a state without its event, or an event without its
///   state. A failed call appends nothing.
/// - Appends are serialized: `seq` is global, starts at 1, increases by exactly 1 per committed
///   event (failed calls leave no gap), and each event's `prev_hash` is the previous event's hash.
/// - A call that returned `Ok` is durable (it survives `kill -9` and power loss).
/// - Event ids (`run_id`, `step_id`) of the event given with a record are filled in from the
///   record, or must match it ([`NewEvent::bind_to`]); an event naming a run that does not exist
///   fails with [`StoreError::NotFound`].
/// - The deliveries given with an event ([`NewEvent::deliveries`]) are written in the event's
///   transaction: committed with it, or not at all. Each starts `pending`, due at the event's
///   time.
/// - Timestamps are the caller's; the store never reads a clock.
/// - An event carrying a fence ([`NewEvent::fence`]) is written only while the fence's token is
///   its lease's current token, checked in the write's own transaction: otherwise the whole
///   call fails with [`StoreError::Fenced`] and writes nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// Creates `run`, a `pending` step record for each of `run.steps`, and appends `event`.
    /// A run with the same id fails with [`StoreError::Conflict`].
    async fn create_run(&self, run: &NewRun, event: &NewEvent) -> Result<Event, StoreError>;

    /// Changes a run's state (and executor) and appends `event`.
    async fn update_run(&self, update: &RunUpdate, event: &NewEvent) -> Result<Event, StoreError>;

    /// Replaces the record of `step.step_id` in `step.run_id` (creating it if the run has none
    /// yet, e.g. for a contingency step) and appends `event`. The run must exist.
    async fn record_step(&self, step: &StepRecord, event: &NewEvent) -> Result<Event, StoreError> {
        let mut events = self.record_steps(&[(step.clone(), event.clone())]).await?;
        events
            .pop()
            .ok_or_else(|| StoreError::corrupt("a recorded step returned no event"))
    }

    /// Records the process group of a step's attempt (`step_process`) like
    /// [`Store::record_step`], except that its commit need only survive the executor's crash
    /// (`kill -9`), not the machine's: after a power loss or an OS crash no process of the step
    /// is left to find, so a backend may skip the flush to stable storage. Commits stay durable
    /// in order: the next durable commit makes this one durable too.
    async fn record_process(
        &self,
        step: &StepRecord,
        event: &NewEvent,
    ) -> Result<Event, StoreError> {
        self.record_step(step, event).await
    }

    /// Records several step states with their events in ONE transaction: all or nothing, events
    /// in the given order. The executor commits a step's finish together with the starts of the
    /// steps it unblocks, so a chain pays one durable commit per step instead of two.
    async fn record_steps(
        &self,
        batch: &[(StepRecord, NewEvent)],
    ) -> Result<Vec<Event>, StoreError>;

    /// Appends an event that changes no record (a note, a notification, a checkpoint).
    async fn append_event(&self, event: &NewEvent) -> Result<Event, StoreError>;

    /// Appends several events in ONE transaction, in the given order: all or nothing. A watcher
    /// journals a round of measurements of many releases with one durable commit.
    async fn append_events(&self, events: &[NewEvent]) -> Result<Vec<Event>, StoreError>;

    async fn get_run(&self, run_id: &str) -> Result<Run, StoreError>;

    /// The `limit` most recently created runs: by `created_at_ms` descending, then by id
    /// descending (so ids from [`crate::new_run_id`] created in the same millisecond still list
    /// newest first).
    async fn list_runs(&self, limit: u32) -> Result<Vec<Run>, StoreError>;

    /// The step records of a run, in the order they were first recorded (plan order for the
    /// steps given at creation).
    async fn list_steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError>;

    /// Up to `limit` events of a run with `seq > after_seq`, in `seq` order (live tailing).
    async fn run_events(
        &self,
        run_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Up to `limit` events of the whole journal with `seq > after_seq`, in `seq` order
    /// (audit export and verification, page by page).
    async fn events(&self, after_seq: u64, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// Like [`Store::events`], but only events whose kind is one of `kinds` (a watcher tails
    /// checkpoints, requests and decisions without reading back every measurement).
    async fn events_of_kinds(
        &self,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// The event with the highest `seq`, if any.
    async fn last_event(&self) -> Result<Option<Event>, StoreError>;

    /// Creates a release (its window opens) with its event. Conflict if the id exists.
    async fn create_release(
        &self,
        release: &NewRelease,
        event: &NewEvent,
    ) -> Result<Event, StoreError>;

    async fn get_release(&self, release_id: &str) -> Result<Release, StoreError>;

    /// Events of a release after `after_seq`, in order (measurements, checkpoints, verdicts).
    async fn release_events(
        &self,
        release_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Like [`Store::release_events`], but only events whose kind is one of `kinds` (who decided
    /// what reads a release without its measurements). The default filters the release's pages;
    /// backends filter in the database.
    async fn release_events_of_kinds(
        &self,
        release_id: &str,
        after_seq: u64,
        kinds: &[&str],
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        let mut after = after_seq;
        loop {
            let page = self.release_events(release_id, after, 1000).await?;
            let full = page.len() == 1000;
            if let Some(last) = page.last() {
                after = last.seq;
            }
            found.extend(
                page.into_iter()
                    .filter(|e| kinds.contains(&e.kind.as_str())),
            );
            if found.len() >= limit as usize {
                found.truncate(limit as usize);
                return Ok(found);
            }
            if !full {
                return Ok(found);
            }
        }
    }

    /// The newest event of `kind` of a release, if any. Readers that keep a derived state in the
    /// journal (the criteria tracker's snapshots) start from it instead of replaying the whole
    /// release. The default pages through the release; backends answer from their index, reading
    /// backwards from the release's newest event.
    async fn last_release_event(
        &self,
        release_id: &str,
        kind: &str,
    ) -> Result<Option<Event>, StoreError> {
        let mut after = 0;
        let mut found = None;
        loop {
            let page = self.release_events(release_id, after, 1000).await?;
            let full = page.len() == 1000;
            if let Some(last) = page.last() {
                after = last.seq;
            }
            if let Some(event) = page.into_iter().rev().find(|e| e.kind == kind) {
                found = Some(event);
            }
            if !full {
                return Ok(found);
            }
        }
    }

    /// Runs, deliveries and releases by state, and closed releases by each of
    /// `close_reason_prefixes` (a release counts under every prefix its reason starts with),
    /// from count queries: the cost does not grow with what the records hold, and no record is
    /// read into memory.
    async fn counts(&self, close_reason_prefixes: &[&str]) -> Result<Counts, StoreError>;

    /// Releases, newest first.
    async fn list_releases(&self, limit: u32) -> Result<Vec<Release>, StoreError>;

    /// Every release whose window is still recorded as open, oldest first (what a watcher of
    /// all releases picks up when it starts).
    async fn open_releases(&self) -> Result<Vec<Release>, StoreError>;

    /// Records a checkpoint the forward deployment reached, with its event; `close` closes the
    /// window in the same transaction (the point of no return) with that reason. Conflict if
    /// the checkpoint was already recorded; Invalid if the release is closed.
    async fn record_checkpoint(
        &self,
        release_id: &str,
        checkpoint: &Checkpoint,
        close: Option<&str>,
        event: &NewEvent,
    ) -> Result<Event, StoreError>;

    /// Closes a release's window (on time, or early as a success) with its event. Invalid (and
    /// nothing appended) when it is already closed.
    async fn close_release(
        &self,
        release_id: &str,
        at_ms: i64,
        reason: &str,
        event: &NewEvent,
    ) -> Result<Event, StoreError>;

    /// Takes lease `name` for `owner` until `now_ms + ttl_ms` when it is free, released,
    /// expired, or already held by `owner` (then it is renewed, same token). A NEW holder gets
    /// a token strictly greater than every token ever issued for `name` (the fencing token).
    /// `None` when another owner holds it. Atomic: of many concurrent callers, one wins.
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extends a held lease to `now_ms + ttl_ms` (the heartbeat). `None` when it was lost:
    /// another owner took it (its token changed) or it was released.
    async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, StoreError>;

    /// Gives a held lease up at once (graceful shutdown, work done), so another replica may
    /// take it without waiting for the expiry. The token is kept, so the next holder's is
    /// greater. Releasing a lease that was lost does nothing.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Every lease whose name starts with `prefix`, held or not, by name.
    async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError>;

    /// Up to `limit` deliveries a dispatcher could claim at `now_ms` ([`Delivery::claimable`]),
    /// most overdue first. Reads only: a dispatcher polls this and takes the write lock to
    /// claim only when something is due.
    async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<Delivery>, StoreError>;

    /// Claims up to `limit` deliveries claimable at `now_ms` for `claimant` until
    /// `now_ms + lease_ms`, most overdue first, in one write transaction: two dispatchers never
    /// hold the same delivery, and a claim not settled by
    /// [`Store::record_delivery_attempt`] before it expires (its dispatcher died) can be
    /// claimed again. Returns the claimed deliveries.
    async fn claim_deliveries(
        &self,
        claimant: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records one attempt at delivery `id` and what follows it, as [`Delivery::apply`] says;
    /// returns the delivery as now stored. NotFound if there is no such delivery.
    async fn record_delivery_attempt(
        &self,
        id: u64,
        attempt: &NewAttempt,
        next: DeliveryNext,
    ) -> Result<Delivery, StoreError>;

    async fn get_delivery(&self, id: u64) -> Result<Delivery, StoreError>;

    /// The `limit` most recent deliveries (newest first), of one release (its own events and
    /// those of its runs) or of all. NotFound for a release that does not exist.
    async fn list_deliveries(
        &self,
        release_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records the evidence of a successful rehearsal with its event, in one transaction. The
    /// event is bound to the evidence's run ([`NewEvent::bind_to`]). NotFound when the run does
    /// not exist; Conflict when the id exists or the run already has evidence (a resumed
    /// rehearsal that is concluded twice records it once); Invalid when the run is not a
    /// rehearsal that succeeded. Evidence is never changed afterwards.
    async fn record_evidence(
        &self,
        evidence: &Evidence,
        event: &NewEvent,
    ) -> Result<Event, StoreError>;

    async fn get_evidence(&self, id: &str) -> Result<Evidence, StoreError>;

    /// The evidence of a run, if it has any.
    async fn evidence_of_run(&self, run_id: &str) -> Result<Option<Evidence>, StoreError>;

    /// Up to `limit` pieces of evidence matching `filter`, newest first (by `finished_at_ms`,
    /// then id).
    async fn list_evidence(
        &self,
        filter: &EvidenceFilter,
        limit: u32,
    ) -> Result<Vec<Evidence>, StoreError>;

    /// Stores a new API token (only its secret's digest) with its event (`token_created`,
    /// which names the token, user and role, never the digest), in one transaction. Conflict
    /// when the id exists.
    async fn create_token(&self, token: &NewToken, event: &NewEvent) -> Result<Event, StoreError>;

    /// The token with this id, revoked or not. NotFound when there is none.
    async fn get_token(&self, id: &str) -> Result<Token, StoreError>;

    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError>;

    /// Revokes a token at `at_ms` with its event (`token_revoked`), in one transaction.
    /// NotFound when there is no such token; Invalid (and nothing appended) when it is already
    /// revoked.
    async fn revoke_token(
        &self,
        id: &str,
        actor: &str,
        at_ms: i64,
        event: &NewEvent,
    ) -> Result<Event, StoreError>;
}

/// Reads the whole journal of `store` in pages of `page_size` events and verifies its hash chain
/// (`audit verify`). The outer error is a failure to read; the inner one is a broken chain.
pub async fn verify_store(
    store: &dyn Store,
    page_size: u32,
) -> Result<Result<ChainSummary, ChainBreak>, StoreError> {
    let page_size = page_size.max(1);
    let mut verifier = ChainVerifier::new();
    let mut after = 0;
    loop {
        let page = store.events(after, page_size).await?;
        for event in &page {
            if let Err(broken) = verifier.push(event) {
                return Ok(Err(broken));
            }
        }
        match page.last() {
            Some(last) if page.len() as u64 == u64::from(page_size) => after = last.seq,
            _ => return Ok(Ok(verifier.summary())),
        }
    }
}
