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
    /// `check`: a criterion tripped, or a person requested a rollback.
    RollbackRequired = 3,
    /// `check`: a criterion cannot be judged; a human should look.
    Inconclusive = 4,
    /// Not authorized, window closed, precondition failed, or the request cannot be honoured.
    Refused = 5,
    RunFailed = 6,
    /// A run waits for a person (manual step, in-doubt step).
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
    pub fn refused(message: impl Into<String>) -> CommandError {
        CommandError {
            code: ExitCode::Refused,
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

impl From<backout_core::ExecError> for CommandError {
    fn from(error: backout_core::ExecError) -> CommandError {
        match error {
            backout_core::ExecError::Refused(message) => CommandError::refused(message),
            backout_core::ExecError::Usage(message) => CommandError::usage(message),
            backout_core::ExecError::Store(backout_store::StoreError::NotFound { entity, id }) => {
                CommandError::usage(format!(
                    "no {entity} `{id}` in this store (see `backout status`)"
                ))
            }
            other => CommandError::internal(other.to_string()),
        }
    }
}

impl From<backout_store::StoreError> for CommandError {
    fn from(error: backout_store::StoreError) -> CommandError {
        backout_core::ExecError::from(error).into()
    }
}
