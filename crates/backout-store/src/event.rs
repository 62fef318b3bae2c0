//! Journal events: what the caller appends ([`NewEvent`]) and what the store gives back once the
//! event has its sequence number and its place in the hash chain ([`Event`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::{self, EventBody};
use crate::delivery::NewDelivery;
use crate::errors::StoreError;
use crate::lease::Fence;

/// An event to append. The store assigns `seq`, `prev_hash` and `hash`.
///
/// `deliveries` are the notifications the event causes (the outbox): the store writes them in
/// the same transaction as the event, as rows of their own linked by the event's `seq`. They
/// are not part of the event's hash: the chain covers what happened, the deliveries say who
/// is told, and their state changes as attempts are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Milliseconds since the Unix epoch, from the caller's clock.
    pub at_ms: i64,
    /// What happened, e.g. `run_started`, `step_succeeded`.
    pub kind: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub release_id: Option<String>,
    /// Who caused it: a user, or the system component acting on its own.
    pub actor: String,
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<NewDelivery>,
    /// The lease this write is made under, if any: the store refuses the whole write
    /// ([`StoreError::Fenced`]) when the lease's current token differs. Not part of the hash:
    /// it says who was allowed to write, not what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<Fence>,
}

impl NewEvent {
    /// An event with no run, step or release and a `null` payload.
    pub fn new(kind: impl Into<String>, actor: impl Into<String>, at_ms: i64) -> Self {
        NewEvent {
            at_ms,
            kind: kind.into(),
            run_id: None,
            step_id: None,
            release_id: None,
            actor: actor.into(),
            payload: Value::Null,
            deliveries: Vec::new(),
            fence: None,
        }
    }

