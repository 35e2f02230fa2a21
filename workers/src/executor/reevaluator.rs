//! Config re-evaluation off the fix's critical path, coalesced: a fix queues its Config
//! rule; a background task asks Config once per (account, region, rule) for everything
//! queued in a short window. A burst of fixes under one rule then costs one
//! `StartConfigRulesEvaluation`, not one per resource (Config runs one evaluation of a
//! rule at a time anyway), and no fix waits for it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::aws::config::{ConfigRules, Reevaluation};

/// (account, region, Config rule name).
type Key = (String, String, String);

enum Message {
    Request(Key, ConfigRules),
    /// Ask for everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Handle to the background re-evaluation task.
pub struct Reevaluator {
    tx: mpsc::UnboundedSender<Message>,
}

impl Reevaluator {
    /// Starts the task; requests are gathered for `window` before Config is asked.
    pub fn start(window: Duration) -> Reevaluator {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, window));
        Reevaluator { tx }
    }

    /// Queues a re-evaluation of `rule` in that account and region.
    pub fn request(&self, config_rules: &ConfigRules, account: &str, region: &str, rule: &str) {
        let key = (account.to_string(), region.to_string(), rule.to_string());
        if self
            .tx
            .send(Message::Request(key, config_rules.clone()))
            .is_err()
        {
            tracing::warn!(
                config_rule = rule,
                "re-evaluation task has stopped; not requested"
            );
        }
    }

    /// Returns once everything queued before the call has been asked for (before exit,
    /// and after each Lambda batch).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Message>, window: Duration) {
    let mut pending: BTreeMap<Key, ConfigRules> = BTreeMap::new();
    // Set by the first request of a window, so a steady stream cannot hold it back.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let message = match due {
            None => rx.recv().await,
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    ask(std::mem::take(&mut pending)).await;
                    due = None;
                    continue;
                }
            },
        };
        match message {
            Some(Message::Request(key, rules)) => {
                pending.entry(key).or_insert(rules);
                due.get_or_insert_with(|| tokio::time::Instant::now() + window);
            }
            Some(Message::Flush(done)) => {
                ask(std::mem::take(&mut pending)).await;
                due = None;
                let _ = done.send(());
            }
            None => {
                ask(std::mem::take(&mut pending)).await;
                return;
            }
        }
    }
}

async fn ask(batch: BTreeMap<Key, ConfigRules>) {
    let asks = batch
        .into_iter()
        .map(|((account, region, rule), rules)| async move {
            match rules.request_reevaluation(&rule).await {
                Reevaluation::Requested => {
                    tracing::info!(
                        account,
                        region,
                        config_rule = rule,
                        "Config re-evaluation requested"
                    )
                }
                Reevaluation::AlreadyRunning => {}
                // Already logged as a warning by request_reevaluation.
                Reevaluation::Failed(_) => {}
            }
        });
    futures::future::join_all(asks).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_config::operation::start_config_rules_evaluation::StartConfigRulesEvaluationOutput;
    use aws_sdk_config::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn a_burst_under_one_rule_asks_config_once_per_rule() {
        let ssh = mock!(Client::start_config_rules_evaluation)
            .match_requests(|r| r.config_rule_names() == ["restricted-ssh"])
            .sequence()
            .output(|| StartConfigRulesEvaluationOutput::builder().build())
            .repeatedly()
            .build();
        let s3 = mock!(Client::start_config_rules_evaluation)
            .match_requests(|r| r.config_rule_names() == ["s3-encryption"])
            .then_output(|| StartConfigRulesEvaluationOutput::builder().build());
        let rules = ConfigRules::new(mock_client!(
            aws_sdk_config,
            RuleMode::MatchAny,
            [&ssh, &s3]
        ));
        let r = Reevaluator::start(Duration::from_secs(60));
        for _ in 0..50 {
            r.request(&rules, "111122223333", "eu-west-1", "restricted-ssh");
        }
        r.request(&rules, "111122223333", "eu-west-1", "s3-encryption");
        assert_eq!(
            ssh.num_calls(),
            0,
            "nothing is asked before the window or a flush"
        );
        r.flush().await;
        assert_eq!((ssh.num_calls(), s3.num_calls()), (1, 1));
        // A later fix asks again.
        r.request(&rules, "111122223333", "eu-west-1", "restricted-ssh");
        r.flush().await;
        assert_eq!(ssh.num_calls(), 2);
    }

    #[tokio::test]
    async fn requests_are_sent_when_the_window_passes_without_a_flush() {
        let ssh = mock!(Client::start_config_rules_evaluation)
            .then_output(|| StartConfigRulesEvaluationOutput::builder().build());
        let rules = ConfigRules::new(mock_client!(aws_sdk_config, [&ssh]));
        let r = Reevaluator::start(Duration::from_millis(100));
        r.request(&rules, "111122223333", "eu-west-1", "restricted-ssh");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(ssh.num_calls(), 1);
    }
}
