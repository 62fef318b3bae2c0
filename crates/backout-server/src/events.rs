//! Live tails of runs over server-sent events (`GET /api/v1/runs/{id}/events`).
//!
//! One poller per watched run reads the store and broadcasts the run's new journal events to
//! every client of that run (so 500 watchers cost one query per read, not 500). The poller reads
//! as soon as the change feed (a [`backout_store::Feed`], fed too by PostgreSQL's LISTEN/NOTIFY
//! when the binary starts a listener) says the journal grew, so a step event reaches clients
//! within milliseconds. It also reads every 200 ms whatever the feed says, as it did before there
//! was one: a feed does not hear every write (another process's on SQLite, a notification lost
//! while the PostgreSQL listener reconnects), and a read that finds nothing new is how the end
//! of a run is noticed.
//!
//! Each client first gets the run's history from the store (after `Last-Event-ID` when it
//! reconnects), then the broadcast, without duplicates (by `seq`). A client too slow for the broadcast gets a
//! `resync` event and catches up from the store; the stream never silently skips an event.
//! When the run ends (succeeded, failed, aborted, refused) the stream sends `end` and closes;
//! a run that only waits for a person stays open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use backout_store::{Event, RunState, Store};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::state::stopped;

/// How often a poller reads the store when the feed (if any) stays quiet.
const POLL: Duration = Duration::from_millis(200);
/// Messages a client may fall behind before it must resync.
const BUFFER: usize = 1024;
/// Events read from the store per query.
const PAGE: u32 = 500;

/// What a poller broadcasts.
#[derive(Clone, Debug)]
enum Tail {
    Event(Arc<Event>),
    /// The run ended in this state; no more events will come.
    End(RunState),
}

/// The pollers of the runs being watched. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn Store>,
    stopping: watch::Receiver<bool>,
    /// Changes when the journal grew ([`backout_store::Feed::subscribe`]); `None` polls only.
    feed: Option<watch::Receiver<u64>>,
    runs: Arc<Mutex<HashMap<String, broadcast::Sender<Tail>>>>,
}

impl Hub {
    /// A hub reading `store`, woken by `feed` when given (else polling every 200 ms), until
    /// `stopping` turns true.
    pub fn new(
        store: Arc<dyn Store>,
        stopping: watch::Receiver<bool>,
        feed: Option<watch::Receiver<u64>>,
    ) -> Hub {
        Hub {
            store,
            stopping,
            feed,
            runs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Joins the poller of `run_id`, starting it when nobody watches the run yet. A new
    /// poller starts at the journal's end as read here, before the caller reads the history:
    /// whatever commits after the history was read is broadcast to this subscriber.
    async fn subscribe(&self, run_id: &str) -> broadcast::Receiver<Tail> {
        if let Some(receiver) = self.join(run_id) {
            return receiver;
        }
        let after = match self.store.last_event().await {
            Ok(last) => last.map_or(0, |e| e.seq),
            Err(error) => {
                tracing::warn!(run = %run_id, %error, "live tail cannot read the store");
                0
            }
        };
        let mut runs = lock(&self.runs);
        if let Some(sender) = runs.get(run_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BUFFER);
        runs.insert(run_id.to_string(), sender.clone());
        tokio::spawn(self.clone().poll(run_id.to_string(), sender, after));
        receiver
    }

    fn join(&self, run_id: &str) -> Option<broadcast::Receiver<Tail>> {
        lock(&self.runs)
            .get(run_id)
            .map(broadcast::Sender::subscribe)
    }

    /// Broadcasts the run's events after `after` until the run ends, nobody listens, or the
    /// server stops. Reads at once, then whenever the feed changes or the timer is due.
    async fn poll(self, run_id: String, sender: broadcast::Sender<Tail>, mut after: u64) {
        let mut feed = self.feed.clone();
        if let Some(feed) = &mut feed {
            feed.borrow_and_update();
        }
        let mut due = Instant::now();
        loop {
            tokio::select! {
                () = stopped(self.stopping.clone()) => break,
                () = tokio::time::sleep_until(due) => {}
                gone = changed(&mut feed) => {
                    if gone {
                        // The feed's sender is gone: poll on the timer alone.
                        feed = None;
                    }
                }
            }
            due = Instant::now() + POLL;
            if self.forget_if_unwatched(&run_id, &sender) {
                return;
            }
            let events = match self.store.run_events(&run_id, after, PAGE).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(run = %run_id, %error, "live tail cannot read the store");
                    continue;
                }
            };
            let quiet = events.is_empty();
            for event in events {
                after = event.seq;
                let _ = sender.send(Tail::Event(Arc::new(event)));
            }
            if quiet
                && let Ok(run) = self.store.get_run(&run_id).await
                && run.state.is_terminal()
            {
                // Forget the poller first: a client arriving now starts a new one, which
                // ends at once too.
                self.forget(&run_id);
                let _ = sender.send(Tail::End(run.state));
                return;
            }
        }
        self.forget(&run_id);
    }

