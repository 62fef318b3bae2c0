//! Which commands work against a server. Those the API has no equivalent for (a bare `run`,
//! `watch`, `rehearse`, `evidence`, `report`, `resume`, `token`, `serve`, …) are refused when
//! `BACKOUT_SERVER` is set, rather than silently reading a local store the person did not mean.

use crate::cli::{AuditCommand, Command};
use crate::exit_codes::CommandError;

use super::{SERVER_VAR, server_url};

/// Refuses (exit 2) a command that works on a local store only while `BACKOUT_SERVER` is set.
pub fn refuse_local_only(command: &Command) -> Result<(), CommandError> {
    let Some(base) = server_url() else {
        return Ok(());
    };
    let refused = |name: &str, why: &str| {
        Err(CommandError::usage(format!(
            "`backout {name}` {why}, and {SERVER_VAR} is set ({base}); to run it on a local \
             store, unset {SERVER_VAR} and pass --database URL (or set BACKOUT_DATABASE_URL)"
        )))
    };
    const LOCAL: &str = "works on a local store only";
    match command {
        // Plan files only: no store involved.
        Command::Init(_)
        | Command::Render(_)
        | Command::Schema
        | Command::Completions { .. }
        | Command::Man => Ok(()),
        // A plan file and its Prometheus: no store involved.
        Command::Criteria(_) | Command::Import(_) => Ok(()),
        // `--evidence`/`--require-tested` read the server's evidence (`GET /api/v1/evidence`).
        Command::Lint(_) => Ok(()),
        // Through the API.
        Command::Start(_)
        | Command::Accept(_)
        | Command::Checkpoint(_)
        | Command::Check(_)
        | Command::Request(_)
        | Command::Decide(_)
        | Command::Execute(_)
        | Command::Status(_)
        | Command::Confirm(_)
        | Command::Resolve(_)
        | Command::Retry(_)
        | Command::Skip(_)
        | Command::Abort(_) => Ok(()),
        Command::Deliveries(args) if args.send => refused(
            "deliveries --send",
            "works on a local store only (the server sends its notifications itself)",
        ),
        Command::Deliveries(args) if args.release.is_none() => refused(
            "deliveries",
            "without a release id works on a local store only (give REL to list a release's \
             notifications from the server)",
        ),
        Command::Deliveries(_) => Ok(()),
        Command::Audit(args) => match args.command {
            AuditCommand::Verify {
                anchor: Some(_), ..
            } => refused(
                "audit verify --anchor",
                "works on a store only (point --database at the server's store)",
            ),
            AuditCommand::Verify { .. } => Ok(()),
            AuditCommand::Anchor { .. } => refused("audit anchor", LOCAL),
            AuditCommand::Export { .. } => refused("audit export", LOCAL),
        },
        Command::Run(_) => refused("run", LOCAL),
        Command::Watch(_) => refused(
            "watch",
            "works on a local store only (the server watches every open release itself; \
             `backout check REL` measures once through it)",
        ),
        Command::Rehearse(_) => refused("rehearse", LOCAL),
        Command::Evidence(_) => refused("evidence", LOCAL),
        Command::Resume(_) => refused(
            "resume",
            "works on a local store only (the server resumes its runs itself)",
        ),
        Command::Report(_) => refused("report", LOCAL),
        Command::Serve(_) => refused("serve", LOCAL),
        Command::Token(_) => refused("token", LOCAL),
        #[allow(unreachable_patterns)]
        _ => refused(&command_name(), LOCAL),
    }
}

/// The command as typed: the first word after the global options.
fn command_name() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database" | "--as" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return a.to_string(),
        }
    }
    "this command".to_string()
}
