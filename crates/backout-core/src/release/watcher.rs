//! The watcher: one process measuring the criteria of many open releases, each at its own
//! cadence, for `backout watch` and the server.
//!
//! - Each release is replayed from its journal once, when it is picked up; after that its
//!   [`Tracker`] is kept in memory, so a round costs the measurements, not the history.
//! - A measurement is due at `last + every` (never before the end of `delay`); the next one is
//!   scheduled when it completes, so a slow source is never measured twice at once. Timers also
//!   fire at the window's closing notice and its close.
//! - Measurements run concurrently (bounded), and their events are journaled in batches: one
//!   durable commit per batch, however many releases it covers.
//! - With leases (`backout serve` replicas on one database), a release is watched only by the
//!   replica holding its lease `release:<id>`: taken when free or expired, renewed every third
//!   of its time to live, and every event journaled for the release carries its fence. A
//!   release whose lease is lost is dropped at once; free ones are picked up at each renewal.
//! - The journal is tailed for what other processes record (checkpoints, requests, closes,
//!   decisions, and, when watching all, new releases), so a `backout request` in another
//!   terminal changes the verdict within a second.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use backout_model::Plan;
use backout_store::{Fence, Lease, NewEvent, Release, Store, StoreError};
use tokio::sync::mpsc;

use super::check::{CheckReport, close, observe, sources_of};
use super::decide::{self, Decisions};
use super::tracker::{TRACKED_KINDS, Tracker};
use crate::clock::Clock;
use crate::criteria::sources::Source;
use crate::criteria::{Observation, Verdict};
use crate::env::Resolver;
use crate::errors::ExecError;
use crate::executor::LeaseSettings;

/// How a watcher runs.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub actor: String,
    /// Watch every open release, picking up new ones as they start (`watch --all`, the server).
    pub all: bool,
    /// Measurements in flight at once, across all releases.
    pub concurrency: usize,
    /// How long finished measurements may wait to be journaled together.
    pub batch_window: Duration,
    /// How often the journal is read for other processes' events.
    pub tail_every: Duration,
    /// Share releases with other watchers through leases (the server's replicas): watch only
    /// the releases whose lease this one holds.
    pub lease: Option<LeaseSettings>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            actor: "backout:watch".into(),
            all: false,
            concurrency: 256,
            batch_window: Duration::from_millis(25),
            tail_every: Duration::from_secs(1),
            lease: None,
        }
    }
}

/// What changed for one release, after its events were journaled.
pub struct Round<'a> {
    pub tracker: &'a Tracker,
    /// Who approved or denied, escalations, executions.
    pub decisions: &'a Decisions,
    /// The criteria measured in this round.
    pub measured: Vec<bool>,
    pub now_ms: i64,
    /// The verdict changed in this round (always true the first time a release is reported).
    pub verdict_changed: bool,
    /// The window was closed in this round.
    pub closed: bool,
}

impl Round<'_> {
    pub fn verdict(&self) -> Verdict {
        self.tracker.verdict(self.now_ms)
    }

    /// The release's full report, with the criteria measured in this round marked.
    pub fn report(&self) -> CheckReport {
        self.tracker.report(&self.measured, self.now_ms)
    }
}

/// A timer that is not a measurement: the window's notice or close, an escalation.
const WINDOW: usize = usize::MAX;

/// What the watcher reads back from the journal: what changes a tracker, and what changes
/// the decisions (escalations journaled by a `decide`, executions started elsewhere).
const TAIL_KINDS: [&str; 11] = [
    TRACKED_KINDS[0],
    TRACKED_KINDS[1],
    TRACKED_KINDS[2],
    TRACKED_KINDS[3],
    TRACKED_KINDS[4],
    TRACKED_KINDS[5],
    TRACKED_KINDS[6],
    "decision_requested",
    "escalated",
    "execution_started",
    "execution_abandoned",
];

struct Watched {
    tracker: Tracker,
    decisions: Decisions,
    sources: Vec<Result<Arc<dyn Source>, String>>,
    /// Criteria measured since the last report.
    measured: Vec<bool>,
    reported: bool,
    /// A round was reported with the window closed.
    closed_reported: bool,
    /// Its lease was lost (another watcher has it) or given up: nothing more is done here.
    dropped: bool,
}

