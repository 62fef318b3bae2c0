//! The stable diagnostic codes. A code, once published, keeps its meaning: scripts and CI filters
//! match on them. New checks get new codes; retired codes are not reused.

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $title:literal; )*) => {
        $( $(#[$doc])* pub const $name: &str = $code; )*
        /// Every code with a one-line title, for `--help` text and the README.
        pub const ALL: &[(&str, &str)] = &[$( ($code, $title) ),*];
    };
}

codes! {
    YAML_SYNTAX = "B001", "the file is not valid YAML";
    DUPLICATE_KEY = "B002", "a key appears twice in one mapping";
    UNKNOWN_FIELD = "B003", "a field the plan format does not have";
    WRONG_TYPE = "B004", "a value of the wrong type";
    MISSING_FIELD = "B005", "a required field is missing";
    INVALID_VALUE = "B006", "a value of the right type but malformed (duration, condition, name)";
    UNSUPPORTED_VERSION = "B007", "the plan format version is not 1";
    UNREADABLE = "B008", "the file could not be read or is not UTF-8 text";
    UNANSWERED = "B010", "one of the nine questions is neither answered nor marked not_applicable";
    NOT_APPLICABLE_MIXED = "B011", "not_applicable without a reason, or mixed with an answer";
    CHECKS_SKIPPED = "B012", "some checks were skipped because of earlier errors";
    DUPLICATE_ID = "B020", "two steps, criteria, contingencies or workarounds share an id";
    UNKNOWN_NEEDS = "B021", "a step needs a step that does not exist";
    CYCLE = "B022", "the steps' needs form a cycle";
    UNKNOWN_CHECKPOINT = "B023", "a checkpoint name the release does not declare";
    AFTER_NO_RETURN = "B024", "a step can only run after the point of no return, so it can never run";
    UNKNOWN_CONTINGENCY = "B025", "on_failure names a contingency that does not exist";
    UNUSED_CONTINGENCY = "B026", "a contingency no step's on_failure reaches";
    STEP_KIND = "B027", "a step has no kind or more than one (run, exec, http, manual, notify, wait)";
    NEEDS_ACROSS = "B028", "a step needs itself or a step of another procedure";
    EMPTY_PROCEDURE = "B029", "a procedure, contingency or workaround has no steps";
    UNKNOWN_GROUP = "B030", "a people group that is not declared";
    UNKNOWN_CHANNEL = "B031", "a communication channel that is not declared";
    UNKNOWN_CRITERION = "B032", "a criterion id that is not declared";
    UNKNOWN_EVENT = "B033", "a notification event the tool does not emit";
    CHANNEL_KIND = "B034", "a channel has no kind or more than one (webhook, slack, email, command, pagerduty, teams)";
    PROMQL_SYNTAX = "B035", "a PromQL query that does not parse";
    TEMPLATE_SYNTAX = "B036", "a communication.templates override that does not compile or names what a notice lacks";
    /// An error below 100ms, a warning up to 1s (tests measure that fast on purpose).
    TOO_FREQUENT = "B037", "a criterion measured more often than once a second";
    TOO_LONG = "B038", "a duration longer than 366d (windows, timeouts, delays): a typo, and beyond what time arithmetic should carry";
    WORST_OVER_BUDGET = "B039", "the worst case of the procedure (timeouts, retries, contingency branches, verify_after.hold) is longer than expected_duration";
    OVER_BUDGET = "B040", "the critical path of the procedure is longer than expected_duration";
    OUTSIDE_WINDOW = "B041", "start_within plus expected_duration does not fit in the window";
    TIMEOUT_BELOW_EXPECTED = "B042", "a step's timeout is shorter than its expected duration";
    HOLD_OVER_WINDOW = "B043", "success_when.hold is longer than the window";
    NO_EXPECTED = "B044", "a step without expected: the reversion time cannot be answered";
    ZERO_DURATION = "B045", "a duration that must be positive is zero";
    WORST_OUTSIDE_WINDOW = "B046", "start_within plus the worst case of the procedure does not fit in the window";
    TOO_MANY_RETRIES = "B047", "a step retried more than 100 times";
    QUORUM_TOO_LARGE = "B050", "quorum is larger than the deciders group";
    NO_SEPARATE_PERFORMER = "B051", "separation_of_duties leaves no performer who is not a decider";
    EMPTY_GROUP = "B052", "a people group has nobody in it";
    ZERO_QUORUM = "B053", "quorum is zero";
    CRITERION_SOURCE = "B060", "a criterion or check has no source or more than one";
    CONDITION = "B061", "a condition that does not parse, or a source that needs one";
    CONTRADICTION = "B062", "passes_if and fails_if overlap or leave no passing value";
    SUCCESS_EMPTY = "B063", "success_when lists no checks";
    LITERAL_CREDENTIAL = "B070", "a credential written into the plan instead of a ${VAR} reference";
    UNPRINTABLE_NAME = "B071", "a name (id, checkpoint, key) with control or invisible characters";
    OUTPUT_COLLISION = "B072", "two step outputs reach later steps through the same BACKOUT_OUTPUT_* variable";
    SHELL_INTERPOLATION = "B073", "exec runs a shell whose script has a ${VAR}: the value becomes code";
    RISKY_STEP = "B080", "a non-idempotent step with no on_failure";
    HTTP_SPEC = "B081", "an http method or expected status that is not valid";
    WAIT_SPEC = "B082", "a wait step needs exactly one of for or until";
    OUTPUT_SPEC = "B083", "an output that is not captured from stdout";
    /// Needs the store: reported by `lint --evidence` / `--require-tested`, never by plain lint.
    UNTESTED = "B084", "no successful rehearsal of this content hash in testing.rehearse_in";
    /// Needs the store, like B084.
    STALE = "B085", "the newest successful rehearsal of this content hash is older than testing.max_age";
    /// Needs the store, like B084.
    SLOWER_THAN_EXPECTED = "B086", "a step's measured median is more than 50% over its expected";
    URL_REWRITE = "B087", "a testing.overrides URL rewrite that is not an http(s) URL";
    UNSEALED_URL = "B090", "a rehearsal would reach a URL its environment's urls rewrites do not cover";
    SHARED_HOST = "B091", "a testing.shared_hosts entry that is not a host name";
    ERRORS_AFTER_UNUSED = "B092", "errors_after on a criterion whose on_error: fail makes every error a failure";
    WEBHOOK_OPTION = "B100", "headers or secret on a channel that is not a webhook, or a header name that is not an HTTP token";
    CHANNEL_SECRET = "B101", "a webhook secret or PagerDuty routing key written into the plan instead of a ${VAR} reference";
    HTTP_BODY_WITHOUT_METHOD = "B102", "an http body on a GET or HEAD request (the default method): say `method: POST`";
    SHADOW_DECIDES = "B110", "a shadow criterion where it would decide (automatic approval, success_when, verify_after): a shadow never decides";
    TOTAL_NOT_ABOVE_CONSECUTIVE = "B111", "trips_after_total is not above trips_after: the consecutive limit can never trip first";
    BASELINE_MISSING = "B112", "a condition compares with the baseline, but the criterion or check has no `baseline:`";
    BASELINE_SOURCE = "B113", "`baseline:` on a criterion that is not a Prometheus query";
    BASELINE_SPEC = "B114", "a baseline needs exactly one of offset or before_deploy, longer than zero";
    REHEARSAL_SCHEDULE = "B120", "a testing.schedule that is not daily, weekly, hourly, `every DURATION` or a five-field cron expression";
    TIME_ZONE = "B121", "a testing.time_zone that is not UTC, a fixed offset like +02:00 or an IANA name like Europe/Berlin";
    RENEW_BEFORE = "B122", "testing.renew_before is not shorter than max_age: the plan would rehearse all the time";
}
