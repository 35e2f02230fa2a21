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
mod lifecycle;
mod pipeline;
mod runbooks;
mod safety;
mod support;
mod templates;
mod trust;
