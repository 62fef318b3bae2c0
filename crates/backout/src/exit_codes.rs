//! The documented exit codes (a contract: scripts and CI depend on them).

/// Process exit codes of `backout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// A bug or an environment failure we could not classify.
    Internal = 1,
    /// Bad usage or an invalid plan.
    Usage = 2,
    #[allow(dead_code)] // Used by `check`/`watch` (verdicts), which come with releases.
    RollbackRequired = 3,
    #[allow(dead_code)]
    Inconclusive = 4,
    #[allow(dead_code)] // Refusals: not authorized, window closed, precondition failed.
    Refused = 5,
    #[allow(dead_code)]
    RunFailed = 6,
    #[allow(dead_code)]
    Waiting = 7,
}

/// An error that ends a command, with the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    pub code: ExitCode,
    pub message: String,
}

impl CommandError {
    pub fn usage(message: impl Into<String>) -> CommandError {
        CommandError {
            code: ExitCode::Usage,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> CommandError {
        CommandError {
            code: ExitCode::Internal,
            message: message.into(),
        }
    }
    pub fn exit_code(&self) -> ExitCode {
        self.code
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
