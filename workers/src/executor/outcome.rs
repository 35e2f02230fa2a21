//! What a fix reports back to the executor.

use crate::aws::retry::{AwsError, ErrorClass};
use redress::audit::Outcome;
use redress::ledger::Change;

/// A fix that finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// `succeeded` or `already_compliant`.
    pub outcome: Outcome,
    /// SSM Automation execution id, for runbooks.
    pub execution_id: Option<String>,
    /// What changed, for people.
    pub detail: String,
    /// What changed, for the ledger: exactly what an undo needs and what the resource
    /// looked like after. `None` when nothing changed.
    pub change: Option<Change>,
}

impl Done {
    /// Nothing needed changing.
    pub fn already_compliant(detail: impl Into<String>) -> Done {
        Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: detail.into(),
            change: None,
        }
    }

    /// The change was made.
    pub fn succeeded(detail: impl Into<String>, change: Change) -> Done {
        Done {
            outcome: Outcome::Succeeded,
            execution_id: None,
            detail: detail.into(),
            change: Some(change),
        }
    }
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
    /// The fix declined to act for safety's sake (dead-lettered as `refused`, not
    /// counted as the fix failing).
    pub refused: bool,
}

impl FixError {
    /// A failure retrying cannot cure.
    pub fn permanent(message: impl Into<String>) -> Self {
        FixError {
            class: ErrorClass::Permanent,
            message: message.into(),
            execution_id: None,
            refused: false,
        }
    }

    /// A failure worth another attempt (the task is retried with back-off).
    pub fn transient(message: impl Into<String>) -> Self {
        FixError {
            class: ErrorClass::Transient,
            ..FixError::permanent(message)
        }
    }

    /// A change the fix will not make, e.g. one that would weaken a secret.
    pub fn refused(message: impl Into<String>) -> Self {
        FixError {
            refused: true,
            ..FixError::permanent(message)
        }
    }
}

impl From<AwsError> for FixError {
    fn from(e: AwsError) -> Self {
        FixError {
            class: e.class,
            message: e.to_string(),
            execution_id: None,
            refused: false,
        }
    }
}

/// Result of a fix.
pub type FixResult = Result<Done, FixError>;
