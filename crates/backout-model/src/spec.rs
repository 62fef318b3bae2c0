//! The plan as written (plan format v1): the raw spec types that YAML decodes into.
//!
//! These types mirror the YAML one to one, keep every value's location, and apply no defaults;
//! `Plan::from_raw` validates them into the model the rest of the tool uses. Nothing outside
//! parsing and lint should need them. Doc comments here become the JSON Schema descriptions that
//! editors show, so they are written for plan authors.

use schemars::JsonSchema;

use crate::condition::Condition;
use crate::decode::{Decode, Decoder, Map, Section, Spanned};
use crate::duration::Duration;
use crate::spec;
use crate::yaml::{Node, Value};

spec! {
    /// A backout plan (format v1): the criteria and procedures to follow if a release into
    /// production must be rolled back, answering nine questions.
    pub struct PlanSpec ("the plan") {
        /// Plan format version; must be 1.
        #[schemars(required)]
        version: Option<Spanned<u32>>,
        /// Free text shown at the top of the rendered document.
        description: Option<String>,
        /// The release this plan guards.
        #[schemars(required)]
        release: Option<Spanned<ReleaseSpec>>,
        /// Who is responsible for the plan.
        #[schemars(required)]
        owners: Option<Spanned<OwnersSpec>>,
        /// Named groups of identities (emails or user names), referenced by authorization,
        /// execution and manual steps.
        people: Option<Map<Spanned<Vec<Spanned<String>>>>>,
        /// Q1: under what circumstances is a rollback required, and when is the deployment a success?
        #[schemars(required)]
        criteria: Option<Spanned<Section<CriteriaSpec>>>,
        /// Q2: within what time period can a rollback take place?
        #[schemars(required)]
        window: Option<Spanned<Section<WindowSpec>>>,
        /// Q3: which authorizing agent decides to revert?
        #[schemars(required)]
        authorization: Option<Spanned<Section<AuthorizationSpec>>>,
        /// Q4: who performs the rollback, and how soon after the decision?
        #[schemars(required)]
        execution: Option<Spanned<Section<ExecutionSpec>>>,
        /// Q5: the procedure, a graph of steps.
        #[schemars(required)]
        procedure: Option<Spanned<Section<ProcedureSpec>>>,
        /// Q6: branches run when a step fails (`on_failure: contingency.<id>`).
        #[schemars(required)]
        contingency: Option<Spanned<Section<Map<ContingencySpec>>>>,
        /// Q6: alternatives to a full backout, runnable on their own.
        #[schemars(required)]
        workarounds: Option<Spanned<Section<Vec<WorkaroundSpec>>>>,
        /// Q7: how long the reversion takes, checked against the critical path and the window.
        #[schemars(required)]
        expected_duration: Option<Spanned<Section<Spanned<Duration>>>>,
        /// Q8: who is told what, through which channels.
        #[schemars(required)]
        communication: Option<Spanned<Section<CommunicationSpec>>>,
        /// Q9: how the plan is proven by rehearsal.
        #[schemars(required)]
        testing: Option<Spanned<Section<TestingSpec>>>,
    }
}

spec! {
    /// The release: what is deployed, and what a rollback returns to.
    pub struct ReleaseSpec ("release") {
        service: Spanned<String>,
        version: Spanned<String>,
        rollback_to: Spanned<String>,
        environment: Spanned<String>,
        change_ticket: Option<String>,
        /// Milestones of the forward deployment, in order (e.g. expand-migration).
        checkpoints: Option<Vec<Spanned<String>>>,
    }
}

spec! {
    /// Who owns the plan.
    pub struct OwnersSpec ("owners", leaf) {
        /// Responsible for the plan's contents.
        deployment_engineer: Spanned<String>,
        authors: Option<Vec<Spanned<String>>>,
    }
}

spec! {
    /// Q1: rollback criteria and the definition of success.
    pub struct CriteriaSpec ("criteria") {
        /// Where the monitoring lives; defaults to PROMETHEUS_URL / ALERTMANAGER_URL.
        sources: Option<SourcesSpec>,
        /// Any tripped criterion makes a rollback required.
        rollback_when: Vec<Spanned<CriterionSpec>>,
        /// The deployment is a success when these checks pass continuously for `hold`.
        success_when: Option<Spanned<SuccessSpec>>,
    }
}

spec! {
    /// Monitoring endpoints.
    pub struct SourcesSpec ("criteria sources", leaf) {
        prometheus: Option<EndpointSpec>,
        alertmanager: Option<EndpointSpec>,
    }
}

