//! `backout init`: a commented skeleton that lints with exactly the unanswered questions.

use std::io::Write;

use crate::cli::InitArgs;
use crate::commands::context::Context;
use crate::exit_codes::{CommandError, ExitCode};

pub fn run(args: &InitArgs, ctx: &Context) -> Result<ExitCode, CommandError> {
    let engineer = ctx
        .global
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "you@example.com".into());
    let text = backout_model::skeleton::skeleton(&args.service, &engineer);
    if args.output.as_os_str() == "-" {
        crate::output::out(&text);
        return Ok(ExitCode::Ok);
    }
    let shown = args.output.display();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(args.force)
        .create_new(!args.force)
        .open(&args.output)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CommandError::usage(format!(
                "`{shown}` already exists; choose another file with -o, or --force to overwrite"
            )),
            _ => CommandError::usage(format!("cannot write `{shown}`: {e}")),
        })?;
    file.write_all(text.as_bytes())
        .map_err(|e| CommandError::usage(format!("cannot write `{shown}`: {e}")))?;
    eprintln!("wrote {shown}; fill in each section and run `backout lint {shown}`");
    Ok(ExitCode::Ok)
}
