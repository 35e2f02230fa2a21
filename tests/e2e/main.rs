//! End-to-end tests: the `redress` binary, through the real AWS SDK, against the local
//! stack (moto + the SSM Automation stand-in) on loopback. Each test owns its queues,
//! bus, policy and resources, and asserts on the state of the world afterwards.

mod accounts;
mod approvals;
mod automation_role;
mod bad_input;
mod chaos;
mod cli;
mod config;
mod detection;
mod dlq;
mod iam;
mod ledger;
mod ledger_approvals;
mod ledger_chaos;
mod ledger_fleet;
mod lifecycle;
mod notify;
mod pipeline;
mod report;
mod runbooks;
mod safety;
mod support;
mod templates;
mod trust;
mod undo;
