//! Command failures and their exit codes: 1 operation failed, 2 bad usage or bad input.

use std::fmt;

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// What to tell the user.
    pub message: String,
}

impl CliError {
    /// Bad usage or bad input (exit 2).
    pub fn input(message: impl fmt::Display) -> Self {
        CliError {
            code: 2,
            message: message.to_string(),
        }
    }

    /// The operation failed (exit 1).
    pub fn failed(message: impl fmt::Display) -> Self {
        CliError {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<crate::aws::retry::AwsError> for CliError {
    fn from(e: crate::aws::retry::AwsError) -> Self {
        CliError::failed(e)
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
