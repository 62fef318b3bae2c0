//! The `backout` binary: command-line arguments → operations → exit codes.
//!
//! Parsing and checking plans lives in `backout-model`; this crate reads files, prints, and maps
//! outcomes to the documented exit codes in one place (`exit_codes`).

mod cli;
mod commands;
mod exit_codes;
mod output;
mod remote;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    output::set_color(cli.global.color);
    let code = match remote::gate::refuse_local_only(&cli.command).and_then(|()| commands::run(cli))
    {
        Ok(code) => code,
        Err(error) => {
            output::error(&format!("{error:#}"));
            error.exit_code()
        }
    };
    std::process::ExitCode::from(code as u8)
}
