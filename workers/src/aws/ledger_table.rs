//! Creating the ledger's table, for `redress provision` (on AWS, redress.yaml creates it):
//! on-demand capacity, partition key `id`, the indexes of [`Index::ALL`] sorted by `at`,
//! encryption at rest, TTL on `ttl` and point-in-time recovery. Idempotent: an existing
//! table is kept as it is, and only TTL and point-in-time recovery are turned on if off.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use redress::ledger::item;

use super::ledger::{table_status, Index, LedgerTable};
use super::retry::{poll, AwsError, Poll, PollError};

/// How long a new table may take to become active.
const ACTIVE_WITHIN: Duration = Duration::from_secs(120);

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The table was created.
    Created,
    /// It existed already.
    Existed,
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("all required builder parameters specified")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("all required builder parameters specified")
}

fn index(i: Index) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(i.name())
        .key_schema(key(i.partition(), KeyType::Hash))
        .key_schema(key(item::AT, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("all required builder parameters specified")
}

impl LedgerTable {
    /// Creates the table unless it exists, waits for it to be active, and turns on TTL
    /// (attribute [`item::TTL`]) and point-in-time recovery.
    pub async fn ensure(&self) -> Result<Ensured, AwsError> {
        ensure(&self.client, &self.name).await
    }
}

async fn ensure(client: &aws_sdk_dynamodb::Client, name: &str) -> Result<Ensured, AwsError> {
    let ensured = if table_status(client, name).await?.is_some() {
        Ensured::Existed
    } else {
        let mut create = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(item::ID, KeyType::Hash))
            .attribute_definitions(string_attribute(item::ID))
            .attribute_definitions(string_attribute(item::AT))
            .sse_specification(SseSpecification::builder().enabled(true).build());
        for i in Index::ALL {
            create = create
                .attribute_definitions(string_attribute(i.partition()))
                .global_secondary_indexes(index(i));
        }
        match create.send().await {
            Ok(_) => Ensured::Created,
            // Made meanwhile by another provision: the same table.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                Ensured::Existed
            }
            Err(e) => return Err(AwsError::from_sdk("dynamodb:CreateTable", e)),
        }
    };
    poll(Duration::from_millis(200), ACTIVE_WITHIN, || async {
        Ok(match table_status(client, name).await? {
            Some(TableStatus::Active) => Poll::Done(()),
            _ => Poll::Pending,
        })
    })
    .await
    .map_err(|e| match e {
        PollError::Aws(e) => e,
        PollError::DeadlineExceeded => AwsError::permanent(
            "dynamodb:DescribeTable",
            format!("table {name} is not active after {ACTIVE_WITHIN:?}"),
        ),
    })?;
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("dynamodb:DescribeTimeToLive", e))?;
    let on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !on {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(item::TTL)
                    .build()
                    .expect("all required builder parameters specified"),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb:UpdateTimeToLive", e))?;
    }
    // Turning it on when it is on already changes nothing.
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .expect("all required builder parameters specified"),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("dynamodb:UpdateContinuousBackups", e))?;
    Ok(ensured)
}
