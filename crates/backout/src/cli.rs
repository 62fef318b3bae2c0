//! Command-line arguments (clap derive). Each command's `--help` ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `--version`: the package version and the commit it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BACKOUT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "backout",
    version = VERSION,
    about = "Make a release's backout plan real: lint, render, watch, decide, execute, rehearse.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level help's epilogue: where to start, and every environment variable backout reads.
const AFTER_HELP: &str = "\
Start with `backout init --service NAME`, then `backout lint backout.yaml`.

Environment:
  BACKOUT_DATABASE_URL      the store (as --database): sqlite://PATH or postgres://…
  BACKOUT_USER              who is acting on a local store (as --as)
  BACKOUT_SERVER            act through a backout server at this URL instead of a local store
  BACKOUT_TOKEN             the bearer token for BACKOUT_SERVER (`backout token create`)
  BACKOUT_PUBLIC_URL        where people open the web UI: notifications link its release, run
                            and decision pages (as `serve --public-url`)
  BACKOUT_SMTP_URL          SMTP server of email channels: smtp://host:port, smtps://…,
                            ?tls=required for STARTTLS; user and password may be in the URL
  BACKOUT_SMTP_FROM         From address of emails (default backout@localhost)
  BACKOUT_DELIVERY_TIMEOUT  longest one notification may take (default 10s)
  BACKOUT_DELIVERY_LEASE    how long a claimed notification keeps other processes off (60s)
  BACKOUT_DELIVERY_GRACE    how long a command keeps retrying its notifications after its
                            work (default 30s)
  BACKOUT_LEASE_TTL         `serve`: lease time to live of shared work (default 15s)
  BACKOUT_AUDIT_KEY         HMAC key of `audit anchor` / `audit verify --anchor`
  BACKOUT_LOG               `serve` log filter, e.g. debug or backout_server=debug
  BACKOUT_LOG_FORMAT        `serve` logs: text (default) or json, one object a line
  BACKOUT_COMMIT            at build time: the commit --version names when there is no .git
  NO_COLOR, CLICOLOR_FORCE  no colour / colour even into a pipe (--color overrides both)
  Plans' ${NAME} references are read from the environment of the process that resolves them;
  http criteria also have ${BACKOUT_NOW} and ${BACKOUT_SINCE} (Unix seconds: the measurement's
  time, and that less the criterion's `every`).";

/// When to colour output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set; CLICOLOR_FORCE colours a pipe too.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Debug, Args)]
pub struct Global {
    /// When to colour output: auto (a terminal, honouring NO_COLOR and CLICOLOR_FORCE),
    /// always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// Store URL: sqlite://PATH (default: a file under the user's data dir) or postgres://…
    #[arg(long, global = true, env = "BACKOUT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Who is acting (defaults to the OS user). A trusted-local identity: on a local store it
    /// records who acts, it proves nothing (anyone who can run backout on the store can name
    /// anybody). A server never accepts a claimed identity: it acts as the token's user and
    /// refuses --as naming someone else.
    #[arg(long = "as", global = true, env = "BACKOUT_USER", value_name = "USER")]
    pub actor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented plan skeleton that answers nothing yet.
    #[command(after_help = "Example:\n  backout init --service checkout -o backout.yaml")]
    Init(InitArgs),
    /// Check plans: every problem at once, with file:line:col.
    #[command(
        after_help = "Examples:\n  backout lint backout.yaml\n  backout lint --format json plans/*.yaml\n  backout lint --hash backout.yaml\n  backout lint --require-tested backout.yaml   # exit 2 unless this exact version was rehearsed"
    )]
    Lint(LintArgs),
    /// Render the one document production support needs (Markdown, or HTML with a timeline).
    #[command(
        after_help = "Examples:\n  backout render backout.yaml > BACKOUT.md\n  backout render backout.yaml --format html -o backout.html"
    )]
    Render(RenderArgs),
    /// Print the JSON Schema of the plan format (for editor completion).
    #[command(after_help = "Example:\n  backout schema > backout.schema.json")]
    Schema,
    /// Accept a plan's exact content, as its deployment engineer (or, on a server, an admin):
    /// only then does a server run its command criteria, honour its automatic approvals and execute it.
    #[command(
        after_help = "Example:\n  backout --as owner@example.com accept backout.yaml\n\nThe acceptance is journaled with the plan's content hash; any edit needs a new one."
    )]
    Accept(AcceptArgs),
    /// Open a release guarded by a plan: its rollback window opens at the deployment (now, or --at).
    #[command(
        after_help = "Example:\n  backout start backout.yaml --version 2.14.0 --rollback-to 2.13.4"
    )]
    Start(StartArgs),
    /// Record that the forward deployment reached a checkpoint (the point of no return closes the window).
    #[command(after_help = "Example:\n  backout checkpoint rel-01jd8k2m3n4p5q6r expand-migration")]
    Checkpoint(CheckpointArgs),
    /// Measure every criterion of a release once, now, and print the verdict with its evidence.
    #[command(
        after_help = "Example:\n  backout check rel-01jd8k2m3n4p5q6r   # exit 3: rollback required, 4: inconclusive"
    )]
    Check(CheckArgs),
    /// Measure a release's criteria at their cadence until a verdict needs action or the window closes.
    #[command(
        after_help = "Examples:\n  backout watch rel-01jd8k2m3n4p5q6r   # exit 3: rollback required, 4: inconclusive, 0: success, 5: window closed\n  backout watch --all                  # every open release, until Ctrl-C"
    )]
    Watch(WatchArgs),
    /// A person asks for a rollback of a release (no criterion needed).
    #[command(
        after_help = "Example:\n  backout request rel-01jd8k2m3n4p5q6r --reason \"checkout emails are empty\""
    )]
    Request(RequestArgs),
    /// Approve or deny the rollback of a release, as a decider (authorization.deciders).
    #[command(
        after_help = "Examples:\n  backout decide rel-01jd8k2m3n4p5q6r approve --reason \"error rate 4%, checkout failing\"\n  backout decide rel-01jd8k2m3n4p5q6r deny --reason \"known blip, fixed forward\"\n  backout decide rel-01jd8k2m3n4p5q6r approve --override-window --reason \"data loss otherwise\""
    )]
    Decide(DecideArgs),
    /// Run the procedure of an approved rollback, as a performer (execution.performers).
    #[command(after_help = "Example:\n  backout execute rel-01jd8k2m3n4p5q6r")]
    Execute(ExecuteArgs),
    /// Run a plan's procedure (or a workaround) now: drills, emergencies.
    #[command(
        after_help = "Examples:\n  backout run backout.yaml --checkpoint expand-migration\n  backout run backout.yaml --workaround disable-new-flow"
    )]
    Run(RunArgs),
    /// Rehearse the procedure in a test environment; a successful rehearsal is evidence (Q9).
    #[command(
        after_help = "Examples:\n  backout rehearse backout.yaml --env staging\n  backout rehearse backout.yaml --dry-run --fail revert-migration\n  backout rehearse backout.yaml --dry-run --speed 60 --checkpoint expand-migration\n  backout rehearse backout.yaml --env staging --roundtrip \"./deploy.sh 2.14.0\""
    )]
    Rehearse(RehearseArgs),
    /// Rehearsal evidence: list it, show one, or export it as JSON for a change ticket.
    #[command(
        after_help = "Examples:\n  backout evidence list backout.yaml\n  backout evidence show evd-01jd8k2m3n4p5q6r\n  backout evidence export backout.yaml > evidence.json"
    )]
    Evidence(EvidenceArgs),
    /// Continue a run whose executor stopped (crash, kill -9, or waiting for a person).
    #[command(after_help = "Example:\n  backout resume run-01jd8k2m3n4p5q6r")]
    Resume(ResumeArgs),
    /// Show recent releases and runs, one release (window, checkpoints), or one run's steps.
    #[command(
        after_help = "Examples:\n  backout status\n  backout status rel-01jd8k2m3n4p5q6r\n  backout status run-01jd8k2m3n4p5q6r"
    )]
    Status(StatusArgs),
    /// Confirm a manual step that waits for a performer.
    #[command(
        after_help = "Example:\n  backout confirm run-01jd8k2m3n4p5q6r confirm-payments --note \"test order seen\""
    )]
    Confirm(ConfirmArgs),
    /// Decide an in-doubt step after a crash: it took effect (done), failed, or did not happen (retry).
    #[command(
        after_help = "Example:\n  backout resolve run-01jd8k2m3n4p5q6r revert-migration done --note \"schema is at 0041\""
    )]
    Resolve(ResolveArgs),
    /// Give the failed (or named) steps of a failed, halted or aborted run a new attempt, then continue the run.
    #[command(
        after_help = "Examples:\n  backout retry run-01jd8k2m3n4p5q6r                    # every failed step\n  backout retry run-01jd8k2m3n4p5q6r downgrade-schema\n\nAs a performer (execution.performers); the act is journaled in the run and its release."
    )]
    Retry(RetryArgs),
    /// Count a failed, in-doubt or waiting step as done by other means; its dependants proceed.
    #[command(
        after_help = "Example:\n  backout skip run-01jd8k2m3n4p5q6r downgrade-schema --reason \"schema reverted by hand, see INC-1234\"\n\nAs a performer (execution.performers); the act and its reason are journaled."
    )]
    Skip(SkipArgs),
    /// Stop a run: running steps get SIGTERM (SIGKILL after a grace period), nothing new starts.
    #[command(
        after_help = "Example:\n  backout abort run-01jd8k2m3n4p5q6r --reason \"wrong cluster\""
    )]
    Abort(AbortArgs),
    /// What happened in a run: timeline, expected vs actual, critical path; or a plan's measured durations.
    #[command(
        after_help = "Examples:\n  backout report run-01jd8k2m3n4p5q6r\n  backout report backout.yaml --durations"
    )]
    Report(ReportArgs),
    /// Notifications sent or queued: when, which event, which channel, attempts, last error.
    #[command(
        after_help = "Examples:\n  backout deliveries rel-01jd8k2m3n4p5q6r\n  backout deliveries --send          # send what is due now, then list\n  backout deliveries --format json"
    )]
    Deliveries(DeliveriesArgs),
    /// Run the shared server: JSON API with bearer tokens, and in the background the criteria
    /// watcher of every open release, automatic rollbacks, executions and notifications.
    #[command(
        after_help = "Examples:\n  backout token create --user carol@example.com --role decider   # once, for each person or bot\n  backout serve --listen 127.0.0.1:7878\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:7878/api/v1/releases\n\nStops cleanly on SIGTERM or Ctrl-C; runs in progress are resumed by the next start.\nLogs go to standard error; BACKOUT_LOG sets the filter (e.g. debug, backout_server=debug)."
    )]
    Serve(ServeArgs),
    /// Bearer tokens for the server: create (shown once), list, revoke.
    #[command(
        after_help = "Examples:\n  backout token create --user carol@example.com --role decider\n  backout token list\n  backout token revoke tok-01jd8k2m3n4p5q6r\n\nRoles: viewer reads; performer also starts releases, reports checkpoints, requests,\nchecks, executes, confirms, resolves and aborts; decider also decides; admin everything.\nThe plan's people rules apply on top, to the token's user."
    )]
    Token(TokenArgs),
    /// The tamper-evident journal: verify its hash chain, or export every event as JSON lines.
    #[command(
        after_help = "Examples:\n  backout audit verify          # exit 0: the chain holds; exit 1: broken, at the seq printed\n  backout audit export -o journal.jsonl"
    )]
    Audit(AuditArgs),
    /// Copy a SQLite store into an empty PostgreSQL one (runs, steps, the journal with its
    /// hashes, releases, deliveries, evidence, tokens), then verify the copy's chain.
    #[command(
        after_help = "Examples:\n  createdb -h db.internal backout\n  backout migrate sqlite://$HOME/.local/share/backout/backout.db postgres://backout@db.internal/backout\n  backout --database postgres://backout@db.internal/backout audit verify\n\nThe target must be empty (exit 2 otherwise); the source is never changed, and a source\nwhose hash chain does not verify is refused. Stop every `backout` using the source first:\nwrites made during the copy are not copied."
    )]
    Migrate(MigrateArgs),
    /// Criteria from Argo Rollouts analysis templates or Flagger metric templates and canaries,
    /// printed as a `criteria:` block (exit 2 naming what cannot be imported).
    #[command(
        after_help = "Examples:\n  backout import argo analysis-template.yaml --arg service-name=checkout\n  backout import flagger metric-template.yaml canary.yaml"
    )]
    Import(ImportArgs),
    /// Criteria before the bad night: how each would have behaved on its own history.
    #[command(
        after_help = "Examples:\n  backout criteria backtest backout.yaml --since 14d\n  backout criteria backtest backout.yaml --criterion error-rate --incident 2026-11-20T14:05:00Z\n  backout criteria backtest backout.yaml --from 2026-11-01T00:00:00Z --to 2026-11-15T00:00:00Z --format json"
    )]
    Criteria(CriteriaArgs),
    /// Print a shell completion script for bash, zsh, fish or powershell on standard output.
    #[command(
        after_help = "Examples:\n  backout completions bash > ~/.local/share/bash-completion/completions/backout\n  backout completions zsh > \"${fpath[1]}/_backout\"\n  backout completions fish > ~/.config/fish/completions/backout.fish\n  backout completions powershell >> $PROFILE"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on standard output.
    #[command(
        after_help = "Examples:\n  backout man | man -l -\n  backout man > /usr/local/share/man/man1/backout.1"
    )]
    Man,
    /// A game day: open a practice release (a DRILL, never a production release) in an
    /// environment, inject a fault (--break), let the real loop run, and time each leg.
    #[command(
        after_help = "Examples:\n  backout gameday backout.yaml --env staging --break 'systemctl stop checkout' --heal 'systemctl start checkout'\n  backout gameday backout.yaml --env staging --break ./inject-errors.sh --auto   # unattended\n\nThe legs (fault→detection, detection→decision, decision→start against start_within,\nstart→finished against expected_duration, finished→verified) are read from the journal and\njournaled as `gameday_reported`; `backout report PLAN --drills` shows them over time.\n--heal runs at the end, also after a failure or Ctrl-C."
    )]
    Gameday(GamedayArgs),
    /// Plans a server rehearses by itself (testing.schedule, testing.renew_before): add,
    /// remove, list. Plans of open and recent releases need no registration.
    #[command(
        after_help = "Examples:\n  backout plans add backout.yaml\n  backout plans list\n  backout plans remove backout.yaml\n\nA server rehearses only plans whose content was accepted (`backout accept`)."
    )]
    Plans(PlansArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// Progress lines for people.
    Human,
    /// One JSON event per line.
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Environment the run targets (recorded with the run; default: the plan's release environment).
    #[arg(long = "env", value_name = "E")]
    pub environment: Option<String>,
    /// Run this workaround instead of the procedure.
    #[arg(long, value_name = "ID")]
    pub workaround: Option<String>,
    /// A checkpoint the forward deployment reached (repeatable); steps with `when_checkpoint` need theirs.
    #[arg(long = "checkpoint", value_name = "NAME")]
    pub checkpoints: Vec<String>,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    /// Run in the environment the release targets outside a release (no decider approved it):
    /// an emergency act, journaled and announced as `break_glass`. Needs --reason.
    #[arg(long, requires = "reason")]
    pub break_glass: bool,
    /// Why glass is broken (journaled, announced, shown in the report).
    #[arg(long, requires = "break_glass")]
    pub reason: Option<String>,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The test environment (default: the plan's testing.rehearse_in); its
    /// testing.overrides.<E>.env are set for every step.
    #[arg(long = "env", value_name = "E")]
    pub environment: Option<String>,
    /// A checkpoint the rehearsed deployment reached (repeatable; default: every declared
    /// checkpoint, so every step is rehearsed).
    #[arg(long = "checkpoint", value_name = "NAME")]
    pub checkpoints: Vec<String>,
    /// Simulate: run nothing, store nothing; each step takes its expected; never evidence.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: play the simulated timeline back N times faster than real time
    /// (without it the timeline is printed at once).
    #[arg(long, value_name = "N", requires = "dry_run")]
    pub speed: Option<f64>,
    /// With --dry-run: this step fails (repeatable), to walk its on_failure and contingency.
    #[arg(long = "fail", value_name = "STEP", requires = "dry_run")]
    pub fail: Vec<String>,
    /// Round trip: run this forward deployment command (sh -c), then the backout, then the
    /// forward command again; evidence only when all three succeed.
    #[arg(long, value_name = "COMMAND", conflicts_with = "dry_run")]
    pub roundtrip: Option<String>,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    pub command: EvidenceCommand,
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Evidence newest first: of one plan's service (marking the plan's current version), or all.
    List {
        #[arg(value_name = "PLAN")]
        plan: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
    },
    /// One piece of evidence: its run, hash, environment, who, when, and every step measured.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
    },
    /// Evidence as JSON (of the plan's current version when PLAN is given), for a change ticket.
    Export {
        #[arg(value_name = "PLAN")]
        plan: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The plan file (its text and hash are stored with the release).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The version being deployed (default: the plan's release.version).
    #[arg(long)]
    pub version: Option<String>,
    /// The version a rollback returns to (default: the plan's release.rollback_to).
    #[arg(long)]
    pub rollback_to: Option<String>,
    /// When the deployment happened, RFC 3339 (default: now); the window opens then.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
    /// Refuse (exit 5) when the plan has no fresh successful rehearsal of its current content.
    #[arg(long)]
    pub require_tested: bool,
    /// Refuse (exit 5) unless this exact plan content was accepted (`backout accept`).
    #[arg(long)]
    pub require_accepted: bool,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The plan file whose exact content (its hash) is accepted.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    pub release: String,
    /// Why: recorded in the journal and shown to the deciders.
    #[arg(long)]
    pub reason: String,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub release: String,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    pub release: String,
    #[arg(value_enum)]
    pub choice: DecisionChoice,
    /// Why: recorded in the journal, shown in notifications and the report.
    #[arg(long)]
    pub reason: String,
    /// Approve although the rollback window closed (the full quorum must each do so).
    #[arg(long)]
    pub override_window: bool,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DecisionChoice {
    Approve,
    Deny,
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    pub release: String,
    /// Run this workaround (Q6) of the plan instead of the procedure, under the same approval:
    /// as the rollback, or after the rollback failed or did not verify.
    #[arg(long, value_name = "ID")]
    pub workaround: Option<String>,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The release to watch (or --all).
    #[arg(required_unless_present = "all")]
    pub release: Option<String>,
    /// Watch every open release, and each one that starts, until interrupted.
    #[arg(long, conflicts_with = "release")]
    pub all: bool,
    /// Measurements in flight at once, across all watched releases.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Run the whole loop: when the rollback is approved (automatically, or by deciders while
    /// this watches), execute it as this user and verify it (procedure.verify_after).
    #[arg(long, conflicts_with = "all")]
    pub execute: bool,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    pub release: String,
    pub name: String,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    pub run: String,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    pub run: String,
    /// The steps to run again (default: every failed or aborted step that stops the run).
    pub steps: Vec<String>,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct SkipArgs {
    pub run: String,
    pub step: String,
    /// Why the step may count as done (journaled, shown in the report).
    #[arg(long)]
    pub reason: String,
    /// Keep waiting for manual confirmations instead of exiting with 7.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Human)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub run: Option<String>,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct ConfirmArgs {
    pub run: String,
    pub step: String,
    #[arg(long)]
    pub note: Option<String>,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Resolution {
    Done,
    Failed,
    Retry,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    pub run: String,
    pub step: String,
    #[arg(value_enum)]
    pub outcome: Resolution,
    #[arg(long)]
    pub note: Option<String>,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    pub run: String,
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    /// `json`: the ids and states this created, as one JSON object on standard output.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Only this release's notifications (its own events and its runs').
    #[arg(value_name = "REL")]
    pub release: Option<String>,
    /// First send every notification that is due now (after an outage, or from cron).
    #[arg(long)]
    pub send: bool,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run id, a release id for the whole story of the release, or with --durations a plan file.
    pub run: String,
    /// Per step of the plan PLAN: expected next to the median and worst measured in rehearsals
    /// and in real runs.
    #[arg(long)]
    pub durations: bool,
    /// Of the plan PLAN: every game day's legs over time (detection, decision, start,
    /// procedure, verification), oldest first.
    #[arg(long, conflicts_with = "durations")]
    pub drills: bool,
    /// `html` (a run only): one self-contained page with a Gantt chart of each step's expected
    /// bar against its actual one, retries and contingency steps marked, the critical path in red.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
}

/// What `backout report` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
    /// A self-contained HTML page with the run's Gantt chart (runs only).
    Html,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The service the plan is for.
    #[arg(long, default_value = "my-service")]
    pub service: String,
    /// Where to write the plan (`-` for standard output).
    #[arg(short, long, default_value = "backout.yaml")]
    pub output: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Plan files.
    #[arg(required = true, value_name = "PLAN")]
    pub plans: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LintOutput::Human)]
    pub format: LintOutput,
    /// Fail (exit 2) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Also print each plan's canonical content hash.
    #[arg(long)]
    pub hash: bool,
    /// Show every diagnostic with its excerpt. By default, past the first few of one code a
    /// file's repeats are summarised as "and N more B080 at lines …" (JSON always has all).
    #[arg(long)]
    pub all: bool,
    /// Also check rehearsal evidence in the store: untested (B084) and stale (B085) plans and
    /// steps slower than expected (B086), as warnings.
    #[arg(long, conflicts_with = "offline")]
    pub evidence: bool,
    /// Like --evidence, but an untested or stale plan is an error (exit 2): the gate for CI
    /// and change boards.
    #[arg(long, conflicts_with = "offline")]
    pub require_tested: bool,
    /// Never open the store (the default unless --evidence or --require-tested is given).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Human,
    Json,
}

/// What `backout lint` prints: [`LintFormat`] plus the formats CI reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintOutput {
    /// Caret excerpts for people.
    Human,
    /// Every diagnostic as a JSON array (file, code, severity, line, column, message, help).
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::…`): annotations on the
    /// pull request's lines.
    Github,
    /// SARIF 2.1.0 (GitHub code scanning, GitLab, IDEs).
    Sarif,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Document format.
    #[arg(long, value_enum, default_value_t = DocFormat::Md)]
    pub format: DocFormat,
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not read rehearsal evidence from the store (otherwise read when the store exists).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Md,
    Html,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub listen: String,
    /// Open releases only for accepted plans (`backout accept`). Without it, a release of an
    /// unaccepted plan opens, but its command criteria do not run, no automatic approval is
    /// honoured and nothing is executed until its plan is accepted.
    #[arg(long)]
    pub require_accepted: bool,
    /// Run every step, check and command criterion as this unprivileged user (its uid, primary
    /// group and HOME); serve itself must then start as root. Never run serve as root without it.
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Load a demo: a plan whose criteria read a fake service served by this process (raise
    /// its error rate from the web UI or with curl) and whose steps are harmless local
    /// commands, with one token per role printed at start. Uses its own data directory unless
    /// --database is given.
    #[arg(long)]
    pub demo: bool,
    /// Longest a client may take to send a request's headers (from connecting, or from the end
    /// of its previous request); an idle or trickling connection is closed after it.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: String,
    /// Most connections open at once from one client address; more are closed at once.
    #[arg(long, default_value_t = backout_server::router::CONNECTIONS_PER_IP, value_name = "N")]
    pub max_connections_per_ip: usize,
    /// The address people open this server at (e.g. https://backout.example.com): every
    /// notification links the release, run and decision pages under it.
    #[arg(long, env = "BACKOUT_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve https: the certificate chain (PEM, leaf first). Needs --tls-key. Behind a reverse
    /// proxy that terminates TLS, leave it out and give --public-url https://… instead.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once) on standard output.
    Create {
        /// The identity the token acts as; matched against the plan's people.
        #[arg(long)]
        user: String,
        /// What the token may do on the server.
        #[arg(long, value_enum)]
        role: TokenRole,
        /// `json`: the token's id, user, role and the bearer secret (shown once) as JSON.
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
    },
    /// Every token: id, user, role, who created it and when, revoked or active.
    List {
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
    },
    /// Revoke a token: it authenticates nobody from then on.
    Revoke {
        /// The token's id (`tok-…`, the part before the dot).
        id: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Reads releases, runs, deliveries and the audit trail.
    Viewer,
    /// Also starts releases, reports checkpoints, requests, checks, executes, confirms, resolves, aborts.
    Performer,
    /// Also approves or denies rollbacks.
    Decider,
    /// Everything.
    Admin,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of every event and check the run and step records against
    /// the events: exit 0 when both hold, 1 otherwise (the first broken link's seq, or each
    /// record the journal does not support, is printed). With --anchor, also check the journal
    /// against a signed head made earlier by `audit anchor`: truncation or a rewritten (and
    /// recomputed) history up to the anchor is detected.
    Verify {
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
        /// A file written by `backout audit anchor` (kept outside the store).
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
        /// The audit key, instead of BACKOUT_AUDIT_KEY.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Print the head of the journal (seq, hash) signed with HMAC-SHA256 under the audit key
    /// (BACKOUT_AUDIT_KEY or --key-file; a key the store never holds). Keep the output
    /// elsewhere (a ticket, a channel, a backup): `audit verify --anchor FILE` then detects
    /// truncation and rewritten history up to it. The chain must verify first.
    Anchor {
        /// The audit key, instead of BACKOUT_AUDIT_KEY.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Every event, in order, as JSON lines (seq, time, kind, ids, actor, payload, hashes).
    Export {
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The SQLite store to copy: `sqlite://PATH` (or a plain path). Read only.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The PostgreSQL store to fill: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`. The
    /// database must exist and hold no backout records.
    #[arg(value_name = "TARGET")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct GamedayArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// The environment the drill runs in (its release and messages name it, marked DRILL).
    #[arg(long)]
    pub env: String,
    /// The fault to inject (sh -c): stop a service, flip a flag, inject errors.
    #[arg(long = "break", value_name = "CMD")]
    pub break_command: String,
    /// Undo the fault at the end (sh -c); runs always, also after a failure or Ctrl-C.
    #[arg(long = "heal", value_name = "CMD")]
    pub heal_command: Option<String>,
    /// Unattended: approve and execute as `backout:gameday` (no people needed).
    #[arg(long)]
    pub auto: bool,
    /// Give up when the loop has not finished after this long (e.g. 30m, 2h).
    #[arg(long, default_value = "2h")]
    pub timeout: String,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct CriteriaArgs {
    #[command(subcommand)]
    pub command: CriteriaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CriteriaCommand {
    /// Replay each Prometheus criterion's evaluation over its history (query_range at its
    /// `every`): measurements, trips with their values, inconclusive and no-data shares, the
    /// signal's p50/p95/p99/max, and whether given incidents would have been caught.
    Backtest(BacktestArgs),
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// How far back from now (or --to): a duration like 14d or 36h (default 14d).
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub since: Option<String>,
    /// Start of the history, RFC 3339 (with --to, or up to now).
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// End of the history, RFC 3339 (default now).
    #[arg(long, value_name = "RFC3339")]
    pub to: Option<String>,
    /// Only this criterion (repeatable; default every Prometheus criterion).
    #[arg(long = "criterion", value_name = "ID")]
    pub criteria: Vec<String>,
    /// A release deployed at this time, RFC 3339 (repeatable): its window is replayed from
    /// there. Default: a release at every step (a sliding window).
    #[arg(long = "deploy-at", value_name = "RFC3339")]
    pub deploy_at: Vec<String>,
    /// A real incident began at this time, RFC 3339 (repeatable): was it caught, how soon?
    #[arg(long = "incident", value_name = "RFC3339")]
    pub incidents: Vec<String>,
    /// Propose fails_if/trips_after that would have tripped at most --max-false-trips times
    /// outside the incidents while catching each, as a YAML patch with the figures behind it.
    #[arg(long)]
    pub suggest: bool,
    /// With --suggest: trips outside the given incidents the suggestion may make.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "suggest")]
    pub max_false_trips: usize,
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
}

#[derive(Debug, Args)]
pub struct PlansArgs {
    #[command(subcommand)]
    pub command: PlansCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Register a plan's current content for scheduled rehearsals.
    Add { plan: PathBuf },
    /// Withdraw the registration of a plan's current content.
    Remove { plan: PathBuf },
    /// The registered plans with their schedule, newest evidence and when it expires.
    List {
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub command: ImportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// AnalysisTemplate / ClusterAnalysisTemplate with the prometheus provider.
    Argo {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// A template argument's value, NAME=VALUE (repeatable), for `{{args.NAME}}` in queries.
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// MetricTemplate(s) and the Canary whose analysis.metrics use them.
    Flagger {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}
