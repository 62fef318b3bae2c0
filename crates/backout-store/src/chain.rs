//! The journal's hash chain: how an event is turned into canonical bytes, how it is hashed onto
//! the previous event, and how a sequence of events read back is verified (`audit verify`).
//!
//! `hash = blake3(prev_hash ‖ canonical)`, where `prev_hash` is the previous event's hash as its
//! 64 lowercase hex ASCII characters ([`GENESIS_HASH`] for seq 1) and `canonical` is the UTF-8 JSON
//! object `{"actor","at_ms","kind","payload","release_id","run_id","seq","step_id","v":1}`: keys
//! sorted bytewise at every depth, no whitespace, absent ids as `null`, strings and numbers as
//! `serde_json` writes them. `v` names this encoding so it can change without breaking old chains.
//! The chain detects edits, deletions and reordering of stored events; it cannot detect a rewrite
//! of the whole tail, which needs the head hash kept elsewhere (a report, a receipt).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::Event;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version of the canonical encoding, hashed into every event as `v`.
const CANONICAL_VERSION: u32 = 1;

/// The fields of an event that are hashed, borrowed from a [`crate::NewEvent`] or an [`Event`].
pub(crate) struct EventBody<'a> {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: &'a str,
    pub run_id: Option<&'a str>,
    pub step_id: Option<&'a str>,
    pub release_id: Option<&'a str>,
    pub actor: &'a str,
    pub payload: &'a Value,
}

impl EventBody<'_> {
    pub(crate) fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        // Keys in bytewise order, as `canonical_json` would sort them.
        out.push_str("{\"actor\":");
        write_string(self.actor, &mut out);
        let _ = write!(out, ",\"at_ms\":{}", self.at_ms);
        out.push_str(",\"kind\":");
        write_string(self.kind, &mut out);
        out.push_str(",\"payload\":");
        write_canonical(self.payload, &mut out);
        out.push_str(",\"release_id\":");
        write_optional(self.release_id, &mut out);
        out.push_str(",\"run_id\":");
        write_optional(self.run_id, &mut out);
        let _ = write!(out, ",\"seq\":{}", self.seq);
        out.push_str(",\"step_id\":");
        write_optional(self.step_id, &mut out);
        let _ = write!(out, ",\"v\":{CANONICAL_VERSION}}}");
        out.into_bytes()
    }
}

/// `blake3(prev_hash ‖ canonical bytes)` as lowercase hex.
pub(crate) fn event_hash(prev_hash: &str, body: &EventBody<'_>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(&body.canonical_bytes());
    hasher.finalize().to_hex().to_string()
}

/// `value` as compact JSON with object keys sorted bytewise at every depth. Backends store
/// payloads in this form, so what is stored is exactly what is hashed.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        // Scalars: `Display` of a `Value` is its compact JSON.
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    // serde_json's escaping of a string, without building a `Value`.
    let _ = write!(out, "{}", JsonStr(text));
}

fn write_optional(text: Option<&str>, out: &mut String) {
    match text {
        Some(text) => write_string(text, out),
        None => out.push_str("null"),
    }
}

/// Displays a string as a JSON string literal (quotes and escapes as `serde_json` writes them).
struct JsonStr<'a>(&'a str);

impl std::fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut writer = FmtWriter(f);
        serde_json::to_writer(&mut writer, self.0).map_err(|_| std::fmt::Error)
    }
}

/// Adapts a `fmt::Formatter` to `io::Write` for `serde_json::to_writer`, which only ever writes
/// valid UTF-8.
struct FmtWriter<'a, 'b>(&'a mut std::fmt::Formatter<'b>);

impl std::io::Write for FmtWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.write_str(text).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The last event of a verified chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

/// Result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSummary {
    /// Number of events verified.
    pub checked: u64,
    /// The last verified (or trusted, see [`ChainVerifier::after`]) event; `None` for an empty
    /// journal.
    pub head: Option<ChainHead>,
}

