//! Human output shared by the commands: tables that fit the terminal, and progress bars
//! on stderr for long operations.
//!
//! Neither cleans text: every cell or message that came from an event, a queue message
//! or AWS must already have passed through [`redress::text::clean`]. `--json` documents
//! are derived `Serialize` types in each command and never go through here.

use std::io::IsTerminal;
use std::time::Duration;

use comfy_table::{CellAlignment, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// A `--json` document on one line. Documents are derived `Serialize` types holding raw
/// data (serde escapes control characters); they are never cleaned.
pub fn json(doc: &impl Serialize) -> CliResult<String> {
    serde_json::to_string(doc)
        .map_err(|e| CliError::failed(format!("cannot serialise the JSON document: {e}")))
}

/// A `--json` document, indented.
pub fn json_pretty(doc: &impl Serialize) -> CliResult<String> {
    serde_json::to_string_pretty(doc)
        .map_err(|e| CliError::failed(format!("cannot serialise the JSON document: {e}")))
}

/// A table with this header row and no borders, columns two spaces apart.
///
/// On a terminal the content is arranged dynamically to fit its width (long cells wrap
/// inside their column). Anywhere else (a pipe, a file, a test) nothing is wrapped or
/// truncated, so each row stays one stable line.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    if std::io::stdout().is_terminal() {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    t.set_header(header);
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Right-aligns these columns (counts, ages).
pub fn align_right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The table's lines without trailing blanks, each ending in a newline.
pub fn render(t: &Table) -> String {
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Whether [`progress`] draws anything: stderr is a terminal.
pub fn progress_visible() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar (or, without a known length, a counter) on stderr, labelled `what`.
///
/// Hidden when stderr is not a terminal, so logs, pipes and tests see nothing from it;
/// [`ProgressBar::is_hidden`] tells the caller whether to report progress some other
/// way. While a bar is visible, anything else written to stderr (error lines, audit
/// records) must go through [`ProgressBar::suspend`] so the bar is not torn.
pub fn progress(len: Option<u64>, what: &str) -> ProgressBar {
    if !progress_visible() {
        return ProgressBar::hidden();
    }
    let target = ProgressDrawTarget::stderr();
    let bar = match len {
        Some(n) => ProgressBar::with_draw_target(Some(n), target).with_style(
            // `wide_bar` takes what the rest of the line leaves, so it stays one line.
            ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} {msg} ~{eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template("{spinner} {prefix}: {pos} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Counts `n` more done; an approximate length (a queue's depth) grows to fit.
pub fn advance(bar: &ProgressBar, n: usize) {
    bar.inc(n as u64);
    if bar.length().is_some_and(|len| bar.position() > len) {
        bar.set_length(bar.position());
    }
}

/// Writes a line to stderr without tearing a visible progress bar.
pub fn eprint_line(bar: &ProgressBar, line: &str) {
    bar.suspend(|| eprintln!("{line}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_stay_on_one_line_without_a_terminal_and_have_no_trailing_blanks() {
        // `cargo test` captures stdout, so this is the pipe case.
        let mut t = table(["ID", "COUNT", "WHAT"]);
        align_right(&mut t, &[1]);
        let long = "x".repeat(300);
        t.add_row(vec!["a", "7", long.as_str()]);
        t.add_row(vec!["bb", "12", "short"]);
        let out = render(&t);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], "ID  COUNT  WHAT");
        assert!(lines[1].starts_with("a       7  xxx") && lines[1].ends_with('x'));
        assert_eq!(lines[2], "bb     12  short");
        assert!(out.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn progress_is_hidden_off_a_terminal() {
        if !std::io::stderr().is_terminal() {
            assert!(progress(Some(10), "replaying").is_hidden());
            assert!(progress(None, "reading").is_hidden());
        }
    }
}
