//! The dispatcher: sends the outbox's due deliveries, retries failures with exponential backoff,
//! and records every attempt.
//!
//! - A round reads what is due (no write lock when nothing is), claims up to `concurrency`
//!   deliveries under a lease, sends them concurrently and records each attempt. Two
//!   dispatchers on one store (a `watch` and a `run` at once) never hold the same delivery; a
//!   dispatcher that dies holding one leaves a claim that expires, and another sends it then:
//!   delivery is at least once, always with the same idempotency key (the journal event's id),
//!   so receivers can drop duplicates.
//! - Backoff: 1 s after the first failure, doubling up to 5 min, at least what the receiver
//!   asked for with `Retry-After`; after 10 attempts, or when the next one would fall more than
//!   24 h after the event, the delivery is given up (`failed`). A failure retrying cannot fix
//!   (a 404, a rejected recipient, a `${VAR}` that is not set) gives up at once.
//! - Everything needed is read back from the store (the event, its release or run, the plan
//!   stored with them), so a restarted process delivers what a crashed one committed.
//!
//! Time for due dates and backoff comes from the injected clock; only the pause between polls
//! is tokio's.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backout_model::Plan;
use backout_notify::{Deliverer, DeliveryConfig, Message, Notice, Target};
use backout_store::{
    Delivery, DeliveryNext, Event as JournalEvent, NewAttempt, Release, Store, StoreError,
};
use tokio::task::JoinSet;

use super::notice::{Facts, History, message, notice, notify_event};
use crate::clock::{Clock, SystemClock};
use crate::env::{Redactor, Resolver};
use crate::errors::ExecError;

/// When to try again after a failure, and when to stop trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failed attempt; it doubles after each further one.
    pub first: Duration,
    /// The longest pause.
    pub cap: Duration,
    /// Attempts in all before giving up.
    pub max_attempts: u32,
    /// No attempt is made later than this after the event.
    pub give_up_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            cap: Duration::from_secs(5 * 60),
            max_attempts: 10,
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl Backoff {
    /// The pause after failed attempt `attempt` (1 for the first): `first · 2^(attempt-1)`,
    /// at most `cap`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// When to make the next attempt after failed attempt `attempt` of a delivery whose event
    /// happened at `created_at_ms`, failing at `now_ms`; or why not to.
    pub fn next(
        &self,
        attempt: u32,
        created_at_ms: i64,
        now_ms: i64,
        retry_after: Option<Duration>,
    ) -> Result<i64, String> {
        if attempt >= self.max_attempts {
            return Err(format!("gave up after {attempt} attempts"));
        }
        let pause = match retry_after {
            Some(asked) => self.delay(attempt).max(asked),
            None => self.delay(attempt),
        };
        let at = now_ms.saturating_add(millis(pause));
        if at.saturating_sub(created_at_ms) > millis(self.give_up_after) {
            return Err(format!(
                "gave up: the next attempt would come more than {} after the event",
                backout_model::Duration(self.give_up_after).measured()
            ));
        }
        Ok(at)
    }
}

/// How a dispatcher works.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// Who claims deliveries: unique per dispatcher (host, pid and a counter by default).
    pub claimant: String,
    /// How long a claim keeps other dispatchers off a delivery; at least twice what one
    /// delivery may take (`delivery.timeout`), so a live dispatcher is never overtaken.
    pub lease: Duration,
    /// The pause between rounds when nothing was due.
    pub poll: Duration,
    /// Deliveries sent at once (and claimed per round).
    pub concurrency: u32,
    pub backoff: Backoff,
    /// The HTTP and SMTP settings (`BACKOUT_SMTP_URL`).
    pub delivery: DeliveryConfig,
    /// Directories of plan files by content hash: command channels of such a plan run there
    /// (a plan's `./bin/page-oncall` is relative to it); others run in the current directory.
    pub plan_dirs: HashMap<String, PathBuf>,
    /// After `stop`, how long to keep sending what is due (a run's `completed` notice) before
    /// returning.
    pub drain: Duration,
    /// Where people open the web UI (`BACKOUT_PUBLIC_URL`, `serve --public-url`): notices link
    /// the release, run and decision pages under it. `None`: notices carry no links.
    pub public_url: Option<String>,
    /// Run a plan's `command` channels only once its content hash is accepted
    /// (`release::accept`): the server, which must not run what any uploader wrote.
    pub commands_need_acceptance: bool,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            claimant: claimant(),
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            concurrency: 8,
            backoff: Backoff::default(),
            delivery: DeliveryConfig::default(),
            plan_dirs: HashMap::new(),
            drain: Duration::from_secs(15),
            public_url: None,
            commands_need_acceptance: false,
        }
    }
}

