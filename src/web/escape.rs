//! The pages' escaper: HTML escaping, plus format and control characters shown as their code points.
//!
//! askama.toml makes it the escaper of every `.html` template, so each value a page shows (topic,
//! payload, broker error, status text, a filter from the query) passes through it: a bidi control such as
//! U+202E, which would reorder what an operator reads, shows as `[U+202E]` (`text::visible`), and the
//! rest is escaped by askama's own HTML escaper. Nothing calls it by hand.

use crate::text::{shown_as_code, write_code};
use askama::filters::Escaper;
use std::fmt::Write;

/// askama's `Html` escaper with [`shown_as_code`] characters written as `[U+XXXX]`.
#[derive(Debug, Clone, Copy)]
pub struct VisibleHtml;

impl Escaper for VisibleHtml {
    fn write_escaped_str<W: Write>(&self, mut dest: W, string: &str) -> std::fmt::Result {
        // Printable ASCII (the usual topic, value, name) has nothing to show as a code point.
        if string.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return askama::filters::Html.write_escaped_str(dest, string);
        }
        let mut start = 0;
        for (i, c) in string.char_indices() {
            if shown_as_code(c) {
                askama::filters::Html.write_escaped_str(&mut dest, &string[start..i])?;
                write_code(&mut dest, c)?;
                start = i + c.len_utf8();
            }
        }
        askama::filters::Html.write_escaped_str(dest, &string[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        VisibleHtml.write_escaped_str(&mut out, s).unwrap();
        out
    }

    #[test]
    fn html_escaped_and_format_characters_visible() {
        assert_eq!(escaped("21.5"), "21.5");
        assert_eq!(escaped("<b>&\"'"), "&#60;b&#62;&#38;&#34;&#39;");
        assert_eq!(
            escaped("a\u{202E}<x>\u{200B}b\u{1b}"),
            "a[U+202E]&#60;x&#62;[U+200B]b[U+001B]"
        );
        assert_eq!(escaped("line\nnext\tcol"), "line\nnext\tcol");
        assert_eq!(escaped("grün ש 😀"), "grün ש 😀");
    }
}
