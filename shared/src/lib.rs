//! redress: an event-driven remediation pipeline for AWS Config findings.
//!
//! The way through, in order: [`event`] (parse and validate a message) → [`policy`]
//! (what the rules say) → [`decision`] (remediate, request approval, or skip) →
//! [`message`] (the task or approval request sent on) → [`audit`] (what was decided and
//! how it ended). [`ingress`] and [`automation`] hold the pure parts of the fixes.
//! Pure: no AWS SDK, no async runtime, no I/O; the AWS edge is `workers/src/aws/`.

pub mod approval;
pub mod approver;
pub mod audit;
pub mod automation;
pub mod catalog;
pub mod coverage;
pub mod dead_letter;
pub mod decision;
pub mod evaluate;
pub mod event;
pub mod guard;
pub mod ingress;
pub mod ledger;
pub mod message;
pub mod notify;
pub mod parameter_path;
pub mod policy;
pub mod text;
pub mod time;
pub mod validate;
pub mod verify;
