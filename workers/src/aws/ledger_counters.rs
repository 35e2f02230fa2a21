//! The fleet's limits in the ledger table: per-minute fix counters and the breaker's
//! outcomes, each changed by one atomic `UpdateItem`. A cap is taken with `ADD` on the
//! condition that the count is below the cap, so any number of executors together never
//! take more than it allows; a condition that does not hold is the cap reached, not an
//! error. The domain ([`redress::ledger::limits`]) decides which item, which condition and
//! when the breaker trips; this seam only talks to DynamoDB.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use redress::ledger::item;
use redress::ledger::limits::{self, BreakerItem, TakePlan, Trip};

use super::ledger::{conditional, LedgerTable};
use super::retry::AwsError;

/// The counters, in the ledger's table.
#[derive(Debug, Clone)]
pub struct FleetCounters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The numeric attributes of an item (others, such as its id, are left out).
fn numbers(item: &HashMap<String, AttributeValue>) -> impl Iterator<Item = (&str, u64)> {
    item.iter().filter_map(|(k, v)| match v {
        AttributeValue::N(n) => n.parse().ok().map(|n| (k.as_str(), n)),
        _ => None,
    })
}

impl FleetCounters {
    /// The counters in the ledger's table.
    pub fn new(table: &LedgerTable) -> FleetCounters {
        FleetCounters {
            client: table.client.clone(),
            table: table.name.clone(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(item::ID.to_string(), AttributeValue::S(id.to_string()))])
    }

    async fn read(&self, id: &str) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:GetItem", e))?;
        Ok(out.item)
    }

    /// A counter's count (0 when it has no item).
    pub async fn count(&self, key: &str) -> Result<u32, AwsError> {
        let item = self.read(key).await?.unwrap_or_default();
        let count = numbers(&item)
            .find(|(k, _)| *k == limits::COUNT)
            .map_or(0, |(_, v)| u32::try_from(v).unwrap_or(u32::MAX));
        Ok(count)
    }

    /// Adds one to the plan's counter if it is below the plan's bound: `true` when taken,
    /// `false` when the cap is reached (the condition did not hold; nothing changed).
    pub async fn take(&self, plan: &TakePlan) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&plan.key)))
            .update_expression("ADD #n :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n < :below")
            .set_expression_attribute_names(Some(names(&[
                ("#n", limits::COUNT),
                ("#ttl", item::TTL),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":one".to_string(), n(1)),
                (":below".to_string(), n(plan.below.into())),
                (":ttl".to_string(), n(plan.expires_at)),
            ])))
            .send()
            .await;
        conditional("dynamodb:UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// Takes one back from a counter (a fix taken that did not run), never below zero.
    pub async fn give_back(&self, key: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("ADD #n :minus")
            .condition_expression("#n > :zero")
            .set_expression_attribute_names(Some(names(&[("#n", limits::COUNT)])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":minus".to_string(), AttributeValue::N("-1".into())),
                (":zero".to_string(), n(0)),
            ])))
            .send()
            .await;
        // Nothing to give back (the counter expired): nothing to do.
        conditional("dynamodb:UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
        .map(|_| ())
    }

    /// The breaker's item (empty when there is none).
    pub async fn breaker(&self) -> Result<BreakerItem, AwsError> {
        let item = self.read(limits::BREAKER_KEY).await?.unwrap_or_default();
        Ok(BreakerItem::from_numbers(numbers(&item)))
    }

    /// Counts one finished fix in its minute and returns the breaker's item as it now
    /// is, every minute's outcomes included.
    pub async fn record(
        &self,
        ok: bool,
        now: SystemTime,
        expires_at: u64,
    ) -> Result<BreakerItem, AwsError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(limits::BREAKER_KEY)))
            .update_expression("ADD #outcome :one SET #ttl = :ttl")
            .set_expression_attribute_names(Some(names(&[
                (
                    "#outcome",
                    &limits::outcome_attribute(ok, limits::bucket(now)),
                ),
                ("#ttl", item::TTL),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":one".to_string(), n(1)),
                (":ttl".to_string(), n(expires_at)),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:UpdateItem", e))?;
        Ok(BreakerItem::from_numbers(numbers(
            &out.attributes.unwrap_or_default(),
        )))
    }

    /// Opens the breaker until the trip says, unless it is open already (another
    /// executor opened it first): `true` when this call opened it.
    pub async fn open(&self, trip: &Trip, now: SystemTime) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(limits::BREAKER_KEY)))
            .update_expression("SET #open = :until")
            .condition_expression("attribute_not_exists(#open) OR #open <= :now")
            .set_expression_attribute_names(Some(names(&[("#open", limits::OPEN_UNTIL)])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":until".to_string(), n(trip.open_until)),
                (":now".to_string(), n(item::epoch(now))),
            ])))
            .send()
            .await;
        conditional("dynamodb:UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    /// Removes minutes no window reads any more from the breaker's item.
    pub async fn forget(&self, attributes: &[String]) -> Result<(), AwsError> {
        if attributes.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..attributes.len()).map(|i| format!("#m{i}")).collect();
        let names: HashMap<String, String> = placeholders
            .iter()
            .cloned()
            .zip(attributes.iter().cloned())
            .collect();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(limits::BREAKER_KEY)))
            .update_expression(format!("REMOVE {}", placeholders.join(", ")))
            .set_expression_attribute_names(Some(names))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:UpdateItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "test_ledger_counters.rs"]
mod tests;
