//! Value extraction: plain numbers, JSONPath (RFC 9535, through the `serde_json_path` crate) and string
//! maps.
//!
//! Fed by the rule instances with a payload; returns a number plus the text it came from, or why the
//! payload is unparsable. Decisions:
//! - The JSON is read once per message (`Payload`), however many values read it: in one pass without
//!   building the document when every path of the rule is a chain of member names (`scan`), else parsed
//!   into a document for the full engine. Both give the same node and the same error text.
//! - A JSONPath must select exactly one node; none or several is unparsable, and the reason says which.
//! - A selected string (or a plain payload) is looked up in `map` first, then parsed as a number; a
//!   boolean maps through `map` as `true`/`false`, else counts as 1/0. Objects, arrays and null are
//!   unparsable. Non-finite numbers (`NaN`, `inf`) are unparsable: they cannot be compared.
//! - A JSON number or boolean is kept as such, and its text is written only when something shows it.

use super::path::parse_path;
use super::scan::{Scanned, SimplePaths};
use serde_json::Value;
use serde_json_path::JsonPath;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// How one value is read out of a payload.
#[derive(Debug, Clone)]
pub struct Extractor {
    pub path: Option<JsonPath>,
    pub path_text: Option<String>,
    pub map: BTreeMap<String, f64>,
    /// The path's slot in its rule's `SimplePaths`, when the rule reads its payloads in one pass.
    pub(super) slot: Option<usize>,
}

/// A message's payload, with its JSON read at most once.
pub struct Payload<'a> {
    pub text: Option<&'a str>,
    json: OnceCell<Result<Value, String>>,
    /// The rule's simple paths, and what the one pass selected (`None`: it failed; the document decides).
    simple: Option<&'a SimplePaths>,
    scanned: OnceCell<Option<Scanned>>,
}

impl<'a> Payload<'a> {
    pub fn new(raw: &'a [u8]) -> Payload<'a> {
        Payload {
            text: std::str::from_utf8(raw).ok(),
            json: OnceCell::new(),
            simple: None,
            scanned: OnceCell::new(),
        }
    }

    /// A payload whose values at `paths` (the rule's) are read in one pass.
    pub(super) fn with_paths(raw: &'a [u8], paths: Option<&'a SimplePaths>) -> Payload<'a> {
        Payload {
            simple: paths,
            ..Payload::new(raw)
        }
    }

    fn json(&self) -> Result<&Value, String> {
        self.json
            .get_or_init(|| match self.text {
                None => Err("the payload is not UTF-8 text".into()),
                Some(t) => serde_json::from_str(t).map_err(|e| format!("not JSON: {e}")),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The node at `path` (simple-path `slot`, if it has one), which must be exactly one.
    pub(super) fn node(
        &self,
        slot: Option<usize>,
        path: &JsonPath,
        path_text: &str,
    ) -> Result<&Value, String> {
        if let (Some(slot), Some(paths)) = (slot, self.simple) {
            let scanned = self
                .scanned
                .get_or_init(|| self.text.and_then(|t| paths.scan(t).ok()));
            if let Some(values) = scanned {
                return values
                    .get(slot)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| format!("no value at {path_text}"));
            }
        }
        let json = self.json()?;
        let nodes = path.query(json).all();
        match nodes.len() {
            1 => Ok(nodes[0]),
            0 => Err(format!("no value at {path_text}")),
            n => Err(format!("{path_text} selects {n} values, not one")),
        }
    }
}

/// The text a value was read from: a JSON number or boolean as such (written out only when shown), any
/// other text as it was.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Number(serde_json::Number),
    Bool(bool),
    Text(Box<str>),
}

impl Source {
    /// The text: a number as serde_json writes it, `true`/`false`, or the text itself.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Source::Number(n) => Cow::Owned(n.to_string()),
            Source::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Source::Text(t) => Cow::Borrowed(t),
        }
    }
}

/// One extracted value: the number and the text it was read from (shown when a map translated it).
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub number: f64,
    pub text: Source,
}

impl Extractor {
    pub fn new(path: Option<&str>, map: BTreeMap<String, f64>) -> Result<Extractor, String> {
        let parsed = match path {
            Some(p) => Some(parse_path(p)?),
            None => None,
        };
        Ok(Extractor {
            path: parsed,
            path_text: path.map(str::to_string),
            map,
            slot: None,
        })
    }

    /// Whether `text` is a key of `map` (then the value shows the text it was translated from).
    pub fn mapped(&self, text: &Source) -> bool {
        !self.map.is_empty() && self.map.contains_key(&*text.as_text())
    }

    pub fn extract(&self, payload: &Payload<'_>) -> Result<Extracted, String> {
        match &self.path {
            None => {
                let text = payload
                    .text
                    .ok_or_else(|| "the payload is not UTF-8 text".to_string())?;
                self.read_text(text.trim())
            }
            Some(path) => {
                let path_text = self.path_text.as_deref().unwrap_or("$");
                match payload.node(self.slot, path, path_text)? {
                    Value::Number(n) => {
                        let mapped = if self.map.is_empty() {
                            None
                        } else {
                            self.map.get(&n.to_string()).copied()
                        };
                        let number = match (mapped, n.as_f64()) {
                            (Some(v), _) => v,
                            (None, Some(v)) if v.is_finite() => v,
                            (None, _) => finite(None, &n.to_string())?,
                        };
                        Ok(Extracted {
                            number,
                            text: Source::Number(n.clone()),
                        })
                    }
                    Value::String(s) => self.read_text(s),
                    Value::Bool(b) => {
                        let text = Source::Bool(*b);
                        let number = self.map.get(&*text.as_text()).copied().unwrap_or(if *b {
                            1.0
                        } else {
                            0.0
                        });
                        Ok(Extracted { number, text })
                    }
                    Value::Null => Err("the value is null".into()),
                    Value::Array(_) => Err("the value is an array, not a number".into()),
                    Value::Object(_) => Err("the value is an object, not a number".into()),
                }
            }
        }
    }

