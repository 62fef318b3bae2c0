//! Scheduled rehearsals in the background of `backout serve`: every second, the replica that
//! holds the lease `drills:schedule` looks at the plans it knows
//! (`backout_core::drill::rehearse::known_plans`), rehearses each one its schedule or
//! `renew_before` says is due (`backout_core::drill::schedule::due`) in `testing.rehearse_in`,
//! and announces `evidence_expiring` once per piece of evidence no schedule renews. Only plans
//! whose content was accepted (`backout accept`) run here, as for every command a server runs.
//! Transport and timing only: what is due and how a rehearsal runs live in the core.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use backout_core::ExecError;
use backout_core::clock::{Clock, SystemClock};
use backout_core::drill::rehearse::{self, EVIDENCE_EXPIRING, REHEARSAL_FAILED, Rehearsed};
use backout_core::drill::schedule;
use backout_core::executor::LeaseSettings;
use backout_core::release::accept;
use tokio::sync::watch;

use crate::state::{AppState, stopped};

/// The lease that makes one replica the scheduler.
pub const LEASE: &str = "drills:schedule";
/// How often the plans are looked at.
const TICK: Duration = Duration::from_secs(1);
/// How many of the newest releases lend their plans to the scheduler.
const RECENT_RELEASES: u32 = 50;

/// What the scheduler remembers between ticks.
#[derive(Default)]
struct Memory {
    /// When the last scheduled attempt of each plan hash started.
    attempts: HashMap<String, i64>,
    /// Evidence ids already announced as expiring.
    announced: HashSet<String>,
    /// Plans already said to be skipped (not accepted, unreadable schedule): said once.
    said: HashSet<String>,
    /// The journal was read for earlier attempts and announcements.
    loaded: bool,
}

/// Runs until the server stops.
pub async fn rehearse_on_schedule(
    state: AppState,
    leases: LeaseSettings,
    stopping: watch::Receiver<bool>,
) {
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            () = stopped(stopping.clone()) => return,
            () = tokio::time::sleep(TICK) => {}
        }
        if let Err(error) = tick(&state, &leases, &mut memory).await {
            tracing::warn!(%error, "scheduled rehearsals: this round failed; trying again");
        }
    }
}

async fn tick(
    state: &AppState,
    leases: &LeaseSettings,
    memory: &mut Memory,
) -> Result<(), ExecError> {
    let store = state.store.as_ref();
    let clock = SystemClock;
    let ttl_ms = i64::try_from(leases.ttl.as_millis())
        .unwrap_or(30_000)
        .max(1);
    let Some(mut lease) = store
        .acquire_lease(LEASE, &leases.owner, clock.now_ms(), ttl_ms)
        .await?
    else {
        return Ok(());
    };
    if !memory.loaded {
        remember(state, memory).await?;
    }
    for known in rehearse::known_plans(store, RECENT_RELEASES).await? {
        let Some(testing) = known.plan.testing.given() else {
            continue;
        };
        if accept::acceptance(store, &known.hash).await?.is_none() {
            if memory.said.insert(known.hash.clone()) {
                tracing::warn!(
                    plan = %known.hash, service = %known.plan.release.service,
                    "a plan with testing.schedule or renew_before is not accepted (`backout accept`): the server does not rehearse it"
                );
            }
            continue;
        }
        let evidence = rehearse::newest_evidence(store, &known).await?;
        let now = clock.now_ms();
        let last = memory.attempts.get(&known.hash).copied();
        match schedule::due(
            testing,
            evidence.as_ref().map(|e| e.finished_at_ms),
            last,
            now,
        ) {
            Ok(Some(reason)) => {
                memory.attempts.insert(known.hash.clone(), now);
                tracing::info!(plan = %known.hash, service = %known.plan.release.service, reason = reason.as_str(), "scheduled rehearsal");
                let result =
                    rehearse::rehearse(state.store.clone(), &known, reason, || clock.now_ms())
                        .await?;
                match result {
                    Rehearsed::Evidence(id) => {
                        tracing::info!(evidence = %id, "scheduled rehearsal recorded evidence")
                    }
                    Rehearsed::Failed(why) => {
                        tracing::warn!(plan = %known.hash, %why, "scheduled rehearsal failed")
                    }
                }
                // A rehearsal may outlast part of the lease: renew it, or stop this round.
                match store.renew_lease(&lease, clock.now_ms(), ttl_ms).await? {
                    Some(renewed) => lease = renewed,
                    None => return Ok(()),
                }
                continue;
            }
            Ok(None) => {}
            Err(why) => {
                if memory.said.insert(format!("schedule:{}", known.hash)) {
                    tracing::warn!(plan = %known.hash, %why, "testing.schedule cannot be read; the plan is not rehearsed on schedule");
                }
            }
        }
        if let Some(e) = &evidence
            && let Some(expires) = schedule::expiring(testing, e.finished_at_ms, now)
            && memory.announced.insert(e.id.clone())
        {
            store
                .append_event(&rehearse::evidence_expiring(&known, e, expires, now))
                .await?;
        }
    }
    Ok(())
}

/// Reads earlier failed attempts and announcements from the journal (a restarted or new
/// scheduler must not rehearse a failing plan every second, nor announce twice).
async fn remember(state: &AppState, memory: &mut Memory) -> Result<(), ExecError> {
    let mut after = 0;
    loop {
        let page = state
            .store
            .events_of_kinds(after, &[REHEARSAL_FAILED, EVIDENCE_EXPIRING], 1000)
            .await?;
        for e in &page {
            let text = |k: &str| {
                e.payload
                    .get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            match e.kind.as_str() {
                REHEARSAL_FAILED => {
                    if let Some(hash) = text("plan_hash") {
                        let at = memory.attempts.entry(hash).or_insert(e.at_ms);
                        *at = (*at).max(e.at_ms);
                    }
                }
                _ => {
                    if let Some(id) = text("evidence_id") {
                        memory.announced.insert(id);
                    }
                }
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = last.seq,
            _ => break,
        }
    }
    memory.loaded = true;
    Ok(())
}