    /// Sets the run the event is about.
    pub fn run(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Sets the step the event is about.
    pub fn step(mut self, step_id: impl Into<String>) -> Self {
        self.step_id = Some(step_id.into());
        self
    }

    /// Sets the release the event is about.
    pub fn release(mut self, release_id: impl Into<String>) -> Self {
        self.release_id = Some(release_id.into());
        self
    }

    /// Sets the JSON payload.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the deliveries written with the event (replacing any given before).
    pub fn deliveries(mut self, deliveries: Vec<NewDelivery>) -> Self {
        self.deliveries = deliveries;
        self
    }

    /// Sets the lease the write is made under (replacing any given before).
    pub fn fenced(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Refuses deliveries a backend could not store: an empty channel or event name, or the
    /// same channel twice for one lifecycle event. Every backend calls this before writing.
    pub fn check_deliveries(&self) -> Result<(), StoreError> {
        for (i, delivery) in self.deliveries.iter().enumerate() {
            if delivery.channel.is_empty() || delivery.notify_event.is_empty() {
                return Err(StoreError::invalid(format!(
                    "a delivery of event `{}` names no channel or no lifecycle event",
                    self.kind
                )));
            }
            if self.deliveries[..i]
                .iter()
                .any(|d| d.channel == delivery.channel && d.notify_event == delivery.notify_event)
            {
                return Err(StoreError::invalid(format!(
                    "event `{}` delivers `{}` to channel `{}` twice",
                    self.kind, delivery.notify_event, delivery.channel
                )));
            }
        }
        Ok(())
    }

    /// The event as written together with a record of `run_id` (and `step_id`): missing ids are
    /// filled in, and ids naming another run or step are refused, so an event can never describe
    /// a different record than the one committed with it. Every backend calls this.
    pub fn bind_to(&self, run_id: &str, step_id: Option<&str>) -> Result<NewEvent, StoreError> {
        let mut bound = self.clone();
        match &self.run_id {
            Some(given) if given != run_id => {
                return Err(StoreError::invalid(format!(
                    "event names run `{given}` but is written with run `{run_id}`"
                )));
            }
            _ => bound.run_id = Some(run_id.to_owned()),
        }
        if let Some(step_id) = step_id {
            match &self.step_id {
                Some(given) if given != step_id => {
                    return Err(StoreError::invalid(format!(
                        "event names step `{given}` but is written with step `{step_id}`"
                    )));
                }
                _ => bound.step_id = Some(step_id.to_owned()),
            }
        }
        Ok(bound)
    }

    /// The stored event at position `seq` after the event whose hash is `prev_hash`
    /// ([`crate::GENESIS_HASH`] for the first). Backends call this inside their append
    /// transaction, so every backend chains events identically.
    pub fn seal(&self, seq: u64, prev_hash: &str) -> Event {
        let hash = chain::event_hash(prev_hash, &self.body(seq));
        Event {
            seq,
            at_ms: self.at_ms,
            kind: self.kind.clone(),
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            release_id: self.release_id.clone(),
            actor: self.actor.clone(),
            payload: self.payload.clone(),
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    fn body(&self, seq: u64) -> EventBody<'_> {
        EventBody {
            seq,
            at_ms: self.at_ms,
            kind: &self.kind,
            run_id: self.run_id.as_deref(),
            step_id: self.step_id.as_deref(),
            release_id: self.release_id.as_deref(),
            actor: &self.actor,
            payload: &self.payload,
        }
    }
}

/// A stored event. `seq` is global, starts at 1 and has no gaps; `hash` chains it to the event
/// before it (see [`crate::verify_chain`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub release_id: Option<String>,
    pub actor: String,
    pub payload: Value,
    /// Lowercase hex BLAKE3 hash of the previous event, or [`crate::GENESIS_HASH`].
    pub prev_hash: String,
    /// Lowercase hex `blake3(prev_hash ‖ canonical bytes of this event)`.
    pub hash: String,
}

impl Event {
    /// The hash this event should have, recomputed from its content and `prev_hash`.
    pub fn computed_hash(&self) -> String {
        chain::event_hash(&self.prev_hash, &self.body())
    }

    /// The canonical JSON that is hashed (after `prev_hash`) for this event.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.body().canonical_bytes()
    }

    fn body(&self) -> EventBody<'_> {
        EventBody {
            seq: self.seq,
            at_ms: self.at_ms,
            kind: &self.kind,
            run_id: self.run_id.as_deref(),
            step_id: self.step_id.as_deref(),
            release_id: self.release_id.as_deref(),
            actor: &self.actor,
            payload: &self.payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bind_fills_missing_ids_and_refuses_other_ones() {
        let event = NewEvent::new("step_started", "alice", 5);
        let bound = event.bind_to("run-1", Some("drain")).expect("binds");
        assert_eq!(bound.run_id.as_deref(), Some("run-1"));
        assert_eq!(bound.step_id.as_deref(), Some("drain"));

        let same = event.clone().run("run-1").step("drain");
        assert_eq!(same.bind_to("run-1", Some("drain")).expect("binds"), bound);

        let other_run = event.clone().run("run-2");
        let error = other_run.bind_to("run-1", None).expect_err("other run");
        assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");

        let other_step = event.run("run-1").step("flip");
        assert!(other_step.bind_to("run-1", Some("drain")).is_err());
        // Without a step to bind to, the event's step is kept as given.
        assert_eq!(
            other_step
                .bind_to("run-1", None)
                .expect("binds")
                .step_id
                .as_deref(),
            Some("flip")
        );
    }

    #[test]
    fn sealed_event_hash_matches_recomputation() {
        let event = NewEvent::new("note", "bob", 1_700_000_000_000)
            .release("rel-1")
            .payload(json!({"b": 1, "a": [1.5, "x"]}));
        let sealed = event.seal(1, crate::GENESIS_HASH);
        assert_eq!(sealed.hash.len(), 64);
        assert_eq!(sealed.computed_hash(), sealed.hash);
        // The sequence number is part of what is hashed.
        assert_ne!(event.seal(2, crate::GENESIS_HASH).hash, sealed.hash);
        // So is the previous hash.
        assert_ne!(event.seal(1, &sealed.hash).hash, sealed.hash);
    }
}