    fn read_text(&self, text: &str) -> Result<Extracted, String> {
        if let Some(v) = self.map.get(text) {
            return Ok(Extracted {
                number: *v,
                text: Source::Text(text.into()),
            });
        }
        let number = finite(text.parse::<f64>().ok(), text).map_err(|e| {
            if self.map.is_empty() {
                e
            } else {
                format!("{e}, nor a key of `map`")
            }
        })?;
        Ok(Extracted {
            number,
            text: Source::Text(text.into()),
        })
    }
}

fn finite(v: Option<f64>, text: &str) -> Result<f64, String> {
    match v {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "{:?} is not a number",
            crate::text::short(text, 40)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let onoff: BTreeMap<String, f64> =
            [("ON".to_string(), 1.0), ("OFF".to_string(), 0.0)].into();
        struct Case {
            name: &'static str,
            path: Option<&'static str>,
            map: bool,
            payload: &'static [u8],
            want: Result<f64, &'static str>,
        }
        let cases = [
            Case {
                name: "plain",
                path: None,
                map: false,
                payload: b"21.5",
                want: Ok(21.5),
            },
            Case {
                name: "plain spaces",
                path: None,
                map: false,
                payload: b" 21.5\n",
                want: Ok(21.5),
            },
            Case {
                name: "plain negative exp",
                path: None,
                map: false,
                payload: b"-1e2",
                want: Ok(-100.0),
            },
            Case {
                name: "plain garbage",
                path: None,
                map: false,
                payload: b"abc",
                want: Err("\"abc\" is not a number"),
            },
            Case {
                name: "plain nan",
                path: None,
                map: false,
                payload: b"NaN",
                want: Err("is not a number"),
            },
            Case {
                name: "plain map",
                path: None,
                map: true,
                payload: b"ON",
                want: Ok(1.0),
            },
            Case {
                name: "plain map miss",
                path: None,
                map: true,
                payload: b"MAYBE",
                want: Err("nor a key of `map`"),
            },
            Case {
                name: "binary",
                path: None,
                map: false,
                payload: &[0xff, 0xfe],
                want: Err("not UTF-8"),
            },
            Case {
                name: "json number",
                path: Some("$.temperature"),
                map: false,
                payload: br#"{"temperature": 23.4}"#,
                want: Ok(23.4),
            },
            Case {
                name: "json nested",
                path: Some("$.env.t"),
                map: false,
                payload: br#"{"env": {"t": -3}}"#,
                want: Ok(-3.0),
            },
            Case {
                name: "json bracket",
                path: Some("$['a b']"),
                map: false,
                payload: br#"{"a b": 7}"#,
                want: Ok(7.0),
            },
            Case {
                name: "json index",
                path: Some("$.v[1]"),
                map: false,
                payload: br#"{"v": [1, 2]}"#,
                want: Ok(2.0),
            },
            Case {
                name: "json string number",
                path: Some("$.t"),
                map: false,
                payload: br#"{"t": "19.5"}"#,
                want: Ok(19.5),
            },
            Case {
                name: "json map",
                path: Some("$.contact"),
                map: true,
                payload: br#"{"contact": "OFF"}"#,
                want: Ok(0.0),
            },
            Case {
                name: "json bool",
                path: Some("$.contact"),
                map: false,
                payload: br#"{"contact": true}"#,
                want: Ok(1.0),
            },
            Case {
                name: "json missing",
                path: Some("$.humidity"),
                map: false,
                payload: br#"{"t": 1}"#,
                want: Err("no value at $.humidity"),
            },
            Case {
                name: "json many",
                path: Some("$.*"),
                map: false,
                payload: br#"{"a": 1, "b": 2}"#,
                want: Err("selects 2 values"),
            },
            Case {
                name: "json object",
                path: Some("$.a"),
                map: false,
                payload: br#"{"a": {}}"#,
                want: Err("an object"),
            },
            Case {
                name: "json null",
                path: Some("$.a"),
                map: false,
                payload: br#"{"a": null}"#,
                want: Err("null"),
            },
            Case {
                name: "not json",
                path: Some("$.a"),
                map: false,
                payload: b"21.5 C",
                want: Err("not JSON"),
            },
            Case {
                name: "filter expr",
                path: Some("$.s[?@.n == 'b'].v"),
                map: false,
                payload: br#"{"s": [{"n": "a", "v": 1}, {"n": "b", "v": 2}]}"#,
                want: Ok(2.0),
            },
        ];
        for c in cases {
            let map = if c.map {
                onoff.clone()
            } else {
                BTreeMap::new()
            };
            let x = Extractor::new(c.path, map).unwrap();
            let got = x.extract(&Payload::new(c.payload));
            match (got, c.want) {
                (Ok(v), Ok(w)) => assert_eq!(v.number, w, "{}", c.name),
                (Err(e), Err(w)) => assert!(e.contains(w), "{}: {e}", c.name),
                (g, w) => panic!("{}: got {g:?}, want {w:?}", c.name),
            }
        }
    }

    #[test]
    fn bad_paths_are_refused() {
        for p in ["temperature", "$.", "$[", "$..", "$.a[?@.b ==]"] {
            assert!(Extractor::new(Some(p), BTreeMap::new()).is_err(), "{p}");
        }
    }
}
