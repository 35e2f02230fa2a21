//! The remediation ledger's table (DynamoDB): read an entry, write one on a condition,
//! query an index. The domain ([`redress::ledger`]) decides what to write and on what
//! condition ([`Expect`]); this seam turns its items into DynamoDB's and its conditions
//! into condition expressions, and says plainly when a condition did not hold: someone
//! else (another executor) holds or finished the finding since it was read.
//!
//! Entries are written whole (`PutItem`), so the index attributes ([`LedgerEntry::to_item`])
//! always agree with the entry: an entry leaving `intent` leaves the `open` index in the
//! same write. Reads of one entry are strongly consistent (a lease decision must see the
//! last write); index queries cannot be.
//!
//! Creating the table is `redress provision`'s business ([`super::ledger_table`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, TableStatus};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use redress::ledger::{item, AttrValue, EntryId, Expect, Item, LedgerEntry};

use super::retry::AwsError;

/// A secondary index of the ledger (see [`redress::ledger`]'s key schema): partition by
/// one attribute, sorted by the decision time ([`item::AT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// By resource id (`history --resource`).
    Resource,
    /// By policy rule id (`history --rule`).
    Rule,
    /// By account (`history --account`).
    Account,
    /// By day of the decision (`YYYY-MM-DD`): a time window without a scan.
    Day,
    /// Open entries only (`awaiting_approval`, `intent`): unfinished work.
    Open,
}

impl Index {
    /// Every index, as the table is created with them.
    pub const ALL: [Index; 5] = [
        Index::Resource,
        Index::Rule,
        Index::Account,
        Index::Day,
        Index::Open,
    ];

    /// The index's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Index::Resource => "by-resource",
            Index::Rule => "by-rule",
            Index::Account => "by-account",
            Index::Day => "by-day",
            Index::Open => "open",
        }
    }

    /// Its partition key attribute.
    pub fn partition(self) -> &'static str {
        match self {
            Index::Resource => item::BY_RESOURCE,
            Index::Rule => item::BY_RULE,
            Index::Account => item::BY_ACCOUNT,
            Index::Day => item::BY_DAY,
            Index::Open => item::OPEN,
        }
    }
}