impl DispatchOptions {
    /// The defaults, with the SMTP server from `BACKOUT_SMTP_URL`, the sender from
    /// `BACKOUT_SMTP_FROM` (default `backout@localhost`), and, for tuning, how long one
    /// delivery may take (`BACKOUT_DELIVERY_TIMEOUT`, default 10s) and how long a claim keeps
    /// other processes off (`BACKOUT_DELIVERY_LEASE`, default 60s, at least twice the timeout).
    /// A duration that does not parse is an error naming the variable.
    pub fn from_env() -> Result<DispatchOptions, ExecError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let duration = |name: &str| -> Result<Option<Duration>, ExecError> {
            var(name)
                .map(|text| {
                    backout_model::Duration::parse(text.trim())
                        .map(|d| d.0)
                        .ok_or_else(|| {
                            ExecError::Usage(format!(
                                "{name}=`{text}` is not a duration like 10s or 2m"
                            ))
                        })
                })
                .transpose()
        };
        let mut options = DispatchOptions::default();
        options.delivery.smtp_url = var("BACKOUT_SMTP_URL");
        if let Some(from) = var("BACKOUT_SMTP_FROM") {
            options.delivery.from = from;
        }
        if let Some(timeout) = duration("BACKOUT_DELIVERY_TIMEOUT")? {
            options.delivery.timeout = timeout;
        }
        if let Some(lease) = duration("BACKOUT_DELIVERY_LEASE")? {
            options.lease = lease;
        }
        if let Some(url) = var("BACKOUT_PUBLIC_URL") {
            options.public_url = Some(
                public_url(&url)
                    .map_err(|e| ExecError::Usage(format!("BACKOUT_PUBLIC_URL=`{url}` {e}")))?,
            );
        }
        Ok(options)
    }

    /// Sets where people open the web UI, checked like `BACKOUT_PUBLIC_URL`.
    pub fn public_url(mut self, url: &str) -> Result<Self, ExecError> {
        self.public_url = Some(
            public_url(url).map_err(|e| ExecError::Usage(format!("--public-url `{url}` {e}")))?,
        );
        Ok(self)
    }

    /// Command channels of the plan with content hash `plan_hash` run in `dir`.
    pub fn plan_dir(mut self, plan_hash: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.plan_dirs.insert(plan_hash.into(), dir.into());
        self
    }
}

