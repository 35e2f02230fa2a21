//! Ledger entries as store items: a flat map of named attributes whose values are the
//! few kinds DynamoDB has, without naming any SDK type (the AWS edge converts
//! [`AttrValue`] to and from its own). An entry's fields become top-level attributes
//! (nested structures as maps and lists), and the index attributes of the key schema
//! (see [`super`]) are added beside them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::model::LedgerEntry;
use super::status::Status;

/// One attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    /// A string.
    S(String),
    /// A number, as text (DynamoDB's own representation: exact, no float rounding).
    N(String),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// A list.
    L(Vec<AttrValue>),
    /// A map.
    M(BTreeMap<String, AttrValue>),
}

/// A store item: attribute name → value.
pub type Item = BTreeMap<String, AttrValue>;

/// Why an item could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// A number attribute that is not a number.
    #[error("attribute holds {0:?}, which is not a number")]
    NotANumber(String),
    /// The attributes do not make the expected record.
    #[error("not a ledger record: {0}")]
    Shape(#[from] serde_json::Error),
}

/// Partition key attribute.
pub const ID: &str = "id";
/// Index attribute: the resource id (index `by-resource`).
pub const BY_RESOURCE: &str = "by_resource";
/// Index attribute: the policy rule id (index `by-rule`).
pub const BY_RULE: &str = "by_rule";
/// Index attribute: the account (index `by-account`).
pub const BY_ACCOUNT: &str = "by_account";
/// Index attribute: `YYYY-MM-DD` of the decision (index `by-day`).
pub const BY_DAY: &str = "by_day";
/// Sparse index attribute: the status while the entry is open (index `open`).
pub const OPEN: &str = "open";
/// Sort key of every index: the decision time, RFC 3339 to the second.
pub const AT: &str = "at";
/// TTL attribute: epoch seconds after which the store may delete the item.
pub const TTL: &str = "ttl";

/// Attributes the item adds to an entry's own fields; none may be a field name.
pub const INDEX_ATTRIBUTES: [&str; 7] = [BY_RESOURCE, BY_RULE, BY_ACCOUNT, BY_DAY, OPEN, AT, TTL];

