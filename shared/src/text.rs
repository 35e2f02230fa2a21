//! Text from events, messages and AWS made safe for a terminal.
//!
//! An annotation or resource name is written by whoever controls the resource or the
//! queue. Printed raw, `ESC ] 52 ;` writes the reader's clipboard, `ESC [ 2K` erases the
//! line that said what is about to be approved, and U+202E reverses what follows. Human
//! output passes every such field through [`clean`]; `--json` keeps the data as it is
//! (JSON escapes control characters itself).

use std::borrow::Cow;

/// Whether a character could steer a terminal, reorder text or hide in it: C0 controls
/// (tab and newline included: every cleaned field is printed on one line), DEL, C1
/// controls, the Unicode bidirectional formatting characters, line and paragraph
/// separators, zero-width characters and tag characters.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}')
}

/// `s` with every control or bidi character replaced by `�` (U+FFFD), so a reader sees
/// that something was there.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().any(unsafe_char) {
        Cow::Owned(
            s.chars()
                .map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_controls_and_bidi_overrides() {
        let hostile =
            "ok\u{1b}]52;c;cm0gLXJmIC8=\u{7}\u{1b}[2K\u{9b}31m\u{202e}txt.exe\r\n\t\u{7f}";
        let out = clean(hostile);
        assert!(out.starts_with("ok"));
        assert!(
            !out.chars().any(unsafe_char),
            "{out:?} still holds a control"
        );
        assert!(!out.bytes().any(|b| b < 0x20 || b == 0x7f));
        assert!(!out.contains('\u{202e}') && !out.contains('\u{9b}'));
    }

    #[test]
    fn leaves_ordinary_text_alone_and_borrowed() {
        let s = "sg-0123 tcp 22 from 0.0.0.0/0 — naïve 日本";
        assert!(matches!(clean(s), Cow::Borrowed(_)));
    }
}
