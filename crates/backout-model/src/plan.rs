//! The validated plan: what every later stage (render, executor, watchers, server) works with.
//!
//! A [`Plan`] exists only for a plan that linted without errors, so its invariants hold: every
//! step has exactly one kind, every reference resolves, the step graph is acyclic, defaults are
//! applied. It carries no source locations; diagnostics are lint's business.

use serde::Serialize;

use crate::condition::Condition;
use crate::duration::Duration;
pub use crate::spec::{NoData, OnError, Opens};

/// A validated backout plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub description: Option<String>,
    pub release: Release,
    pub owners: Owners,
    /// Named groups of identities, in written order.
    pub people: Vec<Group>,
    pub criteria: Answer<Criteria>,
    pub window: Answer<Window>,
    pub authorization: Answer<Authorization>,
    pub execution: Answer<Execution>,
    pub procedure: Answer<Procedure>,
    pub contingency: Answer<Vec<Contingency>>,
    pub workarounds: Answer<Vec<Workaround>>,
    pub expected_duration: Answer<Duration>,
    pub communication: Answer<Communication>,
    pub testing: Answer<Testing>,
}

/// A question's answer, or the stated reason it does not apply.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer<T> {
    Given(T),
    NotApplicable(String),
}

impl<T> Answer<T> {
    pub fn given(&self) -> Option<&T> {
        match self {
            Answer::Given(t) => Some(t),
            Answer::NotApplicable(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Release {
    pub service: String,
    pub version: String,
    pub rollback_to: String,
    pub environment: String,
    pub change_ticket: Option<String>,
    /// Milestones of the forward deployment, in order.
    pub checkpoints: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Owners {
    pub deployment_engineer: String,
    pub authors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
}

/// Q1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Criteria {
    pub sources: Sources,
    pub rollback_when: Vec<Criterion>,
    pub success_when: Option<Success>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sources {
    pub prometheus: Option<Endpoint>,
    pub alertmanager: Option<Endpoint>,
}

/// A monitoring endpoint. Strings may hold `${VAR}` references, resolved only when used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Criterion {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub source: Source,
    pub fails_if: Option<Condition>,
    pub passes_if: Option<Condition>,
    pub every: Duration,
    pub delay: Duration,
    pub trips_after: u32,
    pub no_data: NoData,
    pub errors_after: u32,
    /// What a source error counts as (default inconclusive).
    pub on_error: OnError,
    /// Listed in `authorization.automatic` or marked `authorize: automatic`.
    pub automatic: bool,
    pub timeout: Duration,
    /// Measured and reported, never trips or decides (`shadow: true`).
    pub shadow: bool,
    /// Failing measurements in the window, in a row or not, that trip it (`trips_after_total`).
    pub trips_after_total: Option<u32>,
    /// The past value baseline conditions compare with (Prometheus criteria only).
    pub baseline: Option<Baseline>,
}

/// When a criterion's baseline is measured.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The same query evaluated this long before each measurement.
    Offset(Duration),
    /// The same query evaluated this long before the release's window opened.
    BeforeDeploy(Duration),
}

impl Baseline {
    /// The baseline in words: "its value 1d earlier", "its value 1h before the deploy".
    pub fn words(&self) -> String {
        match self {
            Baseline::Offset(d) => format!("its value {d} earlier"),
            Baseline::BeforeDeploy(d) => format!("its value {d} before the deploy"),
        }
    }

    /// The instant (ms since the epoch) whose value is the baseline of a measurement at `now_ms`
    /// in a window opened at `opened_at_ms`.
    pub fn at_ms(&self, now_ms: i64, opened_at_ms: i64) -> i64 {
        let ms = |d: &Duration| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
        match self {
            Baseline::Offset(d) => now_ms.saturating_sub(ms(d)),
            Baseline::BeforeDeploy(d) => opened_at_ms.saturating_sub(ms(d)),
        }
    }
}

impl Criterion {
    /// The title when given, else the id.
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }
}

/// Where a criterion or check reads its signal.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// PromQL instant query.
    Prometheus(String),
    /// Failing while the alert fires.
    Alertmanager {
        alert: String,
        matchers: Vec<(String, String)>,
    },
    Http(HttpCheck),
    /// Exit code, or a number on stdout when a condition is given.
    Command(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub expect_status: Option<u16>,
    pub expect_body: Option<String>,
    pub json_pointer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Success {
    pub hold: Duration,
    pub checks: Vec<String>,
}

/// Q2.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    pub opens: Opens,
    pub closes_after: Duration,
    pub closes_at_checkpoint: Option<String>,
    pub after_close: Option<String>,
    /// How long before the window closes on time `window_closing` is announced.
    pub closing_notice: Duration,
}

/// Q3.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Authorization {
    pub deciders: String,
    pub quorum: u32,
    pub fallback: Option<Fallback>,
    /// Criteria that may approve on their own (from `automatic` and `authorize: automatic`).
    pub automatic: Vec<String>,
    pub separation_of_duties: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fallback {
    pub after: Duration,
    pub deciders: String,
}

/// Q4.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Execution {
    pub performers: String,
    pub start_within: Option<Duration>,
}

/// Q5.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Procedure {
    pub max_parallel: u32,
    pub preconditions: Vec<Precondition>,
    pub steps: Vec<Step>,
    pub verify_after: Option<VerifyAfter>,
    /// `procedure.pass_env`: variables of backout's environment passed to steps by name.
    pub pass_env: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Precondition {
    pub id: String,
    pub title: Option<String>,
    pub action: Action,
    pub timeout: Option<Duration>,
}

/// Something a precondition does; the subset of step kinds that run without a person.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Run(String),
    Exec(Vec<String>),
    Http(HttpRequest),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub id: String,
    pub title: Option<String>,
    pub kind: StepKind,
    pub needs: Vec<String>,
    pub expected: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub idempotent: bool,
    pub when_checkpoint: Option<String>,
    pub verify: Option<Verify>,
    pub on_failure: OnFailure,
    pub env: Vec<(String, String)>,
    /// Names of values captured from stdout.
    pub outputs: Vec<String>,
    /// For a manual step: how often to remind its people while it waits, and when to escalate.
    pub manual_wait: ManualWait,
}