/// The first event at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event chain broken at seq {seq}: {kind}")]
pub struct ChainBreak {
    /// `seq` of the offending event as stored.
    pub seq: u64,
    pub kind: ChainBreakKind,
}

/// How the chain is broken at [`ChainBreak::seq`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreakKind {
    /// Events are missing or out of order: this one should have been `expected`.
    #[error("expected seq {expected}, events are missing or out of order")]
    Gap { expected: u64 },
    /// `prev_hash` is not the previous event's hash: the previous event was rewritten (with a
    /// recomputed hash) or this link was edited.
    #[error("prev_hash does not match the hash of the event before it")]
    PrevHashMismatch,
    /// The stored hash does not match the event's content: this event was edited.
    #[error("hash does not match the event's content")]
    HashMismatch,
}

/// Verifies events one at a time, in `seq` order, so a long journal can be checked page by page.
/// After the first [`ChainBreak`] the verifier's state is unspecified; stop there.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: String,
    checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier expecting the journal from seq 1.
    pub fn new() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            checked: 0,
        }
    }

    /// A verifier for the events after `head`, an event already trusted (e.g. verified earlier).
    pub fn after(head: &ChainHead) -> Self {
        ChainVerifier {
            next_seq: head.seq + 1,
            prev_hash: head.hash.clone(),
            checked: 0,
        }
    }

    /// Checks the next event: its seq follows the previous one, it links to the previous hash,
    /// and its own hash matches its content.
    pub fn push(&mut self, event: &Event) -> Result<(), ChainBreak> {
        let broken = |kind| ChainBreak {
            seq: event.seq,
            kind,
        };
        if event.seq != self.next_seq {
            return Err(broken(ChainBreakKind::Gap {
                expected: self.next_seq,
            }));
        }
        if event.prev_hash != self.prev_hash {
            return Err(broken(ChainBreakKind::PrevHashMismatch));
        }
        if event.computed_hash() != event.hash {
            return Err(broken(ChainBreakKind::HashMismatch));
        }
        self.next_seq = event.seq + 1;
        self.prev_hash.clone_from(&event.hash);
        self.checked += 1;
        Ok(())
    }

    /// What has been verified so far.
    pub fn summary(&self) -> ChainSummary {
        ChainSummary {
            checked: self.checked,
            head: (self.next_seq > 1).then(|| ChainHead {
                seq: self.next_seq - 1,
                hash: self.prev_hash.clone(),
            }),
        }
    }
}

