//! A person's decision on an approval request, recorded on the request's ledger entry
//! with one narrow `UpdateItem`: only the attributes the domain names
//! ([`redress::ledger::reconcile::APPROVER_ATTRIBUTES`]), never the status itself; a
//! decision counts only while the entry is still `awaiting_approval`. Approvers hold exactly this right on the ledger (the
//! template limits `dynamodb:Attributes` to those names): they never write an entry
//! whole, so they cannot record a change an undo would then put back.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use redress::ledger::reconcile::{RequestDecision, DECISION};
use redress::ledger::{item, EntryId};

use super::ledger::{conditional, to_sdk, LedgerTable};
use super::retry::AwsError;

impl LedgerTable {
    /// Records `decision` on entry `id`. `false` when someone decided first, or the
    /// request was never recorded (made before the ledger, or an undo): the condition
    /// keeps the update from creating an entry that does not exist.
    pub async fn decide(&self, id: &EntryId, decision: &RequestDecision) -> Result<bool, AwsError> {
        let update = decision.update();
        // The condition names only attributes the decider may name (IAM's
        // `dynamodb:Attributes` may count a condition's attributes too): the entry exists
        // (no upsert) and has no decision yet. Whether it still waits is the reader's
        // business: a decision counts only on a waiting entry (`LedgerEntry::from_item`).
        let mut names = HashMap::from([
            ("#id".to_string(), item::ID.to_string()),
            ("#decision".to_string(), DECISION.to_string()),
        ]);
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        for (i, (name, value)) in update.set.iter().enumerate() {
            names.insert(format!("#{name}"), (*name).to_string());
            values.insert(format!(":v{i}"), to_sdk(value));
            sets.push(format!("#{name} = :v{i}"));
        }
        let expression = format!("SET {}", sets.join(", "));
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key(item::ID, AttributeValue::S(id.to_string()))
            .update_expression(expression)
            .condition_expression("attribute_exists(#id) AND attribute_not_exists(#decision)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        conditional("dynamodb:UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }
}