    fn forget_if_unwatched(&self, run_id: &str, sender: &broadcast::Sender<Tail>) -> bool {
        let mut runs = lock(&self.runs);
        if sender.receiver_count() == 0 {
            runs.remove(run_id);
            return true;
        }
        false
    }

    fn forget(&self, run_id: &str) {
        lock(&self.runs).remove(run_id);
    }

    /// The SSE response for a client of `run_id` that sent `headers`: from the start, or after
    /// its `Last-Event-ID` when it reconnects. `NotFound` for an unknown run (a 404 rather than
    /// an empty stream). The API and the web UI both answer with this.
    pub async fn follow(
        &self,
        run_id: String,
        headers: &axum::http::HeaderMap,
    ) -> Result<axum::response::Response, backout_store::StoreError> {
        self.store.get_run(&run_id).await?;
        let after = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(self.stream(run_id, after).await)
    }

    /// The SSE response for one client of `run_id`, starting after `last_event_id`.
    pub async fn stream(&self, run_id: String, last_event_id: u64) -> axum::response::Response {
        let (send, receive) = mpsc::channel(64);
        let receiver = self.subscribe(&run_id).await;
        let client = Client {
            store: self.store.clone(),
            run_id,
            last_sent: last_event_id,
            send,
        };
        tokio::spawn(client.serve(receiver, self.stopping.clone()));
        Sse::new(ReceiverStream::new(receive))
            .keep_alive(KeepAlive::default())
            .into_response()
    }
}

/// One SSE client.
struct Client {
    store: Arc<dyn Store>,
    run_id: String,
    last_sent: u64,
    send: mpsc::Sender<Result<SseEvent, Infallible>>,
}

impl Client {
    async fn serve(
        mut self,
        mut receiver: broadcast::Receiver<Tail>,
        stopping: watch::Receiver<bool>,
    ) {
        let stop = stopped(stopping);
        tokio::pin!(stop);
        // The history, then whatever the broadcast brings (subscribed before the history was
        // read, so nothing falls between; duplicates are dropped by seq).
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            // A client that went away ends its task (and, when it was the last, the run's
            // poller) now, not at the next event: a run waiting for a person sends none.
            let message = tokio::select! {
                () = &mut stop => return,
                () = self.send.closed() => return,
                message = receiver.recv() => message,
            };
            let sent = match message {
                Ok(Tail::Event(event)) => self.emit(&event).await,
                Ok(Tail::End(state)) => {
                    if self.catch_up().await.is_ok() {
                        let end = backout_api::StreamEnd {
                            run_id: self.run_id.clone(),
                            state,
                        };
                        let end = SseEvent::default()
                            .event("end")
                            .data(serde_json::to_string(&end).unwrap_or_default());
                        let _ = self.send.send(Ok(end)).await;
                    }
                    return;
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    // Too slow for the broadcast: say so, then read what was missed from the
                    // store; the broadcast's later events are deduplicated by seq.
                    let resync = backout_api::StreamResync {
                        reason: "lagged".into(),
                        skipped,
                        after: self.last_sent,
                    };
                    let resync = SseEvent::default()
                        .event("resync")
                        .data(serde_json::to_string(&resync).unwrap_or_default());
                    if self.send.send(Ok(resync)).await.is_err() {
                        return;
                    }
                    self.catch_up().await
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// Sends every stored event of the run after the last one sent.
    async fn catch_up(&mut self) -> Result<(), ()> {
        loop {
            let page = match self
                .store
                .run_events(&self.run_id, self.last_sent, PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(run = %self.run_id, %error, "live tail cannot read the store");
                    return Ok(());
                }
            };
            for event in &page {
                self.emit(event).await?;
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Sends one journal event unless it was sent already; `Err` when the client is gone.
    async fn emit(&mut self, event: &Event) -> Result<(), ()> {
        if event.seq <= self.last_sent {
            return Ok(());
        }
        let data =
            serde_json::to_string(&backout_api::JournalEvent::from(event)).map_err(|_| ())?;
        let message = SseEvent::default()
            .id(event.seq.to_string())
            .event("journal")
            .data(data);
        self.send.send(Ok(message)).await.map_err(|_| ())?;
        self.last_sent = event.seq;
        Ok(())
    }
}

/// Waits until `feed` changes; `true` when its sender is gone. Without a feed, never completes.
async fn changed(feed: &mut Option<watch::Receiver<u64>>) -> bool {
    match feed {
        Some(feed) => feed.changed().await.is_err(),
        None => std::future::pending().await,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain map behind: still usable.
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