/// Reminders and escalation of a manual step that waits for a person.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ManualWait {
    pub remind_every: Option<Duration>,
    pub timeout: Option<Duration>,
}

impl Step {
    /// The title when given, else the id.
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }
}

/// What a step does. Exactly one per step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Run(String),
    Exec(Vec<String>),
    Http(HttpRequest),
    Manual {
        by: String,
        instructions: String,
    },
    Notify {
        channels: Vec<String>,
        message: Option<String>,
    },
    Wait(Wait),
}

impl StepKind {
    /// The kind's keyword as written in plans.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Run(_) => "run",
            StepKind::Exec(_) => "exec",
            StepKind::Http(_) => "http",
            StepKind::Manual { .. } => "manual",
            StepKind::Notify { .. } => "notify",
            StepKind::Wait(_) => "wait",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// `None` accepts any 2xx.
    pub expect_status: Option<u16>,
    pub expect_body: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    For(Duration),
    Until {
        criterion: String,
        timeout: Option<Duration>,
    },
}

/// A check after a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verify {
    pub check: Check,
    pub fails_if: Option<Condition>,
    pub passes_if: Option<Condition>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Http(HttpCheck),
    Command(String),
    Prometheus(String),
    Criterion(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Halt,
    Continue,
    /// The run pauses (`waiting`) for a performer: `backout retry`, `skip` or `abort`.
    Ask,
    Contingency(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyAfter {
    pub checks: Vec<String>,
    pub hold: Duration,
}

/// Q6: a branch run when a step fails.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contingency {
    pub id: String,
    pub description: String,
    pub steps: Vec<Step>,
}

/// Q6: an alternative to a full backout.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workaround {
    pub id: String,
    pub description: String,
    pub steps: Vec<Step>,
}

