//! CSV as RFC 4180 writes it (the `csv` crate is not in the build, and the evidence
//! export needs only writing): fields quoted when they hold a quote, comma, CR or LF,
//! quotes doubled, records ended by CRLF.

use std::borrow::Cow;

/// One field, quoted when it must be.
pub fn field(text: &str) -> Cow<'_, str> {
    if text.contains(['"', ',', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(text)
    }
}

/// A cell an auditor opens in a spreadsheet: text starting with `=`, `+`, `-`, `@`, tab
/// or CR would be run as a formula (a reason typed by an approver, an AWS error
/// message), so it gets a leading `'`, which spreadsheets show as text (OWASP's advice
/// for CSV injection).
pub fn cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One record: spreadsheet-safe fields, quoted, comma-separated, CRLF-terminated.
pub fn record<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = fields
        .iter()
        .map(|f| field(&cell(f.as_ref())).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_stay_as_they_are() {
        assert_eq!(field("sg-0123"), "sg-0123");
        assert_eq!(field(""), "");
        assert!(matches!(field("a b"), Cow::Borrowed(_)));
    }

    #[test]
    fn quotes_commas_and_newlines_are_quoted() {
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(field("cr\rlf"), "\"cr\rlf\"");
    }

    #[test]
    fn records_end_in_crlf_and_neutralise_formulas() {
        assert_eq!(record(&["a", "b,c", ""]), "a,\"b,c\",\r\n");
        assert_eq!(
            record(&["=HYPERLINK(\"x\")", "@x", "-1", "ok"]),
            "\"'=HYPERLINK(\"\"x\"\")\",'@x,'-1,ok\r\n"
        );
    }
}
