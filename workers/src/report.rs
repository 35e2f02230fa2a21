//! A tally of what happened to each message, printed after `--once` runs so a person sees
//! the result without reading logs.

use std::sync::Mutex;

use redress::text::clean;

use crate::output;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disposition {
    /// The resource was changed and now complies.
    Fixed,
    /// Nothing to change.
    AlreadyCompliant,
    /// Dry run: would have acted.
    DryRun,
    /// Waiting for a person.
    AwaitingApproval,
    /// Sent to the executor (router only; the executor reports the result).
    Forwarded,
    /// No action, with a reason.
    Skipped,
    /// Moved to a dead-letter queue.
    DeadLettered,
    /// Will be retried.
    Retrying,
    /// Config confirmed a fix.
    Verified,
    /// A fix waits for Config to confirm it.
    AwaitingVerification,
}

impl Disposition {
    fn label(&self) -> &'static str {
        match self {
            Disposition::Fixed => "fixed",
            Disposition::AlreadyCompliant => "already compliant",
            Disposition::DryRun => "dry run (unchanged)",
            Disposition::AwaitingApproval => "waiting for approval",
            Disposition::Forwarded => "sent to executor",
            Disposition::Skipped => "skipped",
            Disposition::DeadLettered => "dead-lettered",
            Disposition::Retrying => "will retry",
            Disposition::Verified => "verified by Config",
            Disposition::AwaitingVerification => "awaiting Config's confirmation",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Line {
    /// What happened.
    pub fate: Disposition,
    /// The resource, or the message id when the message was unreadable.
    pub subject: String,
    /// Rule, action, reason.
    pub detail: String,
}

/// Collected lines, shared by the workers of one process.
#[derive(Debug, Default)]
pub struct Tally(Mutex<Vec<Line>>);

impl Tally {
    /// Records one line.
    pub fn add(&self, fate: Disposition, subject: impl Into<String>, detail: impl Into<String>) {
        let line = Line {
            fate,
            subject: subject.into(),
            detail: detail.into(),
        };
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    /// The report as text, final outcomes first; forwarded tasks are summarised only.
    pub fn render(&self) -> String {
        let mut lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        lines.sort_by_key(|l| l.fate);
        let mut out = String::new();
        let shown: Vec<&Line> = lines
            .iter()
            .filter(|l| l.fate != Disposition::Forwarded)
            .collect();
        if shown.is_empty() {
            out.push_str("Nothing to report: the queues were empty.\n");
        } else {
            // Subjects and details carry resource ids and reasons from events, messages
            // and AWS: cleaned before they reach a terminal.
            let mut table = output::table(["OUTCOME", "RESOURCE", "DETAIL"]);
            for l in &shown {
                table.add_row(vec![
                    l.fate.label().to_string(),
                    clean(&l.subject).into_owned(),
                    clean(&l.detail).into_owned(),
                ]);
            }
            out.push_str(&output::render(&table));
        }
        let mut counts: Vec<(Disposition, usize)> = Vec::new();
        for l in &shown {
            match counts.iter_mut().find(|(f, _)| *f == l.fate) {
                Some((_, n)) => *n += 1,
                None => counts.push((l.fate, 1)),
            }
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(f, n)| format!("{n} {}", f.label()))
            .collect();
        if !summary.is_empty() {
            out.push_str(&format!("Summary: {}\n", summary.join(", ")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_a_table_of_cleaned_text_with_a_summary() {
        let t = Tally::default();
        t.add(Disposition::Fixed, "sg-1", "revoke tcp 22");
        t.add(Disposition::Forwarded, "sg-2", "not shown");
        t.add(
            Disposition::DeadLettered,
            "sg-\u{1b}[2K\u{202e}x",
            "invalid\u{7} event",
        );
        let out = t.render();
        assert!(!out.contains("not shown"), "{out}");
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
            "{out:?}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("OUTCOME"), "{out}");
        assert!(
            lines[1].starts_with("fixed") && lines[1].contains("sg-1"),
            "{out}"
        );
        assert!(lines[2].starts_with("dead-lettered"), "{out}");
        assert_eq!(lines[3], "Summary: 1 fixed, 1 dead-lettered");
    }

    #[test]
    fn an_empty_run_says_so() {
        assert_eq!(
            Tally::default().render(),
            "Nothing to report: the queues were empty.\n"
        );
    }
}
