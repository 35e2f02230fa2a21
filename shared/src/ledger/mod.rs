//! The remediation ledger: one entry per finding redress acts on (or decides not to),
//! holding what an undo, `redress history`, `redress report` and an auditor need, and
//! the lease that lets exactly one executor of a fleet act on a finding.
//!
//! Pure: this module models entries and decides (lease, status moves, undo plans, fleet
//! rate limits, reports); the AWS edge stores [`item::Item`]s and performs the
//! conditional writes the decisions describe.
//!
//! ## Lifecycle of an entry
//! The executor writes an entry **before** it changes anything (status `intent`, with the
//! state before and a lease), then completes it (`succeeded` or `failed`), and the closure
//! check moves it to `verified` or `still_non_compliant`. A crash in between leaves an open
//! `intent` whose lease lapses; the next executor takes it over ([`lease::may_take`]),
//! re-checks the resource, and completes it or makes what remains of the change
//! ([`recovery`]). Every write is conditional on what the decision read
//! ([`lease::Expect`]), so two executors never both act. Approval requests
//! start as `awaiting_approval` under the same id the approved task later claims. See
//! [`status`] for every allowed move.
//!
//! ## No secrets in the ledger
//! An entry never holds a parameter's value, of any type: String values can be
//! credentials as well as SecureString ones, and the ledger is read by everyone who may
//! run `history`. It holds what identifies a value instead: the version number, value
//! type, KMS key id and, for a deleted parameter, the name of its quarantine copy.
//! Parameter Store keeps every version (the last 100), readable as `NAME:VERSION`
//! (`GetParameter` with a selector, `GetParameterHistory`), so the number is all an undo
//! needs; if 100 newer writes pushed it out, the undo fails at execution and says so.
//! Runbook settings captured for an undo ([`model::Settings`]) are configuration
//! (algorithms, flags, key ids), never secret values.
//!
//! ## Key schema (one table, default `redress-ledger`)
//! - Partition key `id` (S), no sort key. Item kinds by id: ledger entries `le-` + 20 hex
//!   digits ([`model::EntryId`]); undo exceptions `ex#ACCOUNT#REGION#RULE#RESOURCE`
//!   ([`undo::UndoException::key`]); fleet counters `rate#…` and `breaker#…`
//!   ([`limits`]).
//! - Global secondary indexes, each with sort key `at` (S, RFC 3339 to the second, the
//!   entry's decision time, so a `--since` is a key condition `at >= :since`):
//!   `by-resource` (partition `by_resource`: the resource id, for `history --resource`),
//!   `by-rule` (`by_rule`: the policy rule id, for `--rule`; a glob with wildcards reads
//!   every rule's partition or scans), `by-account` (`by_account`, for `--account`),
//!   `by-day` (`by_day`: `YYYY-MM-DD` of `at`, so `report --since 30d` queries 30
//!   partitions instead of scanning), and `open` (`open`: the status, present only while
//!   an entry is `awaiting_approval` or `intent`; a sparse index of unfinished work for
//!   crash recovery and reconciling the approvals queue).
//! - Only entries carry the index attributes, so counters and exceptions stay out of the
//!   indexes. TTL attribute `ttl` (N, epoch seconds): finished entries after the
//!   configured retention, exceptions at their end, counters an hour after their minute.
//! - Conditions name the entry's own attributes: `#status`, `lease.holder`,
//!   `lease.expires_at` (see [`lease::Expect`]).

pub mod atoms;
pub mod csv;
pub mod item;
pub mod lease;
pub mod limits;
pub mod model;
pub mod reconcile;
pub mod recovery;
pub mod report;
pub mod status;
pub mod undo;

pub use item::{AttrValue, Item, ItemError};
pub use lease::{may_complete, may_take, Busy, Expect, Take};
pub use model::{
    Actor, Change, EntryAction, EntryId, Lease, LedgerEntry, ParameterVersion, Principal, Settings,
    Times, UndoOf,
};
pub use status::{InvalidTransition, Status};
pub use undo::{plan_undo, Observed, Refusal, UndoException, UndoPlan, UndoRequest};
