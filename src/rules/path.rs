//! JSONPaths from the config (a value's `path`, a rule's `timestamp_path`), parsed by `serde_json_path`
//! behind two guards.
//!
//! Used by `compile` and `extract`, once per path at load time. The guards refuse what the parser cannot
//! take safely; each was found by the `extract` fuzz target (fuzz/, README "Fuzzed parsers").

use serde_json_path::JsonPath;

/// Brackets and parentheses a JSONPath may nest. Real paths nest two or three levels. The parser recurses
/// once per level, so thousands would overflow the stack, and it backtracks through nested filters, so its
/// time grows about sixteenfold per level of `[?@.a[?@.b…` that does not parse: 0.3 s at 9 levels, 70 s
/// at 13 (measured on the fuzz build).
const MAX_PATH_DEPTH: usize = 8;

/// Parses a JSONPath from the config; the error says why, for the config error.
///
/// Two kinds of path are refused before `serde_json_path` sees them, both found by the fuzzer: one that
/// ends inside a string literal (its parser, 0.7.2, panics instead of failing when the path ends within
/// a `\u` escape, `$["\u`; every string of a valid path is closed), and one that nests brackets or
/// parentheses deeper than [`MAX_PATH_DEPTH`] (its parser would take minutes, or overflow the stack).
pub fn parse_path(p: &str) -> Result<JsonPath, String> {
    let mut open: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match (open, c) {
            (None, '\'' | '"') => open = Some(c),
            (None, '(' | '[') => {
                depth += 1;
                if depth > MAX_PATH_DEPTH {
                    return Err(format!(
                        "{:?} is not a usable JSONPath: it nests brackets deeper than {MAX_PATH_DEPTH} levels",
                        crate::text::short(p, 80)
                    ));
                }
            }
            (None, ')' | ']') => depth = depth.saturating_sub(1),
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => open = None,
            _ => {}
        }
    }
    if let Some(q) = open {
        return Err(format!(
            "{p:?} is not a JSONPath: a string opened with {q} is not closed"
        ));
    }
    JsonPath::parse(p).map_err(|e| format!("{p:?} is not a JSONPath: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths that end inside a string literal (the fuzzer's find: within a `\u` escape, serde_json_path
    /// panics) are refused with a reason; escaped quotes and closed `\u` escapes still parse.
    #[test]
    fn unterminated_strings_are_refused_without_a_panic() {
        for p in [
            r#"$[".*\\r2\u"#,
            r#"$["\u"#,
            r#"$['\uD8"#,
            r#"$["\uD800\u"#,
            r#"$[?@.a == "x"#,
        ] {
            let e = parse_path(p).unwrap_err();
            assert!(e.contains("is not closed"), "{p}: {e}");
        }
        for p in [
            r#"$["a\"b"]"#,
            r#"$['it\'s']"#,
            r#"$["\u00e9"]"#,
            r#"$[?@.a == 'x"y']"#,
        ] {
            assert!(parse_path(p).is_ok(), "{p}");
        }
    }

    /// Nesting: the deepest allowed parses, one more level is refused with a reason (also the nested
    /// filters whose parse time explodes, and the thousands of parentheses that overflow the stack), and
    /// brackets inside a string do not count.
    #[test]
    fn deep_nesting_is_refused_before_the_parser() {
        let nested = |n: usize| format!("$[?{}@.a == 1{}]", "(".repeat(n), ")".repeat(n));
        assert!(parse_path(&nested(MAX_PATH_DEPTH - 1)).is_ok());
        let e = parse_path(&nested(MAX_PATH_DEPTH)).unwrap_err();
        assert!(e.contains("deeper than 8 levels"), "{e}");
        assert!(parse_path(&nested(100_000)).is_err());
        assert!(parse_path("$[?@.a[?@.b[?@.c == 1]]]").is_ok());
        let explodes = format!("${} :", "[?@.a".repeat(12));
        assert!(parse_path(&explodes).unwrap_err().contains("deeper than"));
        let quoted = format!("$[\"{}\"]", "(".repeat(100));
        assert!(parse_path(&quoted).is_ok());
    }
}