/// Verifies a whole journal read back from a store, starting at seq 1, and reports the first
/// broken event.
pub fn verify_chain<'a>(
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<ChainSummary, ChainBreak> {
    let mut verifier = ChainVerifier::new();
    for event in events {
        verifier.push(event)?;
    }
    Ok(verifier.summary())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;
    use serde_json::json;

    fn journal(count: u64) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        for seq in 1..=count {
            let prev = events.last().map_or(GENESIS_HASH, |e| e.hash.as_str());
            let new = NewEvent::new("tick", "tester", 1000 + seq as i64)
                .run("run-1")
                .payload(json!({"n": seq, "nested": {"z": true, "a": null}}));
            events.push(new.seal(seq, prev));
        }
        events
    }

    #[test]
    fn intact_chain_verifies() {
        let events = journal(5);
        let summary = verify_chain(&events).expect("intact");
        assert_eq!(summary.checked, 5);
        assert_eq!(
            summary.head,
            Some(ChainHead {
                seq: 5,
                hash: events[4].hash.clone()
            })
        );
        assert_eq!(verify_chain(&[]).expect("empty").head, None);
    }

    #[test]
    fn edited_payload_breaks_at_that_event() {
        let mut events = journal(5);
        events[2].payload = json!({"n": 99});
        let error = verify_chain(&events).expect_err("tampered");
        assert_eq!(
            error,
            ChainBreak {
                seq: 3,
                kind: ChainBreakKind::HashMismatch
            }
        );
        assert_eq!(
            error.to_string(),
            "event chain broken at seq 3: hash does not match the event's content"
        );
    }

    #[test]
    fn every_hashed_field_is_covered() {
        let edits: Vec<fn(&mut Event)> = vec![
            |e| e.at_ms += 1,
            |e| e.kind.push('x'),
            |e| e.run_id = None,
            |e| e.step_id = Some("s".into()),
            |e| e.release_id = Some("r".into()),
            |e| e.actor.push('x'),
        ];
        for edit in edits {
            let mut events = journal(3);
            edit(&mut events[1]);
            assert_eq!(
                verify_chain(&events).expect_err("edited").kind,
                ChainBreakKind::HashMismatch
            );
        }
    }

    #[test]
    fn rehashed_event_breaks_the_next_link() {
        let mut events = journal(5);
        events[2].actor = "mallory".into();
        events[2].hash = events[2].computed_hash();
        let error = verify_chain(&events).expect_err("tampered");
        assert_eq!(
            error,
            ChainBreak {
                seq: 4,
                kind: ChainBreakKind::PrevHashMismatch
            }
        );
    }

    #[test]
    fn deleted_and_reordered_events_are_gaps() {
        let mut events = journal(5);
        events.remove(2);
        assert_eq!(
            verify_chain(&events).expect_err("deleted"),
            ChainBreak {
                seq: 4,
                kind: ChainBreakKind::Gap { expected: 3 }
            }
        );
        let mut events = journal(5);
        events.swap(1, 2);
        assert_eq!(
            verify_chain(&events).expect_err("swapped"),
            ChainBreak {
                seq: 3,
                kind: ChainBreakKind::Gap { expected: 2 }
            }
        );
    }

    #[test]
    fn verifier_resumes_after_a_trusted_head() {
        let events = journal(6);
        let head = verify_chain(&events[..3])
            .expect("prefix")
            .head
            .expect("head");
        let mut verifier = ChainVerifier::after(&head);
        for event in &events[3..] {
            verifier.push(event).expect("suffix");
        }
        assert_eq!(verifier.summary().checked, 3);
        assert_eq!(verifier.summary().head.expect("head").seq, 6);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": [{"y": 1, "x": "é\n\"q\""}], "a": null, "B": 1.5});
        assert_eq!(
            canonical_json(&value),
            r#"{"B":1.5,"a":null,"b":[{"x":"é\n\"q\"","y":1}]}"#
        );
    }

    #[test]
    fn canonical_bytes_are_the_canonical_json_of_the_event() {
        let event = &journal(1)[0];
        let expected = json!({
            "actor": event.actor, "at_ms": event.at_ms, "kind": event.kind,
            "payload": event.payload, "release_id": null, "run_id": event.run_id,
            "seq": event.seq, "step_id": null, "v": 1,
        });
        assert_eq!(
            String::from_utf8(event.canonical_bytes()).expect("utf-8"),
            canonical_json(&expected)
        );
        let mut hasher = blake3::Hasher::new();
        hasher.update(GENESIS_HASH.as_bytes());
        hasher.update(canonical_json(&expected).as_bytes());
        assert_eq!(event.hash, hasher.finalize().to_hex().as_str());
    }

    #[test]
    fn canonical_form_survives_a_round_trip_through_text() {
        // Payloads are re-parsed from stored text before verification; floats must come back
        // bit for bit or an intact chain would look tampered.
        let value = json!({
            "floats": [0.1, 1e300, 5e-324, -0.0, 1.7976931348623157e308, 2.2250738585072014e-308,
                       0.30000000000000004, 123456.789e-3],
            "ints": [u64::MAX, i64::MIN, 0],
            "text": "tab\t nul\u{0} emoji 🦀",
        });
        let text = canonical_json(&value);
        let reparsed: Value = serde_json::from_str(&text).expect("valid json");
        assert_eq!(reparsed, value);
        assert_eq!(canonical_json(&reparsed), text);
    }
}
