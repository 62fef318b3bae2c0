//! The five legs of a game day, read from a release's journal (pure: the caller passes the
//! events). Each leg is measured between two journaled moments, so a report can always be
//! checked against the journal it came from:
//!
//! | leg          | from                         | to                                          |
//! |--------------|------------------------------|---------------------------------------------|
//! | detection    | `gameday_fault_injected`     | first `verdict: rollback_required` or `rollback_requested` after it |
//! | decision     | detection                    | the `decision` that reached the quorum      |
//! | start        | decision                     | `execution_started` (against `start_within`) |
//! | procedure    | `execution_started`          | `execution_finished` (against `expected_duration`) |
//! | verification | `execution_finished`         | `rolled_back` / `rollback_unverified`       |
//!
//! It must not judge anything the journal does not say: a leg whose end never came is `None`.

use backout_store::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of the event that marks the injected fault.
pub const FAULT_INJECTED: &str = "gameday_fault_injected";

/// One journaled moment of the loop: when, who (the event's actor), and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    pub at_ms: i64,
    pub by: String,
    /// The journal's `seq` of the event, so a reader can find it (`backout report REL`).
    pub seq: u64,
    /// What happened in words: the tripped criteria, the run's end state, the verification.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub what: String,
}

/// The measured loop of one game day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legs {
    pub fault: Option<Moment>,
    pub detected: Option<Moment>,
    pub decided: Option<Moment>,
    /// The decision came after `escalated` (no decision within `fallback.after`).
    pub fallback_reached: bool,
    pub started: Option<Moment>,
    pub finished: Option<Moment>,
    pub verified: Option<Moment>,
    /// The plan's `execution.start_within`, in ms.
    pub start_within_ms: Option<i64>,
    /// The plan's `expected_duration`, in ms.
    pub expected_ms: Option<i64>,
}

/// The names of the legs, in order (the keys of [`Legs::durations`]).
pub const LEG_NAMES: [&str; 5] = [
    "detection",
    "decision",
    "start",
    "procedure",
    "verification",
];

