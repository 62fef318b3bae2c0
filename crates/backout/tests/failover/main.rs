//! Two `backout serve` replicas sharing one PostgreSQL database through leases (real binaries on
//! loopback ports, a database of their own per test, a short lease time):
//!
//! - the replica executing a run is killed with SIGKILL: the other takes the run over within
//!   the lease time, finishes it without running a finished step again, and every
//!   notification reaches the webhook once per idempotency key;
//! - the replica sending a notification is killed while the receiver hangs: the other sends
//!   it, once its claim expired, with the same idempotency key;
//! - split brain: the replica executing a run is paused (SIGSTOP) past its lease, the other
//!   takes over, and once resumed (SIGCONT) the paused one writes nothing for that run (its
//!   writes are fenced) while the run's steps ran once.
//!
//! Each test prints the failover time it measured (kill → the other replica's `run_resumed`).
//!
//! `setup` holds the replicas, the database, the webhook and the waits the stories share;
//! `takeover` the runs taken over (kill, pause, SIGTERM); `sending` the notification whose
//! sender was killed.

#[path = "../support/mod.rs"]
mod support;

mod sending;
mod setup;
mod takeover;