struct Finished {
    release: usize,
    criterion: usize,
    at_ms: i64,
    observation: Observation,
}

/// Watches releases until told to stop.
pub struct Watcher {
    store: Arc<dyn Store>,
    resolver: Arc<Resolver>,
    clock: Arc<dyn Clock>,
    options: WatchOptions,
    watched: Vec<Watched>,
    index: HashMap<String, usize>,
    plans: HashMap<String, Arc<Plan>>,
    due: BinaryHeap<Reverse<(i64, usize, usize)>>,
    tail_seq: u64,
    in_flight: usize,
    /// The leases held, by release id (only with [`WatchOptions::lease`]).
    leases: HashMap<String, Lease>,
}

impl Watcher {
    /// A watcher of `release_ids` (and, with `options.all`, every open release).
    pub async fn new(
        store: Arc<dyn Store>,
        resolver: Arc<Resolver>,
        clock: Arc<dyn Clock>,
        options: WatchOptions,
        release_ids: &[String],
    ) -> Result<Watcher, ExecError> {
        // Read the journal's end first: events after it are tailed, so none falls between.
        let tail_seq = store.last_event().await?.map_or(0, |e| e.seq);
        let mut watcher = Watcher {
            store,
            resolver,
            clock,
            options,
            watched: Vec::new(),
            index: HashMap::new(),
            plans: HashMap::new(),
            due: BinaryHeap::new(),
            tail_seq,
            in_flight: 0,
            leases: HashMap::new(),
        };
        for id in release_ids {
            let release = watcher.store.get_release(id).await?;
            watcher.add(&release).await?;
        }
        if watcher.options.all {
            for release in watcher.store.open_releases().await? {
                watcher.add(&release).await?;
            }
        }
        Ok(watcher)
    }

