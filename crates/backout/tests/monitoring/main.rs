//! Issue 4's "Done when", end to end against real servers: a release started from the reference
//! plan (`fixtures/plans/valid/checkout.yaml`, changed only where a test environment needs it)
//! and watched by the real `backout` binary, against a real Prometheus scraping an exporter
//! this test serves and a real Alertmanager this test posts alerts to. No mocks.
//!
//! In order, on one Prometheus (a rate over `[5m]` remembers a degradation for five minutes,
//! so the degradation comes last):
//! 1. success: a healthy release turns `success` once every `success_when` check passed for the
//!    hold, and its window closes;
//! 2. refusals: a rollback is refused (exit 5, quoting `window.after_close`) after that window,
//!    at the point of no return, and after the window ran out;
//! 3. an Alertmanager alert trips `payments-alert`: `rollback_required`;
//! 4. the exporter degrades: `error-rate` trips, `rollback_required` with the value and the
//!    threshold, within a bound, and all of it is in the journal.
//!
//! The binaries come from the Debian packages `prometheus` and `prometheus-alertmanager`
//! (`scripts/test` installs them); a missing one fails the test, it never skips.
//!
//! The scenarios share one environment (`env`), so they are steps of one test: `window`
//! (success, refusals), then `rollbacks` (an alert, a degraded exporter); `watch` reads what a
//! `backout watch` prints.

#[path = "../support/mod.rs"]
mod support;

#[path = "../../../backout-core/tests/support/monitoring.rs"]
mod monitoring;

mod env;
mod rollbacks;
mod watch;
mod window;

use std::time::Instant;

use env::{Monitoring, reference_plan};
use support::Sandbox;
use watch::secs;

#[test]
fn a_release_against_real_prometheus_and_alertmanager() {
    let started = Instant::now();
    let env = Monitoring::start();
    let success = window::success_after_the_hold(&env);
    window::refusals_after_the_window(&env, &success);
    rollbacks::an_alert_requires_a_rollback(&env);
    rollbacks::a_degraded_exporter_requires_a_rollback(&env);
    env.verify_chain();
    eprintln!("the whole test took {}", secs(started.elapsed()));
}

/// `watch` of a release whose window is closed says so and exits 5, as `check` does (and as
/// `watch --help` says). Needs no monitoring: nothing is measured once the window is closed.
#[test]
fn watch_of_a_closed_window_exits_5() {
    let sandbox = Sandbox::new();
    let release = sandbox.start_release(reference_plan());
    sandbox
        .backout(&["checkpoint", &release, "contract-migration"])
        .code(0);
    sandbox.backout(&["check", &release]).code(5);
    sandbox.backout(&["watch", &release]).code(5).stdout_has(
        "verdict: closed; window closed: point of no return: checkpoint \
         `contract-migration` reached",
    );
}