spec! {
    /// A monitoring endpoint; secrets as `${VAR}`.
    pub struct EndpointSpec ("source endpoint", leaf) {
        url: Spanned<String>,
        headers: Option<Map<Spanned<String>>>,
        timeout: Option<Spanned<Duration>>,
    }
}

spec! {
    /// A rollback criterion: exactly one source, a condition and a cadence.
    pub struct CriterionSpec ("criterion") {
        id: Spanned<String>,
        title: Option<String>,
        description: Option<String>,
        /// PromQL instant query.
        prometheus: Option<Spanned<String>>,
        /// A firing alert means failing.
        alertmanager: Option<Spanned<AlertSpec>>,
        http: Option<Spanned<HttpCheckSpec>>,
        /// Shell command: exit code, or a number on stdout when a condition is given.
        command: Option<Spanned<String>>,
        fails_if: Option<Spanned<Condition>>,
        passes_if: Option<Spanned<Condition>>,
        /// How often to measure (default 1m).
        every: Option<Spanned<Duration>>,
        /// Warm-up after the window opens (default 0s).
        delay: Option<Spanned<Duration>>,
        /// Consecutive failing measurements that trip the criterion (default 1).
        trips_after: Option<Spanned<u32>>,
        /// What a measurement with no data means (default inconclusive).
        no_data: Option<NoData>,
        /// Consecutive source errors before the criterion is inconclusive (default 3).
        errors_after: Option<Spanned<u32>>,
        /// What a source error (connection refused, timeout, unexpected answer) counts as:
        /// `inconclusive` (default: monitoring down is not the service down) or `fail` (a
        /// failing measurement with the error as evidence, counted toward trips_after: use it
        /// for health checks of the service itself).
        on_error: Option<OnError>,
        /// `automatic`: a trip may start the rollback without a human decision.
        authorize: Option<Authorize>,
        /// How long one measurement may take (default 10s).
        timeout: Option<Spanned<Duration>>,
        /// `true`: measure and report, never trip or decide. The way to try a new criterion
        /// on real releases before trusting it (Argo Rollouts' dryRun); status and reports
        /// show how it would have voted.
        shadow: Option<Spanned<bool>>,
        /// Failing measurements in the window, not necessarily in a row, that trip the
        /// criterion (beside trips_after's consecutive ones; Argo Rollouts' failureLimit + 1).
        /// Alone, it is the only limit (trips_after then defaults to it).
        trips_after_total: Option<Spanned<u32>>,
        /// Prometheus only: the signal's own past value that conditions like
        /// `"> 1.5x baseline"` or `"> baseline + 0.01"` compare with.
        baseline: Option<Spanned<BaselineSpec>>,
    }
}

spec! {
    /// When a Prometheus criterion's baseline is measured: exactly one of `offset` (the same
    /// query that long before each measurement, e.g. `1d`) or `before_deploy` (the same query
    /// that long before the release's window opened, fixed for the release, e.g. `1h`).
    pub struct BaselineSpec ("baseline", leaf) {
        offset: Option<Spanned<Duration>>,
        before_deploy: Option<Spanned<Duration>>,
    }
}

spec! {
    /// An Alertmanager alert by name and label matchers.
    pub struct AlertSpec ("alertmanager check", leaf) {
        alert: Spanned<String>,
        matchers: Option<Map<String>>,
    }
}

spec! {
    /// An HTTP check: status, body substring, or a number at a JSON pointer.
    pub struct HttpCheckSpec ("http check", leaf) {
        url: Spanned<String>,
        method: Option<Spanned<String>>,
        headers: Option<Map<Spanned<String>>>,
        /// A request body (e.g. a query API's JSON), `${VAR}`s resolved at each measurement.
        body: Option<Spanned<String>>,
        expect_status: Option<Spanned<u16>>,
        expect_body: Option<String>,
        json_pointer: Option<Spanned<String>>,
    }
}

spec! {
    /// When every listed criterion passes continuously for `hold`, the deployment is a success.
    pub struct SuccessSpec ("success_when", leaf) {
        hold: Spanned<Duration>,
        checks: Vec<Spanned<String>>,
    }
}

