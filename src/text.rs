//! Untrusted text: making MQTT topics and payloads safe to put into a Xymon status, and cutting text
//! for messages about it.
//!
//! Imports nothing of the crate. Used by the rule engine (payload text it keeps), the status builders
//! (every topic and payload) and the CLI's `explain`. Status bodies are stored by xymond and printed raw
//! into HTML by svcstatus.cgi (docs/xymon-protocol.md §2). So `untrusted`:
//! - drop NUL and other control characters (a NUL would end xymond's C string), normalise CR LF;
//! - show format characters (Unicode category Cf: bidi controls such as U+202E, which reorder what an
//!   operator reads, zero-width characters, the BOM) as `[U+202E]`, so nothing invisible hides in a status;
//! - HTML-escape (`&`, `<`, `>`, `"`, `'`), which also defuses `&red` icons and `<!--` markers;
//! - indent every continuation line, so no untrusted line can begin with `status` (a new message inside a
//!   combo) or `Status message received from` (which rewrites the sender);
//! - bound the length, with a note saying how much was cut.

use std::borrow::Cow;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A format character (Unicode category Cf): invisible, and some reorder the text around them (the bidi
/// controls U+202A..U+202E and U+2066..U+2069). Every display shows one as [`write_code`] writes it.
pub fn is_format(c: char) -> bool {
    // No ASCII character is Cf: the common case costs one comparison.
    !c.is_ascii() && c.general_category() == GeneralCategory::Format
}

/// What a display shows instead of the character itself: format characters, and control characters other
/// than tab and line breaks (which a display shows as what they are).
pub fn shown_as_code(c: char) -> bool {
    is_format(c) || (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// Writes `c` as its code point, `[U+202E]`: visible, and nothing a status, HTML or JSON gives a meaning.
pub fn write_code(out: &mut impl std::fmt::Write, c: char) -> std::fmt::Result {
    write!(out, "[U+{:04X}]", u32::from(c))
}

/// `s` with every character of [`shown_as_code`] written as its code point; borrowed when there is none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(shown_as_code) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if shown_as_code(c) {
            let _ = write_code(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Cuts `s` to `n` characters, marking the cut with `…` (for log lines and messages about untrusted text;
/// escaping is `untrusted`'s). Format and control characters are shown as code points ([`visible`]), so a
/// log line reads as it was received.
pub fn short(s: &str, n: usize) -> String {
    // Only the first `n` characters can be shown, and a character is never shown shorter than it is:
    // look at no more of a long payload than that (the rule path keeps a short text of every payload).
    let (head, longer) = match s.char_indices().nth(n) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    };
    let head = visible(head);
    if !longer && head.chars().count() <= n {
        head.into_owned()
    } else {
        let mut t: String = head.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Cleans `raw` and cuts it to at most `max_chars` characters of content. The result is one or more lines;
/// lines after the first are prefixed with `indent`, empty ones included.
pub fn untrusted(raw: &str, max_chars: usize, indent: &str) -> String {
    let mut clean = String::with_capacity(raw.len().min(max_chars) + 16);
    let mut kept = 0usize;
    let mut total = 0usize;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\r' => '\n',
            '\n' | '\t' => c,
            c if c.is_control() => continue,
            // Unicode line and paragraph separators render as line breaks in some viewers.
            '\u{2028}' | '\u{2029}' => '\n',
            c => c,
        };
        total += 1;
        if kept >= max_chars {
            continue;
        }
        kept += 1;
        if c == '\n' {
            clean.push('\n');
            clean.push_str(indent);
        } else if is_format(c) {
            let _ = write_code(&mut clean, c);
        } else {
            push_escaped(&mut clean, c);
        }
    }
    if total > kept {
        clean.push_str(&format!(" [… {} more characters cut]", total - kept));
    }
    clean
}

/// Escapes one character for HTML text and attribute context.
fn push_escaped(out: &mut String, c: char) {
    // Fast path: only these five need an entity. Calling html_escape once per character was the top
    // user-space symbol of the collector in the ingest profile (BENCHMARKS.md, "Profile").
    if !matches!(c, '&' | '<' | '>' | '"' | '\'') {
        out.push(c);
        return;
    }
    // html_escape's encode_quoted_attribute covers & < > " ' ; it works on &str, so feed one char.
    let mut buf = [0u8; 4];
    out.push_str(&html_escape::encode_quoted_attribute(
        c.encode_utf8(&mut buf),
    ));
}

/// Text for line 1 of a status: one line, no `|` (xymondboard does not escape line1), no control chars,
/// format characters as code points.
/// Only the bridge's own words go here; still, the formatter passes them through this as a last line of
/// defence.
pub fn line1(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push('/'),
            c if c.is_control() => out.push(' '),
            c if is_format(c) => {
                let _ = write_code(&mut out, c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Renders an MQTT payload for display: UTF-8 text as is, anything else as a short hex preview.
pub fn payload_text(payload: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(payload) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let preview: Vec<String> = payload
                .iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if payload.len() > 32 { " …" } else { "" };
            Cow::Owned(format!(
                "(binary, {} bytes: {}{more})",
                payload.len(),
                preview.join(" ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_cases() {
        struct Case {
            name: &'static str,
            input: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "plain",
                input: "21.5",
                want: "21.5",
            },
            Case {
                name: "html",
                input: "<script>alert(1)</script>",
                want: "&lt;script&gt;alert(1)&lt;/script&gt;",
            },
            Case {
                name: "icon spoof",
                input: "&red alarm",
                want: "&amp;red alarm",
            },
            Case {
                name: "comment marker",
                input: "<!-- linecount=1 -->",
                want: "&lt;!-- linecount=1 --&gt;",
            },
            Case {
                name: "quotes",
                input: "a\"b'c",
                want: "a&quot;b&#x27;c",
            },
            Case {
                name: "nul and controls",
                input: "a\0b\x07c\x1bd",
                want: "abcd",
            },
            Case {
                name: "crlf",
                input: "a\r\nb",
                want: "a\n  b",
            },
            Case {
                name: "injected status",
                input: "x\n\nstatus other,host.t red pwned",
                want: "x\n  \n  status other,host.t red pwned",
            },
            Case {
                name: "sender spoof",
                input: "x\nStatus message received from 10.9.8.7",
                want: "x\n  Status message received from 10.9.8.7",
            },
            Case {
                name: "unicode line separator",
                input: "a\u{2028}b",
                want: "a\n  b",
            },
            Case {
                name: "tab kept",
                input: "a\tb",
                want: "a\tb",
            },
        ];
        for c in cases {
            assert_eq!(untrusted(c.input, 100, "  "), c.want, "{}", c.name);
        }
    }

    #[test]
    fn no_untrusted_line_starts_a_message() {
        let hostile = "ok\n\nstatus evil,host.x red\nStatus message received from 1.2.3.4\r\n\r\nstatus+5 a.b red";
        let out = untrusted(hostile, 1000, "  ");
        for line in out.lines().skip(1) {
            assert!(line.starts_with("  "), "line {line:?} is not indented");
        }
        assert!(!out.contains("\n\nstatus"));
        assert!(!out.contains("\nStatus message received from"));
    }

    #[test]
    fn bounded() {
        let big = "x".repeat(1 << 20);
        let out = untrusted(&big, 512, "  ");
        assert!(out.len() < 600, "{}", out.len());
        assert!(out.ends_with("[… 1048064 more characters cut]"));
        // escaping cannot blow the bound up by more than the entity length
        let amps = "&".repeat(10_000);
        assert!(untrusted(&amps, 10, "").len() <= 10 * 5 + 40);
    }

    #[test]
    fn line1_has_no_pipe_or_newline() {
        assert_eq!(line1("a|b\nc"), "a/b c");
        assert_eq!(line1("a\u{202E}b"), "a[U+202E]b");
    }

    /// Every bidi control, the zero-width characters, the BOM, the soft hyphen, an Arabic letter mark and
    /// a tag character (Cf from several blocks, up to plane 14) are shown as code points in a status, in
    /// `line1`, in `short` and in `visible`; letters of right-to-left scripts and emoji are not.
    #[test]
    fn format_characters_are_shown_as_code_points() {
        let format = [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{061C}',
            '\u{E0041}',
        ];
        for c in format {
            assert!(is_format(c), "{:04X}", u32::from(c));
            let code = format!("[U+{:04X}]", u32::from(c));
            let input = format!("21.5{c}°C");
            let want = format!("21.5{code}°C");
            assert_eq!(untrusted(&input, 100, "  "), want);
            assert_eq!(line1(&input), want);
            assert_eq!(short(&input, 100), want);
            assert_eq!(visible(&input), want);
        }
        for c in ['a', 'é', 'ש', 'ع', '€', '°', '😀', ' ', '\u{3000}'] {
            assert!(!is_format(c), "{c}");
            assert!(!shown_as_code(c), "{c}");
        }
        // The classic spoof: "exe.txt" reversed to look like "txt.exe" reads as it was sent.
        assert_eq!(
            untrusted("invoice\u{202E}fdp.exe", 100, ""),
            "invoice[U+202E]fdp.exe"
        );
        // One code point counts as one character of the bound.
        assert_eq!(
            untrusted("\u{202E}\u{202E}\u{202E}", 2, ""),
            "[U+202E][U+202E] [… 1 more characters cut]"
        );
    }

    #[test]
    fn visible_shows_controls_but_keeps_line_breaks_and_tabs() {
        assert_eq!(visible("a\tb\nc\r\n"), "a\tb\nc\r\n");
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
        assert_eq!(
            visible("a\u{1b}[31mb\u{7f}\u{85}"),
            "a[U+001B][31mb[U+007F][U+0085]"
        );
    }

    #[test]
    fn binary_payload() {
        assert_eq!(payload_text(b"21.5"), "21.5");
        assert_eq!(payload_text(&[0xff, 0x00]), "(binary, 2 bytes: ff 00)");
    }
}
