//! The notice: everything a notification can mention about one lifecycle event of a release.
//!
//! The same value is the JSON body of webhook and command deliveries and the context of the
//! message templates, so a plan author's template and a webhook consumer see the same names.
//! Absent parts are left out of the JSON rather than sent as `null`, which makes a template that
//! prints one of them fail with "`run.duration` is undefined" instead of printing nothing.
//!
//! The caller builds notices from the journal; nothing here reads a store or a clock.
//!
//! `verdict`, `decision` and `run` are JSON chosen by the caller. The built-in templates read
//! these fields when present, and ignore anything else:
//!
//! ```json
//! "verdict": {
//!   "verdict": "rollback_required",
//!   "requested": { "by": "alice", "reason": "customers report failed payments" },
//!   "criteria": [
//!     { "name": "error-rate", "status": "tripped", "value": "2.4", "threshold": "> 1",
//!       "labels": { "route": "/pay" }, "reason": "2.4 {route=\"/pay\"} is above 1" }
//!   ]
//! },
//! "decision": { "actor": "bob", "decision": "approve", "reason": "error rate climbing",
//!               "override_window": false },
//! "run": {
//!   "id": "run-7", "state": "completed", "duration": "4m12s",
//!   "steps": { "total": 6, "done": 6, "failed": 0 },
//!   "step": { "id": "drain-traffic", "error": "exit 1: no such deployment",
//!             "performers": ["oncall"], "instructions": "Drain the EU pool in the console." }
//! }
//! ```

use backout_model::plan::Event;
use serde::Serialize;

/// Everything a message can mention. Serialized as the webhook and command JSON body and used
/// as the template context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    /// The lifecycle event; serialized as its name, e.g. `"rollback_required"`.
    pub event: Event,
    /// The idempotency key: the id of the journal event this notice is about. Every delivery
    /// sends it (`Idempotency-Key`, `X-Backout-Event-Id`, `BACKOUT_EVENT_ID`) so receivers can
    /// drop the duplicates that retries produce.
    pub event_id: String,
    /// When the event happened, RFC 3339 in UTC.
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseInfo>,
    /// The plan, as `service/name` or the plan's service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The verdict and its evidence (see the module documentation for the fields templates use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<serde_json::Value>,
    /// Who decided what, why, and whether they overrode a closed window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<serde_json::Value>,
    /// The backout run: id, state, duration to the second ("4m12s", as
    /// `backout_model::Duration::measured` spells it), steps summary, the step concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<serde_json::Value>,
    /// Who may decide now (people or group names). For `escalated`, the fallback deciders.
    pub deciders: Vec<String>,
    /// Where to look: the release, run and decision pages of the web UI when backout knows its
    /// public URL (`BACKOUT_PUBLIC_URL`, `serve --public-url`), labelled `Release`, `Run`,
    /// `Decide` or `Decision`.
    pub links: Vec<Link>,
    /// One line in plain words, for receivers that show a single line (a status page, a pager).
    pub summary: String,
}

/// The release a notice is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReleaseInfo {
    pub id: String,
    pub service: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// The plan's `release.change_ticket`: the change record this release belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowInfo>,
}

/// The release's rollback window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowInfo {
    /// RFC 3339 in UTC.
    pub closes_at: String,
    pub closed: bool,
    /// A decider acted after the window closed (`--override-window`).
    #[serde(rename = "override")]
    pub overridden: bool,
    /// The plan's `window.after_close`: what to do instead once the window has closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_close: Option<String>,
}

/// A labelled link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

impl Notice {
    /// A notice with only the required parts; fill in the rest field by field.
    pub fn new(
        event: Event,
        event_id: impl Into<String>,
        at: impl Into<String>,
        summary: impl Into<String>,
    ) -> Notice {
        Notice {
            event,
            event_id: event_id.into(),
            at: at.into(),
            release: None,
            plan: None,
            verdict: None,
            decision: None,
            run: None,
            deciders: Vec::new(),
            links: Vec::new(),
            summary: summary.into(),
        }
    }

    /// Whether the event happened under an overridden window: the decision says
    /// `override_window: true`, or the release's window is marked overridden. Messages say so
    /// loudly.
    pub fn window_overridden(&self) -> bool {
        let by_decision = self
            .decision
            .as_ref()
            .and_then(|d| d.get("override_window"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let by_window = self
            .release
            .as_ref()
            .and_then(|r| r.window.as_ref())
            .is_some_and(|w| w.overridden);
        by_decision || by_window
    }

    /// The change ticket of the release, when the plan names one.
    pub fn change_ticket(&self) -> Option<&str> {
        self.release.as_ref()?.change_ticket.as_deref()
    }

    /// The notice as the JSON body of webhook and command deliveries.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a notice is plain data and always serializes")
    }
}
