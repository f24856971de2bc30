//! Untrusted text: making MQTT topics and payloads safe to put into a Xymon status, and cutting text
//! for messages about it.
//!
//! Imports nothing of the crate. Used by the rule engine (payload text it keeps), the status builders
//! (every topic and payload) and the CLI's `explain`. Status bodies are stored by xymond and printed raw
//! into HTML by svcstatus.cgi (docs/xymon-protocol.md §2). So `untrusted`:
//! - drop NUL and other control characters (a NUL would end xymond's C string), normalise CR LF;
//! - HTML-escape (`&`, `<`, `>`, `"`, `'`), which also defuses `&red` icons and `<!--` markers;
//! - indent every continuation line, so no untrusted line can begin with `status` (a new message inside a
//!   combo) or `Status message received from` (which rewrites the sender);
//! - bound the length, with a note saying how much was cut.

/// Cuts `s` to `n` characters, marking the cut with `…` (for log lines and messages about untrusted text;
/// escaping is `untrusted`'s).
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
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

/// Text for line 1 of a status: one line, no `|` (xymondboard does not escape line1), no control chars.
/// Only the bridge's own words go here; still, the formatter passes them through this as a last line of
/// defence.
pub fn line1(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Renders an MQTT payload for display: UTF-8 text as is, anything else as a short hex preview.
pub fn payload_text(payload: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(payload) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            let preview: Vec<String> = payload
                .iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if payload.len() > 32 { " …" } else { "" };
            std::borrow::Cow::Owned(format!(
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
    }

    #[test]
    fn binary_payload() {
        assert_eq!(payload_text(b"21.5"), "21.5");
        assert_eq!(payload_text(&[0xff, 0x00]), "(binary, 2 bytes: ff 00)");
    }
}
