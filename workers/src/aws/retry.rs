//! The one place that decides whether an AWS failure is worth retrying, and the one
//! place that uses the `backoff` crate (flagged unmaintained by RustSec; see deny.toml),
//! so it can be swapped without touching callers.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, timeouts, connection failures, 5xx: try again later.
    Transient,
    /// Validation, access denied, not found, bad input: retrying changes nothing.
    Permanent,
}

impl ErrorClass {
    /// `transient` or `permanent`, as written in dead-letter attributes.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// An AWS call that failed, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The operation, e.g. `ec2:RevokeSecurityGroupIngress`.
    pub operation: &'static str,
    /// The service's error code, or the kind of transport failure.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// Retry or not.
    pub class: ErrorClass,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}: {}",
            self.operation, self.code, self.message
        )
    }
}

impl std::error::Error for AwsError {}

/// Error codes that mean "slow down", across services.
const THROTTLING_CODES: [&str; 10] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "ProvisionedThroughputExceededException",
    "PriorRequestNotComplete",
];

/// Codes that are transient although not throttling.
const TRANSIENT_CODES: [&str; 5] = [
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "RequestTimeout",
];

/// Classifies a service error by code and HTTP status.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    let transient_code =
        code.is_some_and(|c| THROTTLING_CODES.contains(&c) || TRANSIENT_CODES.contains(&c));
    if transient_code || status.is_some_and(|s| s >= 500 || s == 429) {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl AwsError {
    /// Converts an SDK error, deciding its class.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message, class) = match &err {
            SdkError::ServiceError(se) => {
                let e = se.err();
                let status = se.raw().status().as_u16();
                let code = e.code().map(str::to_string);
                let message = e
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                let class = classify_code(code.as_deref(), Some(status));
                (
                    code.unwrap_or_else(|| format!("HTTP {status}")),
                    message,
                    class,
                )
            }
            SdkError::TimeoutError(_) => {
                ("Timeout".into(), source_text(&err), ErrorClass::Transient)
            }
            SdkError::DispatchFailure(_) => (
                "DispatchFailure".into(),
                source_text(&err),
                ErrorClass::Transient,
            ),
            SdkError::ResponseError(_) => (
                "ResponseError".into(),
                source_text(&err),
                ErrorClass::Transient,
            ),
            _ => (
                "ConstructionFailure".into(),
                source_text(&err),
                ErrorClass::Permanent,
            ),
        };
        AwsError {
            operation,
            code,
            message,
            class,
        }
    }

    /// A failure found before calling AWS (nothing to call with), never retried.
    pub fn permanent(operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            operation,
            code: "NotConfigured".into(),
            message: message.into(),
            class: ErrorClass::Permanent,
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff with jitter, bounded in total time.
fn policy(
    initial: Duration,
    max_interval: Duration,
    max_elapsed: Duration,
) -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoff {
        initial_interval: initial,
        max_interval,
        max_elapsed_time: Some(max_elapsed),
        multiplier: 2.0,
        randomization_factor: 0.3,
        ..backoff::ExponentialBackoff::default()
    }
}

/// Runs `op`, retrying transient [`AwsError`]s with jittered exponential backoff for at
/// most `max_elapsed`; permanent errors return at once. This sits on top of the SDK's own
/// few quick retries, to ride out longer outages of one call.
pub async fn with_backoff<T, F, Fut>(max_elapsed: Duration, mut op: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let p = policy(
        Duration::from_millis(200),
        Duration::from_secs(5),
        max_elapsed,
    );
    backoff::future::retry(p, || {
        let fut = op();
        async move {
            fut.await.map_err(|e| {
                if e.is_transient() {
                    tracing::debug!(error = %e, "transient AWS error; backing off");
                    backoff::Error::transient(e)
                } else {
                    backoff::Error::permanent(e)
                }
            })
        }
    })
    .await
}

/// What one poll of a long-running operation found.
pub enum Poll<T> {
    /// Finished with this value.
    Done(T),
    /// Not finished yet.
    Pending,
}

/// Why polling stopped without a result.
#[derive(Debug)]
pub enum PollError {
    /// A call failed permanently (or transiently until the deadline).
    Aws(AwsError),
    /// Still pending when the deadline passed.
    DeadlineExceeded,
}

/// Polls `op` with jittered exponential backoff (from `interval` up to 8× it) until it is
/// done, fails permanently, or `deadline` passes. Transient errors count as pending.
pub async fn poll<T, F, Fut>(
    interval: Duration,
    deadline: Duration,
    mut op: F,
) -> Result<T, PollError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, AwsError>>,
{
    let p = policy(interval, interval * 8, deadline);
    let out = backoff::future::retry(p, || {
        let fut = op();
        async move {
            match fut.await {
                Ok(Poll::Done(v)) => Ok(Ok(v)),
                Ok(Poll::Pending) => Err(backoff::Error::transient(None)),
                Err(e) if e.is_transient() => Err(backoff::Error::transient(Some(e))),
                Err(e) => Ok(Err(e)),
            }
        }
    })
    .await;
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(PollError::Aws(e)),
        Err(Some(e)) => Err(PollError::Aws(e)),
        Err(None) => Err(PollError::DeadlineExceeded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn classification() {
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            ErrorClass::Transient
        );
        assert_eq!(
            classify_code(Some("RequestLimitExceeded"), Some(503)),
            ErrorClass::Transient
        );
        assert_eq!(classify_code(None, Some(500)), ErrorClass::Transient);
        assert_eq!(
            classify_code(Some("AccessDenied"), Some(403)),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_code(Some("ValidationException"), Some(400)),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify_code(Some("ParameterNotFound"), Some(400)),
            ErrorClass::Permanent
        );
    }

    fn err(class: ErrorClass) -> AwsError {
        AwsError {
            operation: "test:Op",
            code: "X".into(),
            message: "m".into(),
            class,
        }
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds_and_stops_on_permanent() {
        let calls = AtomicU32::new(0);
        let out = with_backoff(Duration::from_secs(5), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(err(ErrorClass::Transient))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_backoff(Duration::from_secs(5), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(err(ErrorClass::Permanent)) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn poll_until_done_or_deadline() {
        let calls = AtomicU32::new(0);
        let out = poll(Duration::from_millis(5), Duration::from_secs(5), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(if n < 3 { Poll::Pending } else { Poll::Done(n) }) }
        })
        .await;
        assert_eq!(out.unwrap(), 3);
        let out: Result<(), _> = poll(
            Duration::from_millis(5),
            Duration::from_millis(50),
            || async { Ok(Poll::Pending) },
        )
        .await;
        assert!(matches!(out, Err(PollError::DeadlineExceeded)));
    }
}
