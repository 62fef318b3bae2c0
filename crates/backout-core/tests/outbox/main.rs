//! The notification outbox end to end, on real components: a SQLite file, the release operations
//! and the executor writing events with their deliveries, the dispatcher sending them to a real
//! HTTP server on a loopback port and a real SMTP server (aiosmtpd), both from
//! `backout-testkit`, and `sh`. Time for due dates and backoff comes from a clock the tests move
//! by hand.
//!
//! One story a file: `retries` (routing, backoff, giving up), `crash` (a dispatcher dying
//! mid-send, two dispatchers on one file), `channels` (a run's notices by webhook and email;
//! PagerDuty, Teams and a signed webhook with links to the UI).

mod channels;
mod crash;
mod fixture;
mod retries;
