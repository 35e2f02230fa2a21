//! The `redress` workers and commands over the pure domain crate (`redress`): the
//! router and executor, the worker loop that acknowledges messages, the Lambda adapter,
//! the operator and approver commands, and the AWS edge ([`aws`] and the seams it names),
//! the only code that names AWS SDK types. `main.rs` is a thin entry point.
//!
//! Layers (a module may import the ones below it, never above): commands
//! (`approvals`, `dlq`, `emit`, `history`, `ledger_report`, `policy_cmd`, `provision`,
//! `run`, `runbooks_cmd`, `sweep`, `lambda`) → workers
//! (`router`, `executor`, `handoff`, `worker`, `report`) → `aws` → the domain crate.

pub mod approvals;
pub mod aws;
pub mod cli;
pub mod dlq;
pub mod emit;
pub mod error;
pub mod evaluate;
pub mod executor;
pub mod handoff;
pub mod history;
pub mod lambda;
pub mod ledger_report;
pub mod logging;
pub mod notify;
pub mod output;
pub mod policy_cmd;
pub mod provision;
pub mod report;
pub mod router;
pub mod run;
pub mod runbooks_cmd;
pub mod settle;
pub mod sweep;
#[cfg(test)]
mod test_support;
pub mod undo_cmd;
pub mod worker;