spec! {
    /// Q2: the rollback window.
    pub struct WindowSpec ("window", leaf) {
        /// `deploy`: the window opens at `backout start`.
        opens: Option<Opens>,
        closes_after: Spanned<Duration>,
        /// The point of no return: reaching this checkpoint closes the window.
        closes_at_checkpoint: Option<Spanned<String>>,
        /// What to do instead once the window has closed.
        after_close: Option<String>,
        /// How long before the window closes on time a `window_closing` notification goes out
        /// (default 15m).
        closing_notice: Option<Spanned<Duration>>,
    }
}

spec! {
    /// Q3: who decides.
    pub struct AuthorizationSpec ("authorization", leaf) {
        deciders: Spanned<String>,
        /// Distinct approvers needed (default 1).
        quorum: Option<Spanned<u32>>,
        fallback: Option<Spanned<FallbackSpec>>,
        /// Criterion ids that may start a rollback with no human decision.
        automatic: Option<Vec<Spanned<String>>>,
        /// A decider of this rollback may not perform its steps.
        separation_of_duties: Option<Spanned<bool>>,
    }
}

spec! {
    /// Escalation when no decision arrives in time.
    pub struct FallbackSpec ("fallback", leaf) {
        after: Spanned<Duration>,
        deciders: Spanned<String>,
    }
}

spec! {
    /// Q4: who performs the rollback, and how soon.
    pub struct ExecutionSpec ("execution", leaf) {
        performers: Spanned<String>,
        /// Maximum time from approval to start; a miss escalates.
        start_within: Option<Spanned<Duration>>,
    }
}

spec! {
    /// Q5: the procedure.
    pub struct ProcedureSpec ("procedure") {
        /// Steps running at once (default 16).
        max_parallel: Option<Spanned<u32>>,
        /// Checks that must succeed before any step runs.
        preconditions: Option<Vec<Spanned<PreconditionSpec>>>,
        steps: Vec<Spanned<StepSpec>>,
        /// The backout itself succeeded when these criteria hold.
        verify_after: Option<Spanned<VerifyAfterSpec>>,
        /// Variables of backout's own environment that steps and command criteria receive
        /// besides `PATH`, `HOME`, `LANG`, `TZ`, the `BACKOUT_*` values, the plan's `env` and
        /// the variables the plan references as `${VAR}`. Nothing else is passed.
        pass_env: Option<Vec<Spanned<String>>>,
    }
}

spec! {
    /// A check before any step runs; exactly one of run, exec, http.
    pub struct PreconditionSpec ("precondition", leaf) {
        id: Spanned<String>,
        title: Option<String>,
        run: Option<Spanned<String>>,
        exec: Option<Spanned<Vec<String>>>,
        http: Option<Spanned<HttpRequestSpec>>,
        timeout: Option<Spanned<Duration>>,
    }
}

spec! {
    /// One step of a procedure; exactly one of run, exec, http, manual, notify, wait.
    pub struct StepSpec ("step") {
        id: Spanned<String>,
        title: Option<String>,
        /// A shell command (`sh -c`). Values arrive as environment variables, never substituted.
        run: Option<Spanned<String>>,
        /// A program and its arguments, no shell.
        exec: Option<Spanned<Vec<String>>>,
        http: Option<Spanned<HttpRequestSpec>>,
        manual: Option<Spanned<ManualSpec>>,
        /// Channels to notify, with `message`.
        notify: Option<Spanned<Vec<Spanned<String>>>>,
        message: Option<String>,
        wait: Option<Spanned<WaitSpec>>,
        /// Steps that must finish first.
        needs: Option<Vec<Spanned<String>>>,
        /// How long the step normally takes.
        expected: Option<Spanned<Duration>>,
        timeout: Option<Spanned<Duration>>,
        retries: Option<Spanned<u32>>,
        retry_delay: Option<Spanned<Duration>>,
        /// Safe to run again after a crash (default: true for `wait` steps and `http` GET or
        /// HEAD, which only read; false for everything else).
        idempotent: Option<Spanned<bool>>,
        /// Run only if the release reached this checkpoint.
        when_checkpoint: Option<Spanned<String>>,
        /// One check after the step; failing fails the step.
        verify: Option<Spanned<VerifySpec>>,
        /// halt (default), continue, ask, or contingency.<id>.
        on_failure: Option<Spanned<OnFailure>>,
        env: Option<Map<Spanned<String>>>,
        /// Named values captured from the step: `name: stdout`.
        outputs: Option<Map<Spanned<String>>>,
    }
}

