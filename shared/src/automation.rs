//! SSM Automation execution statuses: which are terminal, and whether they succeeded.
//! Strings, not the SDK enum, so a status AWS adds later is handled (as still running).

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Still going (or waiting on something); poll again.
    Running,
    /// Finished and did its job.
    Succeeded,
    /// Finished without doing its job (`Failed`, `TimedOut`, `Cancelled`, ...).
    Failed,
}

/// Classifies an `AutomationExecutionStatus` value.
pub fn classify(status: &str) -> StatusClass {
    match status {
        "Success" | "CompletedWithSuccess" => StatusClass::Succeeded,
        "Failed"
        | "TimedOut"
        | "Cancelled"
        | "Rejected"
        | "CompletedWithFailure"
        | "Exited"
        | "ChangeCalendarOverrideRejected" => StatusClass::Failed,
        // Pending, InProgress, Waiting, Cancelling, PendingApproval, Approved, Scheduled,
        // RunbookInProgress, PendingChangeCalendarOverride, ... and anything new.
        _ => StatusClass::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses() {
        for s in ["Success", "CompletedWithSuccess"] {
            assert_eq!(classify(s), StatusClass::Succeeded, "{s}");
        }
        for s in [
            "Failed",
            "TimedOut",
            "Cancelled",
            "Rejected",
            "CompletedWithFailure",
            "Exited",
        ] {
            assert_eq!(classify(s), StatusClass::Failed, "{s}");
        }
        for s in [
            "Pending",
            "InProgress",
            "Waiting",
            "Cancelling",
            "SomethingNew",
        ] {
            assert_eq!(classify(s), StatusClass::Running, "{s}");
        }
    }
}