/// Q8.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Communication {
    pub channels: Vec<Channel>,
    /// Event → channel names, in the order of [`Event::ALL`].
    pub notify: Vec<(Event, Vec<String>)>,
    pub templates: Vec<(Event, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// Webhook channels: extra request headers, values as written (`${VAR}` unresolved).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Webhook channels: the HMAC-SHA256 key of the body's signature, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook(String),
    Slack(String),
    Email(Vec<String>),
    Command(String),
    /// PagerDuty Events API v2: the routing key and the events URL (`None`: PagerDuty's).
    #[serde(rename = "pagerduty")]
    PagerDuty {
        routing_key: String,
        url: Option<String>,
    },
    /// A Microsoft Teams incoming webhook.
    Teams(String),
}

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl ChannelKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Email(_) => "email",
            ChannelKind::Command(_) => "command",
            ChannelKind::PagerDuty { .. } => "pagerduty",
            ChannelKind::Teams(_) => "teams",
        }
    }

    /// The URL an HTTP channel posts to, as written (PagerDuty's default when not given).
    pub fn url(&self) -> Option<&str> {
        match self {
            ChannelKind::Webhook(url) | ChannelKind::Slack(url) | ChannelKind::Teams(url) => {
                Some(url)
            }
            ChannelKind::PagerDuty { url, .. } => {
                Some(url.as_deref().unwrap_or(PAGERDUTY_EVENTS_URL))
            }
            ChannelKind::Email(_) | ChannelKind::Command(_) => None,
        }
    }
}

/// Lifecycle events that notifications can be routed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    RollbackRequired,
    Inconclusive,
    Degrading,
    DecisionRequested,
    Decision,
    Escalated,
    Started,
    ManualStepWaiting,
    Message,
    StepFailed,
    Completed,
    Failed,
    WindowClosing,
    WindowClosed,
    Success,
    /// The procedure succeeded and `verify_after` held: the release is rolled back.
    RolledBack,
    /// The procedure succeeded but `verify_after` did not hold.
    RollbackUnverified,
    /// Someone ran the procedure in the release's environment outside a release.
    BreakGlass,
    /// A scheduled rehearsal (`testing.schedule`) did not produce evidence.
    RehearsalFailed,
    /// Evidence expires soon and no schedule renews it.
    EvidenceExpiring,
}

impl Event {
    pub const ALL: [Event; 20] = [
        Event::RollbackRequired,
        Event::Inconclusive,
        Event::Degrading,
        Event::DecisionRequested,
        Event::Decision,
        Event::Escalated,
        Event::Started,
        Event::ManualStepWaiting,
        Event::Message,
        Event::StepFailed,
        Event::Completed,
        Event::Failed,
        Event::WindowClosing,
        Event::WindowClosed,
        Event::Success,
        Event::RolledBack,
        Event::RollbackUnverified,
        Event::BreakGlass,
        Event::RehearsalFailed,
        Event::EvidenceExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::RollbackRequired => "rollback_required",
            Event::Inconclusive => "inconclusive",
            Event::Degrading => "degrading",
            Event::DecisionRequested => "decision_requested",
            Event::Decision => "decision",
            Event::Escalated => "escalated",
            Event::Started => "started",
            Event::ManualStepWaiting => "manual_step_waiting",
            Event::Message => "message",
            Event::StepFailed => "step_failed",
            Event::Completed => "completed",
            Event::Failed => "failed",
            Event::WindowClosing => "window_closing",
            Event::WindowClosed => "window_closed",
            Event::Success => "success",
            Event::RolledBack => "rolled_back",
            Event::RollbackUnverified => "rollback_unverified",
            Event::BreakGlass => "break_glass",
            Event::RehearsalFailed => "rehearsal_failed",
            Event::EvidenceExpiring => "evidence_expiring",
        }
    }

    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// When the event happens, in words, for the rendered communication matrix.
    pub fn describe(self) -> &'static str {
        match self {
            Event::RollbackRequired => "a criterion tripped or a person requested a rollback",
            Event::Inconclusive => "a criterion cannot be judged; a human should look",
            Event::Degrading => "a criterion is failing or erring, not yet enough to trip",
            Event::DecisionRequested => "deciders are asked to approve or deny",
            Event::Decision => "a decider approved or denied",
            Event::Escalated => "no decision or no start in time; the fallback is asked",
            Event::Started => "the backout procedure started",
            Event::ManualStepWaiting => "a manual step waits for a performer",
            Event::Message => "a notify step's message (besides the step's own channels)",
            Event::StepFailed => "a step failed",
            Event::Completed => "the backout procedure finished (not yet verified)",
            Event::Failed => "the backout procedure failed",
            Event::WindowClosing => "the rollback window is about to close",
            Event::WindowClosed => "the rollback window closed",
            Event::Success => "the deployment met its success criteria",
            Event::RolledBack => "the backout finished and verify_after held: rolled back",
            Event::RollbackUnverified => "the backout finished but verify_after did not hold",
            Event::BreakGlass => {
                "someone ran the procedure in production outside a release (--break-glass)"
            }
            Event::RehearsalFailed => "a scheduled rehearsal failed (testing.schedule)",
            Event::EvidenceExpiring => {
                "the rehearsal evidence expires soon and no schedule renews it"
            }
        }
    }
}