/// A public URL without its trailing slash, or why it is not one.
pub fn public_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("is not a URL ({e}); write e.g. https://backout.example.com"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("is not an http(s) URL; write e.g. https://backout.example.com".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("has a query or fragment; give the address the web UI is served at".into());
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A claimant name unique to this dispatcher: host, pid, and a counter within the process.
fn claimant() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{host}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends the outbox's deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    resolver: Arc<Resolver>,
    deliverer: Deliverer,
    options: DispatchOptions,
    /// Plans stored with releases and runs, linted once per content hash.
    plans: Mutex<HashMap<String, Loaded>>,
}

#[derive(Clone)]
struct Loaded {
    plan: Arc<Plan>,
    redactor: Arc<Redactor>,
    /// Resolves the channels' `${VAR}`s; for a rehearsal's deliveries it also applies the
    /// environment's `urls` rewrites.
    resolver: Arc<Resolver>,
}

/// A delivery ready to send.
struct Prepared {
    target: Target,
    notice: Notice,
    message: Message,
    /// Said with the attempt's detail (a plan template that failed and was replaced).
    note: Option<String>,
    redactor: Arc<Redactor>,
}

impl Dispatcher {
    /// A dispatcher over `store`. `resolver` resolves `${VAR}` in channel targets. Fails when
    /// the delivery settings cannot work (an SMTP URL that does not parse).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        resolver: Arc<Resolver>,
        options: DispatchOptions,
    ) -> Result<Dispatcher, ExecError> {
        let deliverer = Deliverer::new(options.delivery.clone())
            .map_err(|e| ExecError::Usage(format!("notifications: {e}")))?;
        // A claim must outlast the delivery it covers, or a live dispatcher could be overtaken.
        let mut options = options;
        options.lease = options
            .lease
            .max(options.delivery.timeout.saturating_mul(2));
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                clock,
                resolver,
                deliverer,
                options,
                plans: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn claimant(&self) -> &str {
        &self.inner.options.claimant
    }

    /// One round: claims what is due now (up to `concurrency`), sends it concurrently, and
    /// records each attempt. Returns the deliveries attempted, as stored afterwards, by id.
    ///
    /// Dropping the future mid-round is a crash as far as the outbox is concerned: the claims
    /// stay until their lease expires and another round sends those deliveries again.
    pub async fn dispatch_due(&self) -> Result<Vec<Delivery>, ExecError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        // A read first: polling must not take the write lock (and fsync) when nothing is due.
        if inner.store.due_deliveries(now, 1).await?.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = inner
            .store
            .claim_deliveries(
                &inner.options.claimant,
                now,
                millis(inner.options.lease),
                inner.options.concurrency.max(1),
            )
            .await?;
        let mut tasks = JoinSet::new();
        for delivery in claimed {
            let inner = Arc::clone(inner);
            tasks.spawn(async move { inner.attempt(delivery).await });
        }
        let mut done = Vec::new();
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(delivery)) => done.push(delivery),
                Ok(Err(error)) => failure = failure.or(Some(error)),
                Err(error) => {
                    failure = failure.or(Some(ExecError::Refused(format!(
                        "a delivery task failed: {error}"
                    ))));
                }
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        done.sort_by_key(|d| d.id);
        Ok(done)
    }

    /// Runs rounds until `stop` completes, then keeps sending what is due for at most
    /// `options.drain` (so the notice of a run that just finished goes out before the process
    /// exits). `on_attempt` sees every attempted delivery after its attempt is recorded: a
    /// caller reports give-ups loudly there. A round is never interrupted by `stop`.
    ///
    /// Returns the first store error (the claims then expire and a later round retries).
    pub async fn run<F>(
        &self,
        stop: impl Future<Output = ()>,
        mut on_attempt: F,
    ) -> Result<(), ExecError>
    where
        F: FnMut(&Delivery),
    {
        tokio::pin!(stop);
        loop {
            let round = self.dispatch_due().await?;
            round.iter().for_each(&mut on_attempt);
            let pause = if round.len() >= self.inner.options.concurrency.max(1) as usize {
                // A full round: more may be due right away.
                Duration::ZERO
            } else {
                self.inner.options.poll
            };
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let drain = async {
            loop {
                let round = self.dispatch_due().await?;
                if round.is_empty() {
                    return Ok::<(), ExecError>(());
                }
                round.iter().for_each(&mut on_attempt);
            }
        };
        match tokio::time::timeout(self.inner.options.drain, drain).await {
            Ok(result) => result,
            // What is left stays pending (or claimed until its lease ends) for the next process.
            Err(_) => Ok(()),
        }
    }
}

/// Runs a dispatcher configured from the environment (`${VAR}` values, `BACKOUT_SMTP_URL`)
/// with the system clock until `stop` completes, then drains what is due for a few seconds.
/// For long-running commands (`watch`, `run`, `execute`, `serve`): every process that works on
/// a store also delivers its notifications, and the claims keep them from sending one twice.
pub async fn dispatch_until(
    store: Arc<dyn Store>,
    stop: impl Future<Output = ()>,
) -> Result<(), ExecError> {
    let dispatcher = Dispatcher::new(
        store,
        Arc::new(SystemClock),
        Arc::new(Resolver::from_env()),
        DispatchOptions::from_env()?,
    )?;
    dispatcher.run(stop, |_| {}).await
}

