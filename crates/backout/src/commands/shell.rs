//! The shell around backout: completion scripts and the man page, generated from the same clap
//! definition as `--help`, so they never drift from the commands.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit_codes::{CommandError, ExitCode};

/// `backout completions SHELL`: the completion script on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, CommandError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "backout", &mut script);
    write(&script)
}

/// `backout man`: the man page (section 1, roff) on standard output.
pub fn man() -> Result<ExitCode, CommandError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| CommandError::internal(format!("cannot render the man page: {e}")))?;
    write(&page)
}

/// Generated text goes out as it is (never through the terminal filter: a script is not
/// text for people), and a closed pipe ends quietly.
fn write(bytes: &[u8]) -> Result<ExitCode, CommandError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        Err(e) => Err(CommandError::internal(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}
