//! Tests of `rules::scan`: which paths count as simple, and that one pass selects exactly what the full
//! engine selects in the parsed document, on ordinary, duplicate-key, hostile and broken payloads.

use super::*;

fn names(p: &str) -> Option<Vec<String>> {
    member_names(&JsonPath::parse(p).unwrap(), p)
}

#[test]
fn simple_paths_are_chains_of_member_names() {
    let s = |v: &[&str]| Some(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(names("$.a"), s(&["a"]));
    assert_eq!(names("$.temperature"), s(&["temperature"]));
    assert_eq!(names("$.env.t_2"), s(&["env", "t_2"]));
    assert_eq!(names("$['a b']"), s(&["a b"]));
    assert_eq!(names("$[\"a\"].b"), s(&["a", "b"]));
    assert_eq!(names("$._x['y-z']"), s(&["_x", "y-z"]));
    assert_eq!(names("$['sensor.t']"), s(&["sensor.t"]));
    for full in [
        "$",
        "$.*",
        "$..a",
        "$.a[0]",
        "$[0]",
        "$.a[-1]",
        "$['a','b']",
        "$[ 'a' ]",
        "$['a\\'b']",
        "$.a[?@.b == 1]",
        "$.a[1:2]",
        "$.s[?@.n == 'b'].v",
        "$.ä",
    ] {
        if let Ok(p) = JsonPath::parse(full) {
            assert_eq!(member_names(&p, full), None, "{full}");
        }
    }
}

/// What the full engine selects: the parsed document and the one node at each path.
fn by_document(paths: &[&str], text: &str) -> Result<Vec<Option<Value>>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(paths
        .iter()
        .map(|p| {
            let nodes = JsonPath::parse(p).unwrap().query(&doc).all();
            assert!(nodes.len() <= 1, "{p} selected {} nodes", nodes.len());
            nodes.first().map(|v| (*v).clone())
        })
        .collect())
}

fn by_scan(paths: &[&str], text: &str) -> Result<Vec<Option<Value>>, String> {
    let mut set = SimplePaths::default();
    let slots: Vec<usize> = paths
        .iter()
        .map(|p| set.add(&names(p).expect("simple")))
        .collect();
    let got = set.scan(text).map_err(|e| e.to_string())?;
    Ok(slots.iter().map(|&s| got[s].clone()).collect())
}

const PATH_SETS: &[&[&str]] = &[
    &["$.a"],
    &["$.a.b"],
    &["$.a", "$.a.b"],
    &["$.a.b", "$.a.c", "$.x", "$.a.b"],
    &["$['a b']", "$.ab"],
    &["$.a.b.c", "$.a.b"],
];

fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        r#"{"a": 1}"#,
        r#"{"a": 1, "a": 2}"#,
        r#"{"a": {"b": 1}, "a": 5}"#,
        r#"{"a": 5, "a": {"b": 1}}"#,
        r#"{"a": {"b": 1, "b": {"c": 2}}, "a": {"c": 3}}"#,
        r#"{"a": {"b": {"c": 1}}, "a": {"b": 2}}"#,
        r#"{"x": 1, "a": {"c": [1, {"b": 2}], "b": null}, "ab": true}"#,
        r#"{"a b": "21.5", "ab": "x"}"#,
        r#"{"a\u0062": 7, "\u0061": {"\u0062": 8}}"#,
        r#"{"a": [1, 2], "x": {}}"#,
        r#"[{"a": 1}]"#,
        r#"21.5"#,
        r#""text""#,
        r#"null"#,
        r#"{"a": 1e400}"#,
        r#"{"x": 1e400, "a": 1}"#,
        r#"{"x": -1e400, "a": 1}"#,
        r#"{"a": 18446744073709551616, "x": -9223372036854775809}"#,
        r#"{"a": -0, "x": 0.0000000000000000000000000001}"#,
        r#"{"x": "\ud800", "a": 1}"#,
        r#"{"x": "\udc00\ud800", "a": 1}"#,
        r#"{"x": "\q", "a": 1}"#,
        "{\"x\": \"raw\nnewline\", \"a\": 1}",
        r#"{"a": 1} x"#,
        r#"{"a": 1,}"#,
        r#"{"a": 1}{"a": 2}"#,
        r#"{"a": 1"#,
        r#"{"a" 1}"#,
        r#"{a: 1}"#,
        "",
        "  ",
        "\u{feff}{\"a\": 1}",
        r#"{"a": "é€😀", "é": 1}"#,
        r#"{"a": {"b": "ON"}, "x": [true, false, null, "s", 1.5, -2]}"#,
        r#"{"a": NaN}"#,
        r#"{"a": 01}"#,
        r#"{"a": .5}"#,
        r#"{"a": 1.}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Nesting around the limit of 128 levels, in a skipped member and around the wanted one.
    for depth in [126, 127, 128, 129, 500] {
        let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        v.push(format!(r#"{{"x": {deep}, "a": 1}}"#));
        v.push(format!(r#"{{"a": {{"b": {deep}}}}}"#));
        v.push(format!(
            "{}{{\"a\": 1}}{}",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
    }
    v
}

/// The pass and the document agree on every value and, for broken text, on the error.
#[test]
fn the_pass_selects_what_the_engine_selects() {
    for paths in PATH_SETS {
        for text in hostile() {
            assert_eq!(
                by_scan(paths, &text),
                by_document(paths, &text),
                "{paths:?} on {text:?}"
            );
        }
    }
}

/// The last of duplicate members wins, as in the engine's document.
#[test]
fn the_last_duplicate_wins() {
    let got = by_scan(
        &["$.a", "$.b.c"],
        r#"{"a": 1, "b": {"c": 1}, "a": 2, "b": {"c": 3, "c": 4}}"#,
    );
    assert_eq!(got, Ok(vec![Some(2.into()), Some(4.into())]));
    let got = by_scan(&["$.b.c"], r#"{"b": {"c": 1}, "b": 2}"#);
    assert_eq!(got, Ok(vec![None]));
}

/// Bytes flipped in a realistic payload: the pass never panics and agrees with the engine each time.
#[test]
fn mangled_payloads_agree() {
    let base = br#"{"battery":87,"humidity":48.31,"linkquality":134,"temperature":21.57,"update":{"state":"idle","v":[1,2]},"s":"a\"b\u00e9"}"#;
    let alphabet = b"{}[]\":,\\ 0123456789.eE+-aetrunlsfx\xc3\xa9";
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let paths: &[&str] = &["$.temperature", "$.update.state", "$.update", "$.s"];
    for _ in 0..3000 {
        let mut bytes = base.to_vec();
        for _ in 0..(next() % 3 + 1) {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        assert_eq!(by_scan(paths, text), by_document(paths, text), "{text:?}");
    }
}
