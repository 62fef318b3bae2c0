//! What `audit verify` proves beyond the hash chain: anchors and the derived tables.
//!
//! The chain (`backout_store::chain`) shows that the stored events are consistent with each
//! other; whoever can write the store can also rewrite a tail and recompute its hashes, or cut
//! it off. An [`Anchor`] is the head of the chain (seq, hash) signed with HMAC-SHA256 under a key
//! the store never holds (`BACKOUT_AUDIT_KEY` or a key file), kept elsewhere (a ticket, a chat
//! channel, a backup). Checking a journal against an anchor detects truncation (the anchored
//! seq is missing), a rewritten history (the event at the anchored seq has another hash) and a
//! forged anchor (its MAC does not hold). Events after the newest anchor are only as good as
//! the chain.
//!
//! The derived tables (each run's state, each step's state) are written in the same
//! transaction as their event, so they must agree with the journal: [`derived`] replays the
//! journal and reports every record that says something the events do not.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use backout_store::{ChainHead, Event, RunState, StepState, Store, StoreError};

/// The domain of the MAC, so it is never the MAC of anything else.
const ANCHOR_LABEL: &str = "backout-audit-anchor-v1";
/// Shortest key accepted: a short key can be guessed offline from one anchor.
pub const MIN_KEY_BYTES: usize = 16;

/// The head of the journal, signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Format version of the anchor.
    pub v: u32,
    pub seq: u64,
    pub hash: String,
    /// When the anchor was made, RFC 3339 (informative: not signed).
    pub at: String,
    /// HMAC-SHA256 of `backout-audit-anchor-v1\n<seq>\n<hash>` under the audit key, hex.
    pub mac: String,
}

/// Why an anchor and a journal disagree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error(
        "the anchor's signature does not hold: it was not made with this key, or it was edited"
    )]
    Forged,
    #[error(
        "the journal ends at seq {last} but the anchor says seq {anchored} existed: events were \
         removed (truncated)"
    )]
    Truncated { anchored: u64, last: u64 },
    #[error(
        "event seq {seq} has hash {found} but the anchor recorded {anchored}: the history up to \
         it was rewritten (and its chain recomputed)"
    )]
    Rewritten {
        seq: u64,
        found: String,
        anchored: String,
    },
}

/// An audit key: the bytes of `BACKOUT_AUDIT_KEY` or of a key file (surrounding whitespace
/// trimmed).
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(bytes: &[u8]) -> Result<AuditKey, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the audit key has {} bytes; use at least {MIN_KEY_BYTES} random bytes \
                 (e.g. `openssl rand -hex 32`)",
                trimmed.len()
            ));
        }
        Ok(AuditKey(trimmed.to_vec()))
    }

    fn mac(&self, seq: u64, hash: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(format!("{ANCHOR_LABEL}\n{seq}\n{hash}").as_bytes());
        mac
    }
}