impl Legs {
    /// Reads the legs from a release's events, in journal order. Moments before the fault
    /// (a verdict of an earlier incident) do not count.
    pub fn from_events(
        events: &[Event],
        start_within_ms: Option<i64>,
        expected_ms: Option<i64>,
    ) -> Legs {
        let mut legs = Legs {
            start_within_ms,
            expected_ms,
            ..Legs::default()
        };
        let moment = |e: &Event, what: String| Moment {
            at_ms: e.at_ms,
            by: e.actor.clone(),
            seq: e.seq,
            what,
        };
        let text = |e: &Event, key: &str| {
            e.payload
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        for e in events {
            match e.kind.as_str() {
                FAULT_INJECTED if legs.fault.is_none() => {
                    legs.fault = Some(moment(e, text(e, "command")));
                }
                _ if legs.fault.is_none() => {}
                "verdict"
                    if legs.detected.is_none() && text(e, "verdict") == "rollback_required" =>
                {
                    legs.detected = Some(moment(e, tripped(&e.payload)));
                }
                "rollback_requested" if legs.detected.is_none() => {
                    legs.detected = Some(moment(e, format!("requested: {}", text(e, "reason"))));
                }
                "escalated"
                    if legs.detected.is_some()
                        && legs.decided.is_none()
                        && text(e, "reason") != "start_within" =>
                {
                    legs.fallback_reached = true;
                }
                "decision"
                    if legs.detected.is_some()
                        && legs.decided.is_none()
                        && e.payload.get("approved") == Some(&Value::Bool(true)) =>
                {
                    let how = if e.payload.get("fallback") == Some(&Value::Bool(true)) {
                        legs.fallback_reached = true;
                        "approved as fallback decider"
                    } else {
                        "approved"
                    };
                    legs.decided = Some(moment(e, how.to_string()));
                }
                "execution_started" if legs.decided.is_some() && legs.started.is_none() => {
                    legs.started = Some(moment(e, String::new()));
                }
                "execution_abandoned" if legs.finished.is_none() => legs.started = None,
                "execution_finished" if legs.started.is_some() && legs.finished.is_none() => {
                    legs.finished = Some(moment(e, text(e, "state")));
                }
                "rolled_back" | "rollback_verified" | "rollback_unverified"
                    if legs.finished.is_some() && legs.verified.is_none() =>
                {
                    let what = if e.kind == "rollback_unverified" {
                        format!("unverified: {}", text(e, "reason"))
                    } else {
                        "verified".to_string()
                    };
                    legs.verified = Some(moment(e, what));
                }
                _ => {}
            }
        }
        legs
    }

    /// Each leg's duration in ms, in the order of [`LEG_NAMES`] (`None`: not reached).
    pub fn durations(&self) -> [Option<i64>; 5] {
        let between = |a: &Option<Moment>, b: &Option<Moment>| match (a, b) {
            (Some(a), Some(b)) => Some(b.at_ms - a.at_ms),
            _ => None,
        };
        [
            between(&self.fault, &self.detected),
            between(&self.detected, &self.decided),
            between(&self.decided, &self.started),
            between(&self.started, &self.finished),
            between(&self.finished, &self.verified),
        ]
    }

    /// Whether every leg was reached and the rollback verified.
    pub fn complete(&self) -> bool {
        self.durations().iter().all(Option::is_some)
            && self.verified.as_ref().is_some_and(|v| v.what == "verified")
    }

    /// The report as JSON: the moments plus `durations_ms` by leg name.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            let durations: serde_json::Map<String, Value> = LEG_NAMES
                .iter()
                .zip(self.durations())
                .map(|(name, d)| ((*name).to_string(), d.map_or(Value::Null, Value::from)))
                .collect();
            map.insert("durations_ms".into(), Value::Object(durations));
        }
        value
    }

    /// One line for the document's Q9 and the trend table: "detection 48 s, decision 6 m
    /// (fallback reached), start 1 m of 15 m allowed, procedure 11 m of 15 m expected,
    /// verification 30 s".
    pub fn summary(&self) -> String {
        let [detection, decision, start, procedure, verification] = self.durations();
        let mut parts = Vec::new();
        let show = |d: Option<i64>| d.map_or("not reached".to_string(), human);
        parts.push(format!("detection {}", show(detection)));
        parts.push(format!(
            "decision {}{}",
            show(decision),
            if self.fallback_reached {
                " (fallback reached)"
            } else {
                ""
            }
        ));
        parts.push(match (start, self.start_within_ms) {
            (Some(s), Some(w)) => format!(
                "start {} of {} allowed{}",
                human(s),
                human(w),
                if s > w { " (LATE)" } else { "" }
            ),
            _ => format!("start {}", show(start)),
        });
        parts.push(match (procedure, self.expected_ms) {
            (Some(p), Some(e)) => format!(
                "procedure {} of {} expected{}",
                human(p),
                human(e),
                if p > e { " (OVER)" } else { "" }
            ),
            _ => format!("procedure {}", show(procedure)),
        });
        let unverified = self.verified.as_ref().is_some_and(|v| v.what != "verified");
        parts.push(format!(
            "verification {}{}",
            show(verification),
            if unverified { " (did not verify)" } else { "" }
        ));
        parts.join(", ")
    }

    /// Who acted, in order: "detected by backout:watch, decided by dana@example.com,
    /// started by pat@example.com".
    pub fn actors(&self) -> String {
        let mut parts = Vec::new();
        for (what, m) in [
            ("detected", &self.detected),
            ("decided", &self.decided),
            ("started", &self.started),
        ] {
            if let Some(m) = m {
                parts.push(format!("{what} by {}", m.by));
            }
        }
        parts.join(", ")
    }
}

/// The criteria a `rollback_required` verdict names as tripped.
fn tripped(payload: &Value) -> String {
    let names: Vec<&str> = payload
        .pointer("/evidence/criteria")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter(|c| c.get("status").and_then(Value::as_str) == Some("tripped"))
                .filter_map(|c| c.get("criterion").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "rollback required".into()
    } else {
        format!("tripped: {}", names.join(", "))
    }
}