    /// How many releases are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    async fn add(&mut self, release: &Release) -> Result<(), ExecError> {
        if self.index.contains_key(&release.id) {
            return Ok(());
        }
        if let Some(settings) = &self.options.lease {
            let taken = self
                .store
                .acquire_lease(
                    &release_lease_name(&release.id),
                    &settings.owner,
                    self.clock.now_ms(),
                    ttl_ms(settings),
                )
                .await?;
            match taken {
                Some(lease) => {
                    self.leases.insert(release.id.clone(), lease);
                }
                // Another watcher has it.
                None => return Ok(()),
            }
        }
        let plan = match self.plans.get(&release.plan_hash) {
            Some(plan) => plan.clone(),
            None => {
                let plan = Arc::new(Tracker::plan_of(release)?);
                self.plans.insert(release.plan_hash.clone(), plan.clone());
                plan
            }
        };
        let tracker = Tracker::replay(self.store.as_ref(), release, plan.clone()).await?;
        let decisions =
            Decisions::read(self.store.as_ref(), &release.id, decide::quorum_of(&plan)).await?;
        let sources = sources_of(&tracker, &self.resolver);
        let slot = self.watched.len();
        for i in 0..tracker.criteria().len() {
            self.due.push(Reverse((tracker.due_at(i), slot, i)));
        }
        // Conclude once at once: a window that closed while nobody watched closes now.
        self.due.push(Reverse((self.clock.now_ms(), slot, WINDOW)));
        if let Some(t) = tracker.window_timer_ms() {
            self.due.push(Reverse((t, slot, WINDOW)));
        }
        self.index.insert(release.id.clone(), slot);
        self.watched.push(Watched {
            measured: vec![false; tracker.criteria().len()],
            tracker,
            decisions,
            sources,
            reported: false,
            closed_reported: false,
            dropped: false,
        });
        Ok(())
    }

    /// The heartbeat of the leases: renews each held one, drops the releases whose lease was
    /// lost and gives up those whose window closed and was reported, then (watching all) takes
    /// the open releases whose lease is free or expired.
    async fn keep_leases(&mut self) -> Result<(), ExecError> {
        let Some(settings) = self.options.lease.clone() else {
            return Ok(());
        };
        let ttl = ttl_ms(&settings);
        let held: Vec<(String, Lease)> = self
            .leases
            .iter()
            .map(|(id, lease)| (id.clone(), lease.clone()))
            .collect();
        for (id, lease) in held {
            let done = self
                .index
                .get(&id)
                .is_some_and(|&slot| self.watched[slot].closed_reported);
            if done {
                self.store.release_lease(&lease).await?;
                self.drop_release(&id);
                continue;
            }
            match self
                .store
                .renew_lease(&lease, self.clock.now_ms(), ttl)
                .await
            {
                Ok(Some(renewed)) => {
                    self.leases.insert(id, renewed);
                }
                Ok(None) => self.drop_release(&id),
                // Unreachable past the expiry: another watcher may have it from now on.
                Err(_) if self.clock.now_ms() >= lease.expires_at_ms => self.drop_release(&id),
                Err(_) => {}
            }
        }
        if self.options.all {
            for release in self.store.open_releases().await? {
                self.add(&release).await?;
            }
        }
        Ok(())
    }

    /// Stops watching a release (its lease is another's now, or no longer needed).
    fn drop_release(&mut self, release_id: &str) {
        self.leases.remove(release_id);
        if let Some(slot) = self.index.remove(release_id) {
            self.watched[slot].dropped = true;
        }
    }

    /// Appends `events` in one commit. When the store refuses it because the lease of one of
    /// their releases is another replica's now, that release is no longer watched here and the
    /// others' events are written without it: one lost lease does not stop the watching of
    /// every other release.
    async fn append_fenced(
        &mut self,
        mut events: Vec<NewEvent>,
    ) -> Result<Vec<backout_store::Event>, ExecError> {
        loop {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            match self.store.append_events(&events).await {
                Ok(sealed) => return Ok(sealed),
                Err(StoreError::Fenced { lease, .. }) => {
                    let Some(id) = self.lost(&lease) else {
                        return Err(StoreError::Fenced { lease, token: 0 }.into());
                    };
                    events.retain(|e| e.release_id.as_deref() != Some(id.as_str()));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Stops watching the release of `lease`, which another replica holds now; its id.
    fn lost(&mut self, lease: &str) -> Option<String> {
        let id = lease.strip_prefix("release:")?.to_string();
        if !self.index.contains_key(&id) {
            return None;
        }
        self.drop_release(&id);
        Some(id)
    }

    /// The fence of the events of `release_id`, when releases are shared.
    fn fence_of(&self, release_id: Option<&str>) -> Option<Fence> {
        release_id
            .and_then(|id| self.leases.get(id))
            .map(Lease::fence)
    }

    /// Runs until `on_round` breaks, `stop` completes, or (when not watching all) every
    /// watched window is closed. `on_round` is called for each release whose state changed,
    /// after its events are durable.
    pub async fn run<F>(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
        mut on_round: F,
    ) -> Result<(), ExecError>
    where
        F: FnMut(Round<'_>) -> ControlFlow<()>,
    {
        let (send, mut finished) = mpsc::channel::<Finished>(4096);
        let mut pending: Vec<Finished> = Vec::new();
        let mut timers: BTreeSet<usize> = BTreeSet::new();
        let mut batch_deadline: Option<tokio::time::Instant> = None;
        let mut tail = tokio::time::interval(self.options.tail_every);
        tail.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let beat = self
            .options
            .lease
            .as_ref()
            .map_or(Duration::from_secs(3600), |l| {
                (l.ttl / 3).max(Duration::from_millis(10))
            });
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            // Watching given releases ends once each closed window was reported.
            if !self.options.all && self.watched.iter().all(|w| w.closed_reported || w.dropped) {
                return Ok(());
            }
            let now = self.clock.now_ms();
            // Start what is due, but never more than `concurrency` at once: a backlog waits in
            // the heap (a few bytes each), not as spawned tasks.
            let limit = self.options.concurrency.max(1);
            while let Some(&Reverse((at, slot, criterion))) = self.due.peek() {
                if at > now || (criterion != WINDOW && self.in_flight >= limit) {
                    break;
                }
                self.due.pop();
                if self.watched[slot].dropped {
                    continue;
                }
                // A closed window is still concluded (and reported) once; never measured.
                if criterion == WINDOW {
                    timers.insert(slot);
                    continue;
                }
                if self.watched[slot].tracker.is_closed() {
                    continue;
                }
                self.start(slot, criterion, now, &send);
            }
            if !timers.is_empty() && batch_deadline.is_none() {
                batch_deadline = Some(tokio::time::Instant::now());
            }
            // At the limit, the next finished measurement wakes the loop, not the heap.
            let next_due = if self.in_flight >= limit {
                None
            } else {
                self.due.peek().map(|Reverse((at, _, _))| *at)
            };
            let sleep_for = next_due.map_or(Duration::from_secs(60), |at| {
                Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
            });
            let wake = match batch_deadline {
                Some(deadline) => deadline.min(tokio::time::Instant::now() + sleep_for),
                None => tokio::time::Instant::now() + sleep_for,
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                Some(done) = finished.recv() => {
                    self.in_flight -= 1;
                    pending.push(done);
                    while let Ok(done) = finished.try_recv() {
                        self.in_flight -= 1;
                        pending.push(done);
                    }
                    if batch_deadline.is_none() {
                        batch_deadline = Some(tokio::time::Instant::now() + self.options.batch_window);
                    }
                }
                _ = tail.tick() => {
                    let touched = self.tail().await?;
                    if !touched.is_empty() {
                        timers.extend(touched);
                        batch_deadline.get_or_insert_with(tokio::time::Instant::now);
                    }
                }
                _ = heartbeat.tick(), if self.options.lease.is_some() => {
                    self.keep_leases().await?;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            let flush_now = batch_deadline.is_some_and(|d| d <= tokio::time::Instant::now())
                || pending.len() >= 1024
                || (self.in_flight == 0 && !pending.is_empty());
            if flush_now {
                batch_deadline = None;
                let flow = self
                    .flush(
                        std::mem::take(&mut pending),
                        std::mem::take(&mut timers),
                        &mut on_round,
                    )
                    .await?;
                if flow.is_break() {
                    return Ok(());
                }
            }
        }
    }

    /// Starts one measurement in the background.
    fn start(&mut self, slot: usize, criterion: usize, now: i64, send: &mpsc::Sender<Finished>) {
        let source = match &self.watched[slot].sources[criterion] {
            Ok(source) => Ok(source.clone()),
            Err(message) => Err(message.clone()),
        };
        let send = send.clone();
        self.in_flight += 1;
        tokio::spawn(async move {
            let observation = observe(source).await;
            let _ = send
                .send(Finished {
                    release: slot,
                    criterion,
                    at_ms: now,
                    observation,
                })
                .await;
        });
    }

    /// Reads what other processes journaled since the last tail; returns the releases it
    /// changed (and picks up new releases when watching all).
    async fn tail(&mut self) -> Result<BTreeSet<usize>, ExecError> {
        let mut touched = BTreeSet::new();
        loop {
            let page = self
                .store
                .events_of_kinds(self.tail_seq, &TAIL_KINDS, 1000)
                .await?;
            for event in &page {
                self.tail_seq = event.seq;
                let Some(id) = &event.release_id else {
                    continue;
                };
                if let Some(&slot) = self.index.get(id) {
                    let watched = &mut self.watched[slot];
                    watched.tracker.apply(event);
                    let quorum = decide::quorum_of(watched.tracker.plan());
                    watched.decisions.apply(event, quorum);
                    touched.insert(slot);
                } else if self.options.all && event.kind == "release_started" {
                    let release = self.store.get_release(id).await?;
                    self.add(&release).await?;
                }
            }
            if page.len() < 1000 {
                return Ok(touched);
            }
        }
    }

    /// Applies the decision events this watcher journaled to the decisions of their releases.
    fn apply_own(&mut self, sealed: &[backout_store::Event]) {
        for event in sealed {
            let slot = event.release_id.as_ref().and_then(|id| self.index.get(id));
            if let Some(&slot) = slot {
                let watched = &mut self.watched[slot];
                let quorum = decide::quorum_of(watched.tracker.plan());
                watched.decisions.apply(event, quorum);
                // The tracker re-arms on a deny; the watcher never journals one.
                if event.kind == "decision" || event.kind == "rollback_requested" {
                    watched.tracker.apply(event);
                }
            }
        }
    }

    /// Applies finished measurements, concludes every release they (or timers) touched,
    /// journals all their events in one commit, closes windows, and reports.
    async fn flush<F>(
        &mut self,
        finished: Vec<Finished>,
        mut touched: BTreeSet<usize>,
        on_round: &mut F,
    ) -> Result<ControlFlow<()>, ExecError>
    where
        F: FnMut(Round<'_>) -> ControlFlow<()>,
    {
        let actor = self.options.actor.clone();
        let mut events: Vec<NewEvent> = Vec::with_capacity(finished.len() + 8);
        touched.retain(|&slot| !self.watched[slot].dropped);
        for done in finished {
            let watched = &mut self.watched[done.release];
            if watched.dropped {
                continue;
            }
            touched.insert(done.release);
            if watched.tracker.is_closed() {
                continue;
            }
            events.push(watched.tracker.measured(
                done.criterion,
                done.observation,
                done.at_ms,
                &actor,
            ));
            watched.measured[done.criterion] = true;
            let next = watched.tracker.due_at(done.criterion);
            self.due.push(Reverse((next, done.release, done.criterion)));
        }
        let now = self.clock.now_ms();
        let mut changes = Vec::new();
        for &slot in &touched {
            let tracker = &mut self.watched[slot].tracker;
            let conclusion = tracker.conclude(now, &actor);
            events.extend(conclusion.events);
            if let Some(t) = tracker.window_timer_ms() {
                self.due.push(Reverse((t, slot, WINDOW)));
            }
            changes.push((slot, conclusion.changed, conclusion.close));
        }
        for event in &mut events {
            event.fence = self.fence_of(event.release_id.as_deref());
        }
        let sealed = self.append_fenced(events).await?;
        self.apply_own(&sealed);
        // Decisions follow the verdicts: an automatic approval, asking the deciders,
        // escalations when nobody decided or started in time.
        let mut follow = Vec::new();
        for &slot in &touched {
            let watched = &self.watched[slot];
            if watched.dropped {
                continue;
            }
            let (events, next) = decide::follow_up(
                watched.tracker.plan(),
                &watched.decisions,
                &watched.tracker,
                now,
            );
            follow.extend(events);
            if let Some(at) = next {
                self.due.push(Reverse((at, slot, WINDOW)));
            }
        }
        for event in &mut follow {
            event.fence = self.fence_of(event.release_id.as_deref());
        }
        if !follow.is_empty() {
            let sealed = self.append_fenced(follow).await?;
            self.apply_own(&sealed);
        }
        for (slot, changed, closing) in changes {
            if self.watched[slot].dropped {
                continue;
            }
            let closed = closing.is_some();
            if let Some((reason, event)) = closing {
                let id = self.watched[slot].tracker.release_id.clone();
                let event = event.fenced(self.fence_of(Some(&id)));
                match close(self.store.as_ref(), &id, now, &reason, &event).await {
                    Ok(_) => {}
                    Err(ExecError::Store(StoreError::Fenced { lease, .. })) => {
                        self.lost(&lease);
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            let watched = &mut self.watched[slot];
            let measured = std::mem::replace(
                &mut watched.measured,
                vec![false; watched.tracker.criteria().len()],
            );
            let first = !watched.reported;
            watched.reported = true;
            watched.closed_reported |= watched.tracker.is_closed();
            let round = Round {
                tracker: &watched.tracker,
                decisions: &watched.decisions,
                measured,
                now_ms: now,
                verdict_changed: changed || first,
                closed,
            };
            if on_round(round).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// The lease name of watching a release.
pub fn release_lease_name(release_id: &str) -> String {
    format!("release:{release_id}")
}

fn ttl_ms(settings: &LeaseSettings) -> i64 {
    i64::try_from(settings.ttl.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}