/// Q9.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Testing {
    pub rehearse_in: String,
    pub max_age: Duration,
    pub overrides: Vec<(String, Override)>,
    /// Channels a rehearsal notifies when its environment overrides no channels.
    pub notify: Vec<String>,
    /// Hosts a rehearsal may reach without a `urls` rewrite.
    pub shared_hosts: Vec<String>,
    /// `testing.schedule` as written (parsed by `rehearsal_schedule`; lint checks it, B120).
    pub schedule: Option<String>,
    /// `testing.time_zone` (default `UTC`).
    pub time_zone: String,
    /// `testing.renew_before`.
    pub renew_before: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Override {
    pub env: Vec<(String, String)>,
    /// URL prefix → replacement, for every URL a run in this environment reaches.
    pub urls: Vec<(String, String)>,
    /// Channels replacing `communication.channels` in this environment (`None`: not overridden).
    pub channels: Option<Vec<Channel>>,
}

impl Plan {
    /// `procedure.pass_env`: variables of backout's environment its processes receive by name.
    pub fn pass_env(&self) -> &[String] {
        self.procedure.given().map_or(&[], |p| &p.pass_env)
    }

    /// The procedure's steps, or none when the procedure does not apply.
    pub fn steps(&self) -> &[Step] {
        self.procedure.given().map_or(&[], |p| &p.steps)
    }

    /// Every step of the plan: the procedure's, then each contingency branch's, then each
    /// workaround's (ids are unique within each run, so lookups by id are unambiguous).
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        let contingency = self
            .contingency
            .given()
            .into_iter()
            .flatten()
            .flat_map(|c| &c.steps);
        let workarounds = self
            .workarounds
            .given()
            .into_iter()
            .flatten()
            .flat_map(|w| &w.steps);
        self.steps().iter().chain(contingency).chain(workarounds)
    }

    /// Members of a people group.
    pub fn group(&self, name: &str) -> Option<&[String]> {
        self.people
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.members.as_slice())
    }

    /// A criterion by id.
    pub fn criterion(&self, id: &str) -> Option<&Criterion> {
        self.criteria
            .given()?
            .rollback_when
            .iter()
            .find(|c| c.id == id)
    }
}

/// An environment variable name from free text: upper case, anything but letters and digits as `_`.
pub fn env_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The variable through which a step's output reaches later steps: `BACKOUT_OUTPUT_<STEP>_<NAME>`.
pub fn output_variable(step: &str, name: &str) -> String {
    format!("BACKOUT_OUTPUT_{}_{}", env_name(step), env_name(name))
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
