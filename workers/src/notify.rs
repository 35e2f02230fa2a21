//! Telling people: what the settler ([`crate::settle`]) finds worth telling in the
//! verdicts it settled (`redress::notify` decides) is published here to the
//! notification topic ([`tell`]).
//!
//! The topic is installed once per process at start-up ([`install`]), the way the log
//! subscriber is: every path that settles verdicts (the SQS poller, the Lambda adapter,
//! `redress sweep`) then notifies without carrying a handle, and a process with no topic
//! configured does nothing at all. A publish that fails is logged and dropped: a
//! notification never holds up, retries or loses the message being settled.

use std::sync::OnceLock;
use std::time::Duration;

use redress::notify::Notification;

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sns::Topic;
use crate::aws::Clients;
use crate::error::{CliError, CliResult};

/// The topic's name in the README and redress.yaml.
pub const DEFAULT_TOPIC: &str = "redress-notifications";

/// How long one batch's notifications may take to publish before they are given up
/// (SNS is normally a few milliseconds; this bounds a struggling endpoint).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(5);
/// How long finding the topic at start-up rides out transient errors.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Which topic a process notifies, as `--notify-topic` chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicChoice<'a> {
    /// None: unset or empty.
    Off,
    /// This topic (name or ARN); it must exist.
    Required(&'a str),
}

impl<'a> TopicChoice<'a> {
    /// The choice a `--notify-topic` value makes.
    pub fn of(flag: Option<&'a str>) -> TopicChoice<'a> {
        match flag.map(str::trim) {
            None | Some("") => TopicChoice::Off,
            Some(t) => TopicChoice::Required(t),
        }
    }
}

static TOPIC: OnceLock<Topic> = OnceLock::new();

/// Makes `topic` this process's notification topic; the first one installed stays
/// (the router and the executor of one process install the same).
pub fn install(topic: Topic) {
    let arn = topic.arn.clone();
    if TOPIC.set(topic).is_ok() {
        tracing::info!(topic = %arn, "notifying people on the topic");
    }
}

/// Finds the topic `choice` names and installs it, once per process: a topic named must
/// exist (start-up fails otherwise, as for a ledger table named); none, nothing.
pub async fn start(choice: TopicChoice<'_>, clients: &Clients) -> CliResult {
    let TopicChoice::Required(name) = choice else {
        return Ok(());
    };
    if enabled() {
        return Ok(());
    }
    let unreachable =
        |e: AwsError| CliError::failed(format!("cannot reach the notification topic {name}: {e}"));
    let topic = with_backoff(STARTUP_PATIENCE, || {
        Topic::find(&clients.sns, &clients.sts, name)
    })
    .await
    .map_err(unreachable)?;
    if !with_backoff(STARTUP_PATIENCE, || topic.exists())
        .await
        .map_err(unreachable)?
    {
        return Err(CliError::failed(format!(
            "the notification topic {name} does not exist (`redress provision --notify-topic {name}` creates it on the local stack; --notify-topic '' runs without notifications)"
        )));
    }
    install(topic);
    Ok(())
}

/// Whether a topic is installed.
pub fn enabled() -> bool {
    TOPIC.get().is_some()
}

/// Publishes the notifications to the installed topic, all at once; failures and
/// timeouts are logged. Nothing happens without a topic.
pub async fn tell(batch: Vec<Notification>) {
    let Some(topic) = TOPIC.get() else { return };
    if batch.is_empty() {
        return;
    }
    let sends = batch.iter().map(|n| async move {
        let attributes = n.attributes();
        match topic.publish(&n.body_json(), &attributes).await {
            Ok(id) => tracing::debug!(kind = n.kind.as_str(), message_id = %id, "notified"),
            Err(e) => {
                tracing::warn!(kind = n.kind.as_str(), error = %e, "could not notify; going on without it")
            }
        }
    });
    if tokio::time::timeout(PUBLISH_PATIENCE, futures::future::join_all(sends))
        .await
        .is_err()
    {
        tracing::warn!(
            count = batch.len(),
            "notifications took too long; going on without them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_chooses_a_topic_or_none() {
        assert_eq!(TopicChoice::of(None), TopicChoice::Off);
        assert_eq!(TopicChoice::of(Some(" ")), TopicChoice::Off);
        assert_eq!(TopicChoice::of(Some("t")), TopicChoice::Required("t"));
    }
}