spec! {
    /// An HTTP request made by a step.
    pub struct HttpRequestSpec ("http request", leaf) {
        method: Option<Spanned<String>>,
        url: Spanned<String>,
        headers: Option<Map<Spanned<String>>>,
        body: Option<Spanned<String>>,
        /// Expected status (default: any 2xx).
        expect_status: Option<Spanned<u16>>,
        expect_body: Option<String>,
    }
}

spec! {
    /// A step a person performs and confirms.
    pub struct ManualSpec ("manual step", leaf) {
        by: Spanned<String>,
        instructions: String,
        /// While it waits, remind `by` this often (`manual_step_waiting` again).
        remind_every: Option<Spanned<Duration>>,
        /// Escalate (`escalated`) when it has waited this long.
        timeout: Option<Spanned<Duration>>,
    }
}

spec! {
    /// Wait a fixed time (`for`) or until a criterion passes (`until`, with `timeout`).
    pub struct WaitSpec ("wait", leaf) {
        r#for: Option<Spanned<Duration>>,
        until: Option<Spanned<String>>,
        timeout: Option<Spanned<Duration>>,
    }
}

spec! {
    /// A check after a step: one of http, command, prometheus, criterion.
    pub struct VerifySpec ("verify", leaf) {
        http: Option<Spanned<HttpCheckSpec>>,
        command: Option<Spanned<String>>,
        prometheus: Option<Spanned<String>>,
        criterion: Option<Spanned<String>>,
        fails_if: Option<Spanned<Condition>>,
        passes_if: Option<Spanned<Condition>>,
    }
}

spec! {
    /// The backout succeeded when these criteria hold for `hold`.
    pub struct VerifyAfterSpec ("verify_after", leaf) {
        checks: Vec<Spanned<String>>,
        hold: Option<Spanned<Duration>>,
    }
}

spec! {
    /// A branch run when a step's on_failure names it.
    pub struct ContingencySpec ("contingency") {
        description: String,
        steps: Vec<Spanned<StepSpec>>,
    }
}

spec! {
    /// An alternative to a full backout.
    pub struct WorkaroundSpec ("workaround") {
        id: Spanned<String>,
        description: String,
        steps: Option<Vec<Spanned<StepSpec>>>,
    }
}

spec! {
    /// Q8: channels, routing of events to channels, and message templates.
    pub struct CommunicationSpec ("communication") {
        channels: Map<Spanned<ChannelSpec>>,
        /// Event name → channel names.
        notify: Option<Map<Vec<Spanned<String>>>>,
        /// Event name → message template (minijinja).
        templates: Option<Map<Spanned<String>>>,
    }
}

spec! {
    /// A notification channel; exactly one of webhook, slack, email, command, pagerduty, teams.
    pub struct ChannelSpec ("channel", leaf) {
        webhook: Option<Spanned<String>>,
        slack: Option<Spanned<String>>,
        email: Option<Vec<Spanned<String>>>,
        command: Option<Spanned<String>>,
        /// PagerDuty Events API v2: trigger on rollback_required and failures, resolve on
        /// rolled_back and success, one incident per release.
        pagerduty: Option<Spanned<PagerDutySpec>>,
        /// A Microsoft Teams incoming-webhook URL (a card with facts and link buttons).
        teams: Option<Spanned<String>>,
        /// Webhook only: extra request headers; values may hold `${VAR}` references.
        headers: Option<Spanned<Map<Spanned<String>>>>,
        /// Webhook only: the key (a `${VAR}` reference) of an HMAC-SHA256 signature of the body,
        /// sent as `X-Backout-Signature-256: sha256=<hex>`.
        secret: Option<Spanned<String>>,
    }
}

spec! {
    /// A PagerDuty Events API v2 integration.
    pub struct PagerDutySpec ("pagerduty channel", leaf) {
        /// The integration's routing key, as a `${VAR}` reference.
        routing_key: Spanned<String>,
        /// Where events go (default https://events.pagerduty.com/v2/enqueue).
        url: Option<Spanned<String>>,
    }
}