impl Inner {
    /// One attempt at a claimed delivery, recorded.
    async fn attempt(&self, delivery: Delivery) -> Result<Delivery, ExecError> {
        let started = self.clock.now_ms();
        let number = u32::try_from(delivery.attempts.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let backoff = &self.options.backoff;
        let (detail, next) = if started.saturating_sub(delivery.created_at_ms)
            > millis(backoff.give_up_after)
        {
            (
                format!(
                    "gave up: not delivered within {} of its event",
                    backout_model::Duration(backoff.give_up_after).measured()
                ),
                DeliveryNext::GaveUp,
            )
        } else {
            match self.prepare(&delivery).await? {
                Err(reason) => (reason, DeliveryNext::GaveUp),
                Ok(prepared) => {
                    let sent = self
                        .deliverer
                        .deliver(&prepared.target, &prepared.notice, &prepared.message)
                        .await;
                    let note = prepared.note.map(|n| format!(" ({n})")).unwrap_or_default();
                    match sent {
                        Ok(receipt) => (
                            prepared
                                .redactor
                                .redact(&format!("{}{note}", receipt.detail)),
                            DeliveryNext::Delivered,
                        ),
                        Err(error) => {
                            let detail = prepared.redactor.redact(&error.message);
                            if !error.retryable {
                                (detail, DeliveryNext::GaveUp)
                            } else {
                                match backoff.next(
                                    number,
                                    delivery.created_at_ms,
                                    self.clock.now_ms(),
                                    error.retry_after,
                                ) {
                                    Ok(at_ms) => (detail, DeliveryNext::Retry { at_ms }),
                                    Err(why) => (format!("{detail}; {why}"), DeliveryNext::GaveUp),
                                }
                            }
                        }
                    }
                }
            }
        };
        let attempt = NewAttempt {
            at_ms: started,
            by: self.options.claimant.clone(),
            detail,
        };
        Ok(self
            .store
            .record_delivery_attempt(delivery.id, &attempt, next)
            .await?)
    }

    /// Everything needed to send `delivery`, read back from the store. The inner error is a
    /// reason the delivery can never be sent (given up at once); the outer one a store failure.
    async fn prepare(&self, delivery: &Delivery) -> Result<Result<Prepared, String>, ExecError> {
        let Some(event) = self
            .store
            .events(delivery.event_seq.saturating_sub(1), 1)
            .await?
            .into_iter()
            .find(|e| e.seq == delivery.event_seq)
        else {
            return Ok(Err(format!(
                "journal event {} is missing",
                delivery.event_seq
            )));
        };
        let run = match &delivery.run_id {
            Some(id) => match found(self.store.get_run(id).await)? {
                Some(run) => Some(run),
                None => return Ok(Err(format!("run `{id}` is missing"))),
            },
            None => None,
        };
        let release = match &delivery.release_id {
            Some(id) => match found(self.store.get_release(id).await)? {
                Some(release) => Some(release),
                None => return Ok(Err(format!("release `{id}` is missing"))),
            },
            None => None,
        };
        // A run executes the plan stored with it; release events use the release's.
        let (hash, source) = match (&run, &release) {
            (Some(run), _) => (&run.plan_hash, &run.plan_source),
            (None, Some(release)) => (&release.plan_hash, &release.plan_source),
            (None, None) => {
                return Ok(Err(
                    "the event has neither a run nor a release, so no plan names its channels"
                        .into(),
                ));
            }
        };
        // A rehearsal's deliveries go to its sealed channels (`rehearsal::seal`), as routed.
        let rehearsal = run
            .as_ref()
            .filter(|r| r.kind == backout_store::RunKind::Rehearsal)
            .map(|r| r.environment.as_str());
        let loaded = match self.plan(hash, source, rehearsal) {
            Ok(loaded) => loaded,
            Err(reason) => return Ok(Err(reason)),
        };
        let runs_a_command = loaded
            .plan
            .communication
            .given()
            .and_then(|c| c.channels.iter().find(|ch| ch.name == delivery.channel))
            .is_some_and(|ch| matches!(ch.kind, backout_model::plan::ChannelKind::Command(_)));
        if runs_a_command
            && self.options.commands_need_acceptance
            && crate::release::accept::acceptance(self.store.as_ref(), hash)
                .await?
                .is_none()
        {
            return Ok(Err(crate::release::accept::not_accepted(
                &loaded.plan,
                "command channels do not run on this server",
            )));
        }
        let steps = match &run {
            Some(run) => self.store.list_steps(&run.id).await?,
            None => Vec::new(),
        };
        let lifecycle = match notify_event(delivery) {
            Ok(event) => event,
            Err(reason) => return Ok(Err(reason)),
        };
        let history = match &release {
            Some(release) if History::needed(lifecycle, &event) => {
                self.history(release, &event).await?
            }
            _ => History::default(),
        };
        let facts = Facts {
            delivery,
            event: &event,
            plan: &loaded.plan,
            release: release.as_ref(),
            run: run.as_ref(),
            steps: &steps,
            history: &history,
            public_url: self.options.public_url.as_deref(),
        };
        Ok(self.compose(&facts, hash, &loaded))
    }

    fn compose(&self, facts: &Facts<'_>, hash: &str, loaded: &Loaded) -> Result<Prepared, String> {
        let name = &facts.delivery.channel;
        let channel = loaded
            .plan
            .communication
            .given()
            .and_then(|c| c.channels.iter().find(|ch| &ch.name == name))
            .ok_or_else(|| format!("the plan has no channel `{name}`"))?;
        let mut target = Target::from_channel(
            channel,
            |text| loaded.resolver.resolve_url(text),
            |text| loaded.resolver.resolve(text),
        )
        .map_err(|e| format!("channel `{name}`: {e}"))?;
        if let Target::Command { dir, .. } = &mut target {
            *dir = self.options.plan_dirs.get(hash).cloned();
        }
        let mut notice = notice(facts)?;
        let (mut message, note) = message(facts, &mut notice)?;
        // Nothing leaves unredacted: the evidence, run and decision the notice carries, its
        // summary and the rendered message (env.rs).
        let redactor = &loaded.redactor;
        for value in [&mut notice.verdict, &mut notice.decision, &mut notice.run]
            .into_iter()
            .flatten()
        {
            redactor.json(value);
        }
        notice.summary = redactor.redact(&notice.summary);
        message.subject = redactor.redact(&message.subject);
        message.text = redactor.redact(&message.text);
        message.html = redactor.redact(&message.html);
        Ok(Prepared {
            target,
            notice,
            message,
            note,
            redactor: Arc::clone(&loaded.redactor),
        })
    }

    /// The plan with content hash `hash`, linted from `source` the first time; sealed for a
    /// rehearsal in environment `rehearsal`.
    fn plan(&self, hash: &str, source: &str, rehearsal: Option<&str>) -> Result<Loaded, String> {
        let key = match rehearsal {
            Some(env) => format!("{hash}@{env}"),
            None => hash.to_string(),
        };
        let mut plans = self
            .plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(loaded) = plans.get(&key) {
            return Ok(loaded.clone());
        }
        let plan = backout_model::lint(source)
            .plan
            .ok_or_else(|| "the stored plan no longer lints".to_string())?;
        let mut resolver = (*self.resolver).clone();
        let plan = match rehearsal {
            Some(env) => {
                resolver.rewrite_urls(crate::rehearsal::url_rewrites(&plan, env));
                crate::rehearsal::seal(plan, env)
            }
            None => plan,
        };
        let loaded = Loaded {
            plan: Arc::new(plan),
            redactor: Arc::new(Redactor::new(source, &self.resolver)),
            resolver: Arc::new(resolver),
        };
        plans.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// What happened to the release before `event`.
    async fn history(&self, release: &Release, event: &JournalEvent) -> Result<History, ExecError> {
        let mut history = History::default();
        let mut after = 0;
        loop {
            let page = self.store.release_events(&release.id, after, 1000).await?;
            for earlier in page.iter().filter(|e| e.seq < event.seq) {
                history.apply(earlier);
            }
            match page.last() {
                Some(last) if page.len() == 1000 && last.seq < event.seq => after = last.seq,
                _ => return Ok(history),
            }
        }
    }
}

/// `Ok(None)` for a record that does not exist.
fn found<T>(result: Result<T, StoreError>) -> Result<Option<T>, ExecError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_honours_retry_after() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (1..=10).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff.delay(40), Duration::from_secs(300));
        assert_eq!(backoff.next(1, 0, 1_000, None), Ok(2_000));
        assert_eq!(
            backoff.next(1, 0, 1_000, Some(Duration::from_secs(30))),
            Ok(31_000),
            "Retry-After is honoured when longer"
        );
        assert_eq!(
            backoff.next(3, 0, 1_000, Some(Duration::from_millis(1))),
            Ok(5_000)
        );
    }

    #[test]
    fn backoff_gives_up_after_ten_attempts_or_a_day() {
        let backoff = Backoff::default();
        assert!(backoff.next(9, 0, 1_000, None).is_ok());
        assert_eq!(
            backoff.next(10, 0, 1_000, None),
            Err("gave up after 10 attempts".to_string())
        );
        let day = 24 * 3_600_000;
        let late = backoff
            .next(2, 0, day - 1_000, None)
            .expect_err("past a day");
        // Said as plans write durations (backout_model::Duration::measured): a day is `1d`.
        assert!(late.contains("more than 1d after the event"), "{late}");
        let asked = backoff
            .next(1, 0, 1_000, Some(Duration::from_secs(2 * 86_400)))
            .expect_err("asked to wait two days");
        assert!(asked.contains("1d"), "{asked}");
    }
}
