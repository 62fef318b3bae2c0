//! Hearing other processes' journal writes: a LISTEN on channel `backout_events` (announced by
//! the trigger of migration 0004 when an insert into `events` commits) that publishes the new
//! end of the journal into a `watch` sender, the one a [`backout_store::Feed`] publishes into.
//! `backout serve` replicas sharing a database so wake their live tails for each other's events.
//!
//! The listener keeps one connection of its own. When it is lost, the listener reconnects with
//! a growing pause (logged), then re-reads the journal's end: notifications sent while it was
//! away are gone, so it announces whatever was committed meanwhile. It never reads events;
//! subscribers read the store themselves.

use std::time::Duration;

use backout_store::{StoreError, announce};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use backout_store::sql::db_error;

use crate::errors::connect_error;
use crate::location::{Target, parse_url};

/// The channel migration 0004's trigger notifies.
pub const EVENTS_CHANNEL: &str = "backout_events";

/// The first pause before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Listens for journal writes in the database at `url` (any process's, this one's included)
/// and raises `sender`'s value to each new end of the journal. Connects once before returning,
/// so a wrong URL or an unreachable server is an error now ([`StoreError::Open`], as from
/// [`crate::PostgresStore::open`]); afterwards connection losses are retried forever with
/// backoff. It listens until the returned task is aborted or the runtime shuts down (dropping
/// the handle lets it run). Receivers may come and go: a sender without any is still fed.
///
/// The database must have backout's tables (open a [`crate::PostgresStore`] on it first, which
/// applies the migrations, including the trigger that sends the notifications).
pub async fn listen(url: &str, sender: watch::Sender<u64>) -> Result<JoinHandle<()>, StoreError> {
    let target = parse_url(url)?;
    let mut session = Session::open(&target).await?;
    session.catch_up(&sender).await?;
    Ok(tokio::spawn(run(target, session, sender)))
}

/// One connection listening on [`EVENTS_CHANNEL`], with a pool for reading the journal's end.
struct Session {
    pool: PgPool,
    listener: PgListener,
}

impl Session {
    async fn open(target: &Target) -> Result<Session, StoreError> {
        let mut options = target.options.clone();
        if options.get_application_name().is_none() {
            options = options.application_name("backout-listen");
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(|error| connect_error(target, error))?;
        listener
            .listen(EVENTS_CHANNEL)
            .await
            .map_err(|error| connect_error(target, error))?;
        Ok(Session { pool, listener })
    }

    /// Announces the journal's current end: what was committed while nobody listened.
    async fn catch_up(&mut self, sender: &watch::Sender<u64>) -> Result<(), StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        if let Some(seq) = last.and_then(|seq| u64::try_from(seq).ok()) {
            announce(sender, seq);
        }
        Ok(())
    }

    async fn close(self) {
        drop(self.listener);
        self.pool.close().await;
    }
}

async fn run(target: Target, mut session: Session, sender: watch::Sender<u64>) {
    loop {
        let reason = serve(&mut session, &sender).await;
        tracing::warn!(
            database = %target.location, %reason,
            "journal listener lost its connection; reconnecting"
        );
        session.close().await;
        session = reconnect(&target, &sender).await;
    }
}

/// Connects again, pausing longer after each failure, until it succeeds.
async fn reconnect(target: &Target, sender: &watch::Sender<u64>) -> Session {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let mut fresh = match Session::open(target).await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(
                    database = %target.location, %error, retry_in = ?backoff,
                    "journal listener cannot reconnect"
                );
                continue;
            }
        };
        match fresh.catch_up(sender).await {
            Ok(()) => {
                tracing::info!(database = %target.location, "journal listener reconnected");
                return fresh;
            }
            Err(error) => {
                tracing::warn!(
                    database = %target.location, %error, retry_in = ?backoff,
                    "journal listener cannot read the journal's end"
                );
                fresh.close().await;
            }
        }
    }
}

/// Relays notifications until the connection fails; returns why it did.
async fn serve(session: &mut Session, sender: &watch::Sender<u64>) -> String {
    loop {
        match session.listener.try_recv().await {
            Ok(Some(notification)) => match notification.payload().trim().parse::<u64>() {
                Ok(seq) => announce(sender, seq),
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a `{EVENTS_CHANNEL}` notification that is not a seq"
                ),
            },
            // The connection dropped (and sqlx has reconnected and listens again): whatever
            // was notified in between is lost, so read the journal's end.
            Ok(None) => {
                if let Err(error) = session.catch_up(sender).await {
                    return error.to_string();
                }
            }
            Err(error) => return error.to_string(),
        }
    }
}