spec! {
    /// Q9: rehearsal.
    pub struct TestingSpec ("testing", leaf) {
        /// Environment whose successful rehearsal answers Q9.
        rehearse_in: Spanned<String>,
        /// Evidence older than this is stale (default 30d).
        max_age: Option<Spanned<Duration>>,
        overrides: Option<Map<OverrideSpec>>,
        /// Channels a rehearsal notifies when its environment does not override `channels`
        /// (default none: a rehearsal never reaches production channels by accident).
        notify: Option<Vec<Spanned<String>>>,
        /// Hosts a rehearsal may reach although no `urls` rewrite covers them (shared by
        /// every environment, e.g. a shared Prometheus).
        shared_hosts: Option<Vec<Spanned<String>>>,
        /// When `backout serve` rehearses the plan by itself in `rehearse_in`: `daily`,
        /// `weekly`, a cron expression (`0 3 * * 1`), or `every 6h` (from the last rehearsal).
        schedule: Option<Spanned<String>>,
        /// The time zone the schedule is read in: `UTC` (default), `Europe/Berlin`, `+02:00`.
        time_zone: Option<Spanned<String>>,
        /// With a schedule: rehearse again when the evidence would expire within this (e.g.
        /// 7d), whatever the schedule says. Without one: `evidence_expiring` is journaled this
        /// long before the evidence expires (default 7d, at most half of max_age).
        renew_before: Option<Spanned<Duration>>,
    }
}

spec! {
    /// Settings applied when running in one environment.
    pub struct OverrideSpec ("testing override", leaf) {
        env: Option<Map<String>>,
        /// URL prefixes replaced in every URL the run reaches (steps, verifies, criteria):
        /// `"https://checkout.internal.example.com": "https://checkout.staging.example.com"`.
        urls: Option<Map<String>>,
        /// Channels that replace `communication.channels` in this environment, by name.
        channels: Option<Map<Spanned<ChannelSpec>>>,
    }
}

/// Declares an enum of fixed keywords (`no_data: fail`) with its decoder and schema.
macro_rules! keyword {
    ($(#[$meta:meta])* $name:ident { $( $variant:ident = $word:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema, serde::Serialize)]
        pub enum $name {
            $( #[serde(rename = $word)] $variant, )*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $word, )* }
            }
        }

        impl Decode for $name {
            const LEAF: bool = true;
            fn expected() -> String {
                let words: &[&str] = &[$( concat!("`", $word, "`") ),*];
                format!("one of {}", words.join(", "))
            }
            fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
                match &node.value {
                    $( Value::Str(s) if s == $word => Some($name::$variant), )*
                    _ => {
                        decoder.wrong_type(node, &Self::expected());
                        None
                    }
                }
            }
        }
    };
}

keyword! {
    /// What a measurement with no data counts as.
    NoData { Inconclusive = "inconclusive", Fail = "fail" }
}

keyword! {
    /// What a source error counts as.
    OnError { Inconclusive = "inconclusive", Fail = "fail" }
}

keyword! {
    /// When the window opens.
    Opens { Deploy = "deploy" }
}

keyword! {
    /// Shorthand for listing a criterion under `authorization.automatic`.
    Authorize { Automatic = "automatic" }
}

/// What happens when a step fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Halt,
    Continue,
    /// Pause the run for a performer's choice: retry, skip or abort.
    Ask,
    Contingency(String),
}

impl Decode for OnFailure {
    const LEAF: bool = true;
    fn expected() -> String {
        "`halt`, `continue`, `ask` or `contingency.<id>`".into()
    }
    fn decode(node: &Node, decoder: &mut Decoder) -> Option<Self> {
        match &node.value {
            Value::Str(s) if s == "halt" => Some(OnFailure::Halt),
            Value::Str(s) if s == "continue" => Some(OnFailure::Continue),
            Value::Str(s) if s == "ask" => Some(OnFailure::Ask),
            Value::Str(s) if s.starts_with("contingency.") && s.len() > "contingency.".len() => {
                Some(OnFailure::Contingency(
                    s["contingency.".len()..].to_string(),
                ))
            }
            _ => {
                decoder.wrong_type(node, &Self::expected());
                None
            }
        }
    }
}

impl JsonSchema for OnFailure {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OnFailure".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "halt (default), continue, ask (pause for a performer: retry, skip or abort), or contingency.<id>",
            "pattern": "^(halt|continue|ask|contingency\\..+)$"
        })
    }
}

impl StepSpec {
    /// Whether running the step twice is safe: as written, or by default for steps that only
    /// read (`wait`, `http` with GET or HEAD), which a crash never leaves "in doubt".
    pub fn is_idempotent(&self) -> bool {
        match &self.idempotent {
            Some(given) => given.value,
            None => {
                self.wait.is_some()
                    || self.http.as_ref().is_some_and(|h| {
                        h.value.method.as_ref().is_none_or(|m| {
                            m.value.eq_ignore_ascii_case("GET")
                                || m.value.eq_ignore_ascii_case("HEAD")
                        })
                    })
            }
        }
    }
}
