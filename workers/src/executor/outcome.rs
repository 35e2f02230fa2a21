//! What a fix reports back to the executor.

use redress::audit::Outcome;
use redress::retry::{AwsError, ErrorClass};

/// A fix that finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// `succeeded` or `already_compliant`.
    pub outcome: Outcome,
    /// SSM Automation execution id, for runbooks.
    pub execution_id: Option<String>,
    /// What changed, for people.
    pub detail: String,
}

/// A fix that did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixError {
    /// Retry or give up.
    pub class: ErrorClass,
    /// Why.
    pub message: String,
    /// SSM Automation execution id, when one was started.
    pub execution_id: Option<String>,
}

impl FixError {
    /// A failure retrying cannot cure.
    pub fn permanent(message: impl Into<String>) -> Self {
        FixError {
            class: ErrorClass::Permanent,
            message: message.into(),
            execution_id: None,
        }
    }
}

impl From<AwsError> for FixError {
    fn from(e: AwsError) -> Self {
        FixError {
            class: e.class,
            message: e.to_string(),
            execution_id: None,
        }
    }
}

/// Result of a fix.
pub type FixResult = Result<Done, FixError>;
