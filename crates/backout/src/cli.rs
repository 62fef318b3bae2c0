//! Command-line arguments (clap derive). Each command's `--help` ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "backout",
    version,
    about = "Make a release's backout plan real: lint, render, watch, decide, execute, rehearse.",
    after_help = "Start with `backout init --service NAME`, then `backout lint backout.yaml`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Store URL: sqlite://PATH (default: a file under the user's data dir) or postgres://…
    #[arg(long, global = true, env = "BACKOUT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    /// Who is acting (defaults to the OS user).
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
        after_help = "Examples:\n  backout lint backout.yaml\n  backout lint --format json plans/*.yaml\n  backout lint --hash backout.yaml"
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
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Fail (exit 2) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Also print each plan's canonical content hash.
    #[arg(long)]
    pub hash: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Human,
    Json,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Md,
    Html,
}
