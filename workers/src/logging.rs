//! Logs to stderr (pretty or JSON), and audit records to stderr verbatim as JSON lines.

use std::io::{IsTerminal, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::cli::LogFormat;

/// Writes the message of `audit`-target events as one line, unwrapped, so each line is
/// exactly one audit JSON object in every log format.
struct AuditLayer;

struct MessageOnly(String);

impl Visit for MessageOnly {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = MessageOnly(String::new());
        event.record(&mut m);
        let mut err = std::io::stderr().lock();
        // Nowhere better to report a failed stderr write.
        let _ = writeln!(err, "{}", m.0);
    }
}

/// Installs the subscriber. `RUST_LOG` refines the default `info` level.
pub fn init(format: Option<LogFormat>) {
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let not_audit = filter_fn(|m| m.target() != redress::audit::TARGET);
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(not_audit)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_filter(not_audit)
            .boxed(),
    };
    let audit = AuditLayer.with_filter(filter_fn(|m| m.target() == redress::audit::TARGET));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(audit)
        .init();
}