impl Anchor {
    /// Signs `head` with `key`.
    pub fn sign(head: &ChainHead, key: &AuditKey, at: String) -> Anchor {
        let mac = key.mac(head.seq, &head.hash).finalize().into_bytes();
        Anchor {
            v: 1,
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            mac: mac.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Whether the MAC holds under `key` (compared in constant time).
    pub fn authentic(&self, key: &AuditKey) -> bool {
        let Some(mac) = unhex(&self.mac) else {
            return false;
        };
        self.v == 1 && key.mac(self.seq, &self.hash).verify_slice(&mac).is_ok()
    }

    /// Checks a journal whose chain holds up to `head` against this anchor: the anchor is
    /// authentic, the anchored seq exists, and its event has the anchored hash.
    pub async fn check(
        &self,
        key: &AuditKey,
        store: &dyn Store,
        head: Option<&ChainHead>,
    ) -> Result<Result<(), AnchorError>, StoreError> {
        if !self.authentic(key) {
            return Ok(Err(AnchorError::Forged));
        }
        let last = head.map_or(0, |h| h.seq);
        if self.seq == 0 {
            return Ok(Ok(()));
        }
        if last < self.seq {
            return Ok(Err(AnchorError::Truncated {
                anchored: self.seq,
                last,
            }));
        }
        let found = store.events(self.seq - 1, 1).await?;
        match found.first() {
            Some(event) if event.seq == self.seq && event.hash == self.hash => Ok(Ok(())),
            Some(event) if event.seq == self.seq => Ok(Err(AnchorError::Rewritten {
                seq: self.seq,
                found: event.hash.clone(),
                anchored: self.hash.clone(),
            })),
            _ => Ok(Err(AnchorError::Truncated {
                anchored: self.seq,
                last,
            })),
        }
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A record of a derived table that the journal does not support.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// `run RUN` or `step RUN/STEP`.
    pub record: String,
    /// What the record says.
    pub stored: String,
    /// What the journal says.
    pub journal: String,
    /// The event that says it (`seq 8, step_failed`), if any.
    pub event: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is `{}` but the journal says `{}`",
            self.record, self.stored, self.journal
        )?;
        match &self.event {
            Some(event) => write!(f, " (event {event})"),
            None => Ok(()),
        }
    }
}

/// The state a step event puts its step in; `None` for an event whose effect depends on more
/// than its kind (a resolution, a requeue): those steps are not judged.
fn step_state_of(kind: &str) -> Option<Option<StepState>> {
    Some(Some(match kind {
        "step_started" => StepState::Running,
        "step_succeeded" | "step_confirmed" => StepState::Succeeded,
        "step_failed" => StepState::Failed,
        "step_aborted" => StepState::Aborted,
        "step_skipped" => StepState::Skipped,
        "step_in_doubt" => StepState::InDoubt,
        "step_attempt_failed" | "step_pending" => StepState::Pending,
        "manual_step_waiting" => StepState::WaitingManual,
        // A step event of a kind this check does not know: no judgement.
        other if other.starts_with("step_") => return Some(None),
        _ => return None,
    }))
}

/// The state a run event puts its run in, like [`step_state_of`].
fn run_state_of(kind: &str) -> Option<Option<RunState>> {
    Some(Some(match kind {
        "run_started" | "run_resumed" => RunState::Running,
        "run_waiting" => RunState::Waiting,
        "run_succeeded" => RunState::Succeeded,
        "run_failed" => RunState::Failed,
        "run_aborted" => RunState::Aborted,
        "run_refused" => RunState::Refused,
        other if other.starts_with("run_") => return Some(None),
        _ => return None,
    }))
}

/// Every run and step record that disagrees with the journal: a state the run's last deciding
/// event does not give, or a record with no event at all.
pub async fn derived(store: &dyn Store) -> Result<Vec<Mismatch>, StoreError> {
    let mut mismatches = Vec::new();
    for run in store.list_runs(u32::MAX).await? {
        let events = run_events(store, &run.id).await?;
        let last_run_event = events
            .iter()
            .filter(|e| e.step_id.is_none())
            .filter_map(|e| run_state_of(&e.kind).map(|state| (e, state)))
            .next_back();
        match last_run_event {
            None => mismatches.push(Mismatch {
                record: format!("run {}", run.id),
                stored: run.state.to_string(),
                journal: "no event of this run".into(),
                event: None,
            }),
            Some((event, Some(state))) if state != run.state => mismatches.push(Mismatch {
                record: format!("run {}", run.id),
                stored: run.state.to_string(),
                journal: state.to_string(),
                event: Some(format!("seq {}, {}", event.seq, event.kind)),
            }),
            Some(_) => {}
        }
        for step in store.list_steps(&run.id).await? {
            let last = events
                .iter()
                .filter(|e| e.step_id.as_deref() == Some(step.step_id.as_str()))
                .filter_map(|e| step_state_of(&e.kind).map(|state| (e, state)))
                .next_back();
            let record = format!("step {}/{}", run.id, step.step_id);
            match last {
                // A pending step nobody started has no event of its own.
                None if step.state == StepState::Pending => {}
                None => mismatches.push(Mismatch {
                    record,
                    stored: step.state.to_string(),
                    journal: "no event of this step".into(),
                    event: None,
                }),
                Some((event, Some(state))) if state != step.state => mismatches.push(Mismatch {
                    record,
                    stored: step.state.to_string(),
                    journal: state.to_string(),
                    event: Some(format!("seq {}, {}", event.seq, event.kind)),
                }),
                Some(_) => {}
            }
        }
    }
    Ok(mismatches)
}

async fn run_events(store: &dyn Store, run_id: &str) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.run_events(run_id, after, 1000).await?;
        let full = page.len() == 1000;
        if let Some(last) = page.last() {
            after = last.seq;
        }
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> AuditKey {
        AuditKey::new(text.as_bytes()).expect("a long enough key")
    }

    #[test]
    fn an_anchor_holds_under_its_key_only_and_not_once_edited() {
        let head = ChainHead {
            seq: 42,
            hash: "ab".repeat(32),
        };
        let anchor = Anchor::sign(&head, &key("0123456789abcdef-key"), "t".into());
        assert!(anchor.authentic(&key("0123456789abcdef-key")));
        assert!(!anchor.authentic(&key("0123456789abcdef-other")));
        let mut moved = anchor.clone();
        moved.seq = 41;
        assert!(!moved.authentic(&key("0123456789abcdef-key")));
        let mut rehashed = anchor.clone();
        rehashed.hash = "cd".repeat(32);
        assert!(!rehashed.authentic(&key("0123456789abcdef-key")));
        let mut garbled = anchor;
        garbled.mac = "zz".into();
        assert!(!garbled.authentic(&key("0123456789abcdef-key")));
        assert!(AuditKey::new(b"short").is_err());
    }
}