impl AttrValue {
    /// The value of a JSON value.
    pub fn from_json(v: &Value) -> AttrValue {
        match v {
            Value::Null => AttrValue::Null,
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Number(n) => AttrValue::N(n.to_string()),
            Value::String(s) => AttrValue::S(s.clone()),
            Value::Array(a) => AttrValue::L(a.iter().map(AttrValue::from_json).collect()),
            Value::Object(o) => AttrValue::M(
                o.iter()
                    .map(|(k, v)| (k.clone(), AttrValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Result<Value, ItemError> {
        Ok(match self {
            AttrValue::Null => Value::Null,
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::N(n) => Value::Number(number(n)?),
            AttrValue::S(s) => Value::String(s.clone()),
            AttrValue::L(l) => {
                Value::Array(l.iter().map(AttrValue::to_json).collect::<Result<_, _>>()?)
            }
            AttrValue::M(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
                    .collect::<Result<Map<_, _>, ItemError>>()?,
            ),
        })
    }

    /// The string, for an `S`.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttrValue::S(s) => Some(s),
            _ => None,
        }
    }
}

/// Whole numbers first, so versions and counters stay exact.
fn number(text: &str) -> Result<Number, ItemError> {
    let bad = || ItemError::NotANumber(text.to_string());
    if let Ok(u) = text.parse::<u64>() {
        return Ok(u.into());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(i.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(bad)
}

/// Any record as an item: its top-level fields become attributes.
pub fn to_item<T: Serialize>(record: &T) -> Item {
    // Records here are plain data with string keys; serialising them cannot fail.
    match serde_json::to_value(record).expect("a ledger record serialises") {
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), AttrValue::from_json(v)))
            .collect(),
        other => panic!("a ledger record is a struct, not {other}"),
    }
}

/// A record from an item; attributes the record does not know are ignored.
pub fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, ItemError> {
    let fields = item
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
        .collect::<Result<Map<_, _>, ItemError>>()?;
    Ok(serde_json::from_value(Value::Object(fields))?)
}

/// Epoch seconds, for `ttl`.
pub fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl LedgerEntry {
    /// The entry as an item, with its index attributes. With `retention`, a finished
    /// entry gets a `ttl` that long after its decision; an open one never does, so
    /// unfinished work cannot expire out of sight.
    pub fn to_item(&self, retention: Option<Duration>) -> Item {
        let mut item = to_item(self);
        let at = crate::time::format_rfc3339(self.times.decided_at);
        let s = |v: &str| AttrValue::S(v.to_string());
        item.insert(BY_RESOURCE.into(), s(&self.finding.resource_id));
        item.insert(BY_RULE.into(), s(&self.rule_id));
        item.insert(BY_ACCOUNT.into(), s(&self.finding.account_id));
        item.insert(BY_DAY.into(), s(&at[..10]));
        if self.status.is_open() {
            item.insert(OPEN.into(), s(self.status.as_str()));
        } else if let Some(keep) = retention {
            let ttl = epoch(self.times.decided_at).saturating_add(keep.as_secs());
            item.insert(TTL.into(), AttrValue::N(ttl.to_string()));
        }
        item.insert(AT.into(), AttrValue::S(at));
        item
    }

    /// An entry from an item (index attributes are ignored). A decision recorded beside
    /// the status counts only while the entry waits for approval, and only as a final
    /// move from there (rejected, expired, moot): whoever may record decisions can end a
    /// waiting request, never make a fix read as made, failed or undone.
    pub fn from_item(item: &Item) -> Result<LedgerEntry, ItemError> {
        // What deciders may write is read leniently: a malformed value is dropped, so no
        // one who may record a decision can make an entry (or a query) unreadable.
        let mut item = item.clone();
        let valid = |key: &str, v: &AttrValue| match v {
            AttrValue::S(s) => match key {
                super::reconcile::DECISION => {
                    serde_json::from_value::<Status>(serde_json::Value::String(s.clone())).is_ok()
                }
                super::reconcile::APPROVED_AT => crate::time::parse_rfc3339(s).is_some(),
                _ => true,
            },
            _ => false,
        };
        for key in super::reconcile::APPROVER_ATTRIBUTES
            .iter()
            .filter(|k| **k != ID)
        {
            if item.get(*key).is_some_and(|v| !valid(key, v)) {
                item.remove(*key);
            }
        }
        let mut e: LedgerEntry = from_item(&item)?;
        if let Some(d) = e.decision.filter(|d| {
            e.status == Status::AwaitingApproval
                && matches!(d, Status::Rejected | Status::Expired | Status::Skipped)
        }) {
            e.status = d;
            e.reason = e.decision_reason.clone();
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::{revoke_entry, t};
    use crate::ledger::Status;

    #[test]
    fn a_malformed_decision_or_approval_is_dropped_not_fatal() {
        let e = revoke_entry();
        let mut item = e.to_item(None);
        item.insert("decision".into(), AttrValue::S("x".into()));
        item.insert("approved_at".into(), AttrValue::S("never".into()));
        item.insert("approved_by".into(), AttrValue::N("1".into()));
        let read = LedgerEntry::from_item(&item).expect("still readable");
        assert_eq!(read.status, e.status);
        assert_eq!(
            (read.decision, read.approved_at, read.approved_by),
            (None, None, None)
        );
    }

    #[test]
    fn a_recorded_decision_only_ends_a_waiting_request() {
        let read = |status: Status, decision: Status| {
            let mut e = revoke_entry();
            e.status = status;
            e.decision = Some(decision);
            e.decision_reason = Some("rejected by bob".into());
            LedgerEntry::from_item(&e.to_item(None)).unwrap()
        };
        // A waiting request ends as decided, with the decision's reason.
        let r = read(Status::AwaitingApproval, Status::Rejected);
        assert_eq!(r.status, Status::Rejected);
        assert_eq!(r.reason.as_deref(), Some("rejected by bob"));
        // No decision makes a fix read as made, and none touches a fix that ran.
        assert_eq!(
            read(Status::AwaitingApproval, Status::Succeeded).status,
            Status::AwaitingApproval
        );
        assert_eq!(
            read(Status::Failed, Status::Rejected).status,
            Status::Failed
        );
        assert_eq!(
            read(Status::Succeeded, Status::Expired).status,
            Status::Succeeded
        );
    }

    #[test]
    fn an_entry_round_trips_through_an_item() {
        let e = revoke_entry();
        let item = e.to_item(Some(Duration::from_secs(86_400)));
        assert_eq!(item[ID], AttrValue::S(e.id.to_string()));
        assert_eq!(item[BY_RESOURCE].as_s(), Some("sg-0123456789abcdef0"));
        assert_eq!(item[BY_RULE].as_s(), Some("ssh"));
        assert_eq!(item[BY_ACCOUNT].as_s(), Some("111122223333"));
        assert_eq!(
            item[AT].as_s(),
            Some(crate::time::format_rfc3339(t(10)).as_str())
        );
        assert_eq!(
            item[BY_DAY].as_s(),
            Some(&crate::time::format_rfc3339(t(10))[..10])
        );
        assert_eq!(item[TTL], AttrValue::N((epoch(t(10)) + 86_400).to_string()));
        assert!(
            !item.contains_key(OPEN),
            "finished entries leave the open index"
        );
        let AttrValue::M(change) = &item["change"] else {
            panic!("nested structures are maps: {:?}", item["change"]);
        };
        assert_eq!(change["kind"].as_s(), Some("revoke_ingress"));
        assert_eq!(LedgerEntry::from_item(&item).unwrap(), e);
    }

    #[test]
    fn open_entries_are_indexed_as_open_and_never_expire() {
        let mut e = revoke_entry();
        e.status = Status::Intent;
        let item = e.to_item(Some(Duration::from_secs(1)));
        assert_eq!(item[OPEN].as_s(), Some("intent"));
        assert!(!item.contains_key(TTL));
    }

    #[test]
    fn index_attributes_never_shadow_an_entry_field() {
        let fields = to_item(&revoke_entry());
        for name in INDEX_ATTRIBUTES {
            assert!(!fields.contains_key(name), "{name} is an entry field");
        }
    }

    #[test]
    fn numbers_stay_exact_and_bad_items_are_refused() {
        let big = AttrValue::N(u64::MAX.to_string());
        assert_eq!(big.to_json().unwrap(), Value::from(u64::MAX));
        assert_eq!(
            AttrValue::N("-3".into()).to_json().unwrap(),
            Value::from(-3)
        );
        assert_eq!(
            AttrValue::N("1.5".into()).to_json().unwrap(),
            Value::from(1.5)
        );
        assert!(matches!(
            AttrValue::N("x".into()).to_json(),
            Err(ItemError::NotANumber(_))
        ));
        let mut item = revoke_entry().to_item(None);
        item.insert("status".into(), AttrValue::S("finished-ish".into()));
        assert!(matches!(
            LedgerEntry::from_item(&item),
            Err(ItemError::Shape(_))
        ));
    }
}
