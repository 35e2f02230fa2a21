//! Undo exceptions in the ledger table: one item per finding (`ex#…`), written by the
//! executor just before an undo's change and read before every fix, so a finding whose
//! fix was undone is left alone until the exception ends. DynamoDB's TTL removes it
//! some time after its end; readers check the end themselves.

use aws_sdk_dynamodb::types::AttributeValue;
use std::time::SystemTime;

use redress::ledger::{self, UndoException};

use super::ledger::{conditional, domain_item, to_sdk_item, LedgerError, LedgerTable};
use super::retry::AwsError;

impl LedgerTable {
    /// Records `exception`, replacing an earlier one for the same finding.
    pub async fn put_exception(&self, exception: &UndoException) -> Result<(), LedgerError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_sdk_item(&exception.to_item())))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:PutItem", e))?;
        Ok(())
    }

    /// The exception stored under `key` ([`UndoException::key`]), read strongly
    /// consistent (an undo that just ran must be seen by the next fix).
    pub async fn exception(&self, key: &str) -> Result<Option<UndoException>, LedgerError> {
        let Some(stored) = self.read(key).await? else {
            return Ok(None);
        };
        let (id, domain) = domain_item(&stored)?;
        UndoException::from_item(&domain)
            .map(Some)
            .map_err(|e| LedgerError::Unreadable {
                id,
                reason: e.to_string(),
            })
    }

    /// Ends `exception` now (a failed undo's), if the stored one is still the one its
    /// undo wrote (a newer undo of the same finding keeps its own). A write, not a
    /// delete: the executor may not delete ledger items, and the ended exception stays
    /// as evidence until its TTL.
    pub async fn end_exception(
        &self,
        exception: &UndoException,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let mut ended = exception.clone();
        ended.until = ledger::model::second(now);
        let r = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_sdk_item(&ended.to_item())))
            .condition_expression("#undo = :undo")
            .expression_attribute_names("#undo", "undo")
            .expression_attribute_values(":undo", AttributeValue::S(exception.undo.to_string()))
            .send()
            .await;
        // A newer undo's exception stands: nothing to end.
        conditional("dynamodb:PutItem", r, |e| {
            e.is_conditional_check_failed_exception()
        })
        .map(|_| ())
        .map_err(Into::into)
    }
}