/// Why a ledger call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The write's condition did not hold: the entry changed since it was read, so
    /// someone else (another executor) holds this finding or has dealt with it.
    #[error("someone else holds this finding: its ledger entry changed since it was read")]
    HeldByAnother,
    /// The call failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// An item in the table is not a ledger entry this version can read.
    #[error("ledger item {id} cannot be read: {reason}")]
    Unreadable {
        /// The item's id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// The ledger table.
#[derive(Debug, Clone)]
pub struct LedgerTable {
    pub(super) client: aws_sdk_dynamodb::Client,
    pub(super) name: String,
}

impl LedgerTable {
    /// The table `name` through this client.
    pub fn new(client: aws_sdk_dynamodb::Client, name: &str) -> LedgerTable {
        LedgerTable {
            client,
            name: name.to_string(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the table exists (`DescribeTable`).
    pub async fn exists(&self) -> Result<bool, AwsError> {
        Ok(table_status(&self.client, &self.name).await?.is_some())
    }

    /// The entry with this id, read strongly consistent.
    pub async fn get(&self, id: &EntryId) -> Result<Option<LedgerEntry>, LedgerError> {
        self.read(id.as_str())
            .await?
            .as_ref()
            .map(entry)
            .transpose()
    }

    /// The item stored under `key`, read strongly consistent (a lease or exception
    /// decision must see the last write).
    pub(super) async fn read(
        &self,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(item::ID, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:GetItem", e))?;
        Ok(out.item)
    }

    /// Writes `entry` whole if the stored item is as `expect` says; a condition that
    /// does not hold is [`LedgerError::HeldByAnother`]. `retention`: how long a finished
    /// entry is kept (its `ttl`).
    pub async fn write(
        &self,
        entry: &LedgerEntry,
        expect: &Expect,
        retention: Option<Duration>,
    ) -> Result<(), LedgerError> {
        let c = Condition::of(expect);
        let values = (!c.values.is_empty()).then_some(c.values);
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_sdk_item(&entry.to_item(retention))))
            .condition_expression(c.expression)
            .set_expression_attribute_names(Some(c.names))
            .set_expression_attribute_values(values)
            .send()
            .await;
        match conditional("dynamodb:PutItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })? {
            true => Ok(()),
            false => Err(LedgerError::HeldByAnother),
        }
    }

    /// [`write`](Self::write), riding out transient errors for up to `patience` (a
    /// record of a change already made should not be lost to a short outage). A
    /// condition that does not hold is not retried.
    pub async fn write_patiently(
        &self,
        entry: &LedgerEntry,
        expect: &Expect,
        retention: Option<Duration>,
        patience: Duration,
    ) -> Result<(), LedgerError> {
        let written = super::retry::with_backoff(patience, || async {
            match self.write(entry, expect, retention).await {
                Err(LedgerError::Aws(e)) => Err(e),
                other => Ok(other),
            }
        })
        .await;
        written.map_err(LedgerError::Aws)?
    }

    /// Every entry of `index` whose partition is `key`, decided at or after `since`,
    /// oldest first.
    pub async fn query(
        &self,
        index: Index,
        key: &str,
        since: Option<SystemTime>,
    ) -> Result<Vec<LedgerEntry>, LedgerError> {
        let mut names = HashMap::from([("#pk".to_string(), index.partition().to_string())]);
        let mut values = HashMap::from([(":pk".to_string(), AttributeValue::S(key.into()))]);
        let mut expression = "#pk = :pk".to_string();
        if let Some(t) = since {
            names.insert("#at".into(), item::AT.into());
            values.insert(
                ":since".into(),
                AttributeValue::S(redress::time::format_rfc3339(t)),
            );
            expression.push_str(" AND #at >= :since");
        }
        let mut entries = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .index_name(index.name())
                .key_condition_expression(&expression)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("dynamodb:Query", e))?;
            for i in out.items() {
                entries.push(entry(i)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(entries)
    }
}

/// The status of table `name`, `None` when it does not exist.
pub(super) async fn table_status(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<Option<TableStatus>, AwsError> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => Ok(out.table().and_then(|t| t.table_status()).cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(AwsError::from_sdk("dynamodb:DescribeTable", e)),
    }
}

/// A condition expression with its attribute names and values.
#[derive(Debug, PartialEq)]
struct Condition {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Condition {
    /// What [`Expect`] says, as DynamoDB evaluates it atomically with the write.
    fn of(expect: &Expect) -> Condition {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let names = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let lease = [
            ("#status", "status"),
            ("#lease", "lease"),
            ("#holder", "holder"),
            ("#expires", "expires_at"),
        ];
        match expect {
            Expect::Absent => Condition {
                expression: "attribute_not_exists(#id)".into(),
                names: names(&[("#id", item::ID)]),
                values: HashMap::new(),
            },
            Expect::Entry {
                status,
                lease: None,
            } => Condition {
                expression: "#status = :status AND attribute_not_exists(#lease)".into(),
                names: names(&[("#status", "status"), ("#lease", "lease")]),
                values: HashMap::from([(":status".into(), s(status.as_str()))]),
            },
            Expect::Entry {
                status,
                lease: Some(l),
            } => Condition {
                expression:
                    "#status = :status AND #lease.#holder = :holder AND #lease.#expires = :expires"
                        .into(),
                names: names(&lease),
                values: HashMap::from([
                    (":status".into(), s(status.as_str())),
                    (":holder".into(), s(&l.holder)),
                    (
                        ":expires".into(),
                        s(&redress::time::format_rfc3339(l.expires_at)),
                    ),
                ]),
            },
            Expect::HeldBy(me) => Condition {
                expression: "#status = :intent AND #lease.#holder = :holder".into(),
                names: names(&lease[..3]),
                values: HashMap::from([
                    (
                        ":intent".into(),
                        s(redress::ledger::Status::Intent.as_str()),
                    ),
                    (":holder".into(), s(me)),
                ]),
            },
        }
    }
}

/// The SDK's value of one of the domain's.
pub fn to_sdk(v: &AttrValue) -> AttributeValue {
    match v {
        AttrValue::S(s) => AttributeValue::S(s.clone()),
        AttrValue::N(n) => AttributeValue::N(n.clone()),
        AttrValue::Bool(b) => AttributeValue::Bool(*b),
        AttrValue::Null => AttributeValue::Null(true),
        AttrValue::L(l) => AttributeValue::L(l.iter().map(to_sdk).collect()),
        AttrValue::M(m) => {
            AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect())
        }
    }
}

/// The domain's value of one of the SDK's; kinds the ledger never writes (binary, sets)
/// are an error.
pub fn from_sdk(v: &AttributeValue) -> Result<AttrValue, String> {
    Ok(match v {
        AttributeValue::S(s) => AttrValue::S(s.clone()),
        AttributeValue::N(n) => AttrValue::N(n.clone()),
        AttributeValue::Bool(b) => AttrValue::Bool(*b),
        AttributeValue::Null(_) => AttrValue::Null,
        AttributeValue::L(l) => AttrValue::L(l.iter().map(from_sdk).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => AttrValue::M(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), from_sdk(v)?)))
                .collect::<Result<BTreeMap<_, _>, String>>()?,
        ),
        other => {
            return Err(format!(
                "a value of a kind the ledger never writes: {other:?}"
            ))
        }
    })
}

/// A conditional write's result: `true` when written, `false` when its condition did
/// not hold (`failed` recognises the operation's ConditionalCheckFailedException:
/// someone else wrote first), an error otherwise.
pub(super) fn conditional<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
    failed: impl Fn(&E) -> bool,
) -> Result<bool, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(&failed) => Ok(false),
        Err(e) => Err(AwsError::from_sdk(operation, e)),
    }
}

pub(super) fn to_sdk_item(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()
}

/// A ledger entry from a stored item.
fn entry(stored: &HashMap<String, AttributeValue>) -> Result<LedgerEntry, LedgerError> {
    let (id, domain) = domain_item(stored)?;
    LedgerEntry::from_item(&domain).map_err(|e| LedgerError::Unreadable {
        id,
        reason: e.to_string(),
    })
}

/// A stored item in the domain's form, with its id (for errors).
pub(super) fn domain_item(
    stored: &HashMap<String, AttributeValue>,
) -> Result<(String, Item), LedgerError> {
    let id = match stored.get(item::ID) {
        Some(AttributeValue::S(id)) => id.clone(),
        _ => "(no id)".into(),
    };
    let domain = stored
        .iter()
        .map(|(k, v)| Ok((k.clone(), from_sdk(v)?)))
        .collect::<Result<Item, String>>()
        .map_err(|reason| LedgerError::Unreadable {
            id: id.clone(),
            reason,
        })?;
    Ok((id, domain))
}

#[cfg(test)]
#[path = "test_ledger.rs"]
mod tests;
