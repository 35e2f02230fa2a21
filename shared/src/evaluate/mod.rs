//! redress's own Config custom rules, as pure functions from what Config hands a rule
//! (a configuration item, the rule's input parameters) to the evaluations it reports.
//! The AWS edge (invocations, `PutEvaluations`) lives in the workers crate.

pub mod invocation;
pub mod parameter_drift;
pub mod security_group;

use serde::Serialize;

/// Longest annotation Config accepts.
pub const MAX_ANNOTATION: usize = 256;

/// One evaluation, as `PutEvaluations` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// `AWS::EC2::SecurityGroup`, ...
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// `COMPLIANT`, `NON_COMPLIANT` or `NOT_APPLICABLE`.
    pub compliance: &'static str,
    /// Why, at most [`MAX_ANNOTATION`] characters.
    pub annotation: Option<String>,
}

/// `text`, cut to [`MAX_ANNOTATION`] characters (ending in `…` when cut).
pub fn annotation(text: &str) -> String {
    if text.chars().count() <= MAX_ANNOTATION {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_ANNOTATION - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_fit_what_config_accepts() {
        assert_eq!(annotation("short"), "short");
        let long = "x".repeat(300);
        let cut = annotation(&long);
        assert_eq!(cut.chars().count(), MAX_ANNOTATION);
        assert!(cut.ends_with('…'));
    }
}