/// `48 s`, `6 m`, `1 h 5 m`, `850 ms`: a leg as people read it.
pub fn human(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    if s < 120 {
        return if ms < 10_000 {
            format!("{:.1} s", ms as f64 / 1000.0)
        } else {
            format!("{s} s")
        };
    }
    let m = (s + 30) / 60;
    if m < 120 {
        return format!("{m} m");
    }
    format!("{} h {} m", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, at_ms: i64, kind: &str, actor: &str, payload: Value) -> Event {
        Event {
            seq,
            at_ms,
            kind: kind.into(),
            run_id: None,
            step_id: None,
            release_id: Some("rel-1".into()),
            actor: actor.into(),
            payload,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn tripped_verdict(seq: u64, at_ms: i64) -> Event {
        event(
            seq,
            at_ms,
            "verdict",
            "backout:watch",
            json!({"verdict": "rollback_required", "evidence": {"criteria": [
                {"criterion": "up", "status": "tripped"}]}}),
        )
    }

    #[test]
    fn five_legs_from_the_journal_with_fallback_and_budgets() {
        let events = vec![
            tripped_verdict(1, 500), // before the fault: an earlier incident, ignored
            event(2, 1_000, FAULT_INJECTED, "ann", json!({"command": "stop"})),
            tripped_verdict(3, 49_000),
            event(
                4,
                60_000,
                "escalated",
                "backout",
                json!({"reason": "no_decision"}),
            ),
            event(
                5,
                409_000,
                "decision",
                "erin",
                json!({"approved": true, "fallback": true}),
            ),
            event(6, 469_000, "execution_started", "pat", json!({})),
            event(
                7,
                1_129_000,
                "execution_finished",
                "pat",
                json!({"state": "succeeded"}),
            ),
            event(8, 1_159_000, "rolled_back", "pat", json!({})),
        ];
        let legs = Legs::from_events(&events, Some(900_000), Some(900_000));
        assert_eq!(
            legs.durations(),
            [
                Some(48_000),
                Some(360_000),
                Some(60_000),
                Some(660_000),
                Some(30_000)
            ]
        );
        assert!(legs.complete());
        assert_eq!(legs.detected.as_ref().map(|d| d.seq), Some(3));
        assert_eq!(
            legs.summary(),
            "detection 48 s, decision 6 m (fallback reached), start 60 s of 15 m allowed, \
             procedure 11 m of 15 m expected, verification 30 s"
        );
        assert_eq!(
            legs.actors(),
            "detected by backout:watch, decided by erin, started by pat"
        );
        assert_eq!(legs.to_json()["durations_ms"]["decision"], 360_000);
    }

    #[test]
    fn legs_that_never_came_are_not_reached_and_the_report_is_incomplete() {
        let events = vec![
            event(1, 1_000, FAULT_INJECTED, "ann", json!({"command": "stop"})),
            tripped_verdict(2, 3_000),
            event(3, 4_000, "decision", "dana", json!({"approved": false})),
        ];
        let legs = Legs::from_events(&events, None, None);
        assert_eq!(legs.durations(), [Some(2_000), None, None, None, None]);
        assert!(!legs.complete());
        assert!(legs.summary().contains("decision not reached"));
    }

    #[test]
    fn an_unverified_rollback_is_measured_but_not_complete() {
        let events = vec![
            event(1, 0, FAULT_INJECTED, "ann", json!({})),
            event(
                2,
                10,
                "rollback_requested",
                "ann",
                json!({"reason": "slow"}),
            ),
            event(3, 20, "decision", "dana", json!({"approved": true})),
            event(4, 30, "execution_started", "pat", json!({})),
            event(
                5,
                40,
                "execution_finished",
                "pat",
                json!({"state": "succeeded"}),
            ),
            event(
                6,
                50,
                "rollback_unverified",
                "pat",
                json!({"reason": "still down"}),
            ),
        ];
        let legs = Legs::from_events(&events, None, None);
        assert!(legs.durations().iter().all(Option::is_some));
        assert!(!legs.complete());
        assert!(legs.summary().ends_with("(did not verify)"));
    }
}
