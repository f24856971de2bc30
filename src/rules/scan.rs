//! One pass over a JSON payload for a rule's simple paths (`$.a`, `$.a.b`, `$['a b']`): the selected
//! values, without building the document.
//!
//! Built once per rule (`compile`) when every JSONPath of the rule (its values' and `timestamp_path`) is
//! a chain of member names; `extract::Payload` runs the pass once per message, whatever number of values
//! read it. Any other path keeps the whole rule on the full RFC 9535 engine (`serde_json_path`) over the
//! parsed document. Why the answers are the same as that engine's:
//! - The pass is serde_json's own deserializer, driven with `deserialize_any` for every value and
//!   `deserialize_str` for every member name, as parsing into a `serde_json::Value` is: it checks the
//!   whole text the same way (syntax, escapes, numbers out of range, nesting deeper than 128, trailing
//!   characters). A selected node is read as a `Value` itself.
//! - A name selector on anything but an object selects nothing, here as there.
//! - Duplicate member names: the last one wins, as in the `Value` the engine queries (its map insert
//!   replaces). A repeated member first clears what an earlier one selected below it.
//! - A path is taken as simple only when the engine's own rendering of the parsed path is exactly the
//!   chain of names read here, and the engine selects the same node in a document built from the names.
//! - When the pass fails, `Payload` parses the document as before, so an error text is serde_json's.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json_path::JsonPath;
use smallvec::SmallVec;
use std::fmt;

/// The values a pass selected, by slot; `None` where the payload has no such member.
pub type Scanned = SmallVec<[Option<Value>; 4]>;

/// The simple paths of one rule, as a tree of member names.
#[derive(Debug, Clone, Default)]
pub struct SimplePaths {
    root: Node,
    slots: usize,
}

#[derive(Debug, Clone, Default)]
struct Node {
    members: Vec<Member>,
}

#[derive(Debug, Clone)]
struct Member {
    name: Box<str>,
    /// The slot of the path that ends here.
    leaf: Option<usize>,
    below: Node,
    /// Every slot at or below this member: cleared when the member appears again (the last one wins).
    slots: Vec<usize>,
}

/// The member names of `path` when it is a chain of them (`$.a.b`, `$['a b'].c`), checked against the
/// engine's own reading of the path; `None` for anything else (then the full engine reads it).
pub fn member_names(path: &JsonPath, text: &str) -> Option<Vec<String>> {
    let names = parse_chain(text)?;
    if names.is_empty() {
        return None;
    }
    // The engine renders a dot name as `.a` and a bracketed one as `['a']`; as the names here hold no
    // quote, bracket or backslash, equal renderings mean equal segment lists.
    let rendered: String = std::iter::once("$".to_string())
        .chain(names.iter().map(|(name, dot)| {
            if *dot {
                format!(".{name}")
            } else {
                format!("['{name}']")
            }
        }))
        .collect();
    if path.to_string() != rendered {
        return None;
    }
    let names: Vec<String> = names.into_iter().map(|(n, _)| n).collect();
    let marker = Value::String("\u{0}marker".into());
    let doc = names.iter().rev().fold(marker.clone(), |inner, name| {
        Value::Object([(name.clone(), inner)].into_iter().collect())
    });
    (path.query(&doc).exactly_one().ok() == Some(&marker)).then_some(names)
}

/// `$` followed by `.name` (ASCII letters, digits, `_`; not starting with a digit) or `['name']` /
/// `["name"]` (no quote, backslash, bracket or control character inside), nothing else. The bool is
/// true for the dot form.
fn parse_chain(text: &str) -> Option<Vec<(String, bool)>> {
    let mut rest = text.strip_prefix('$')?;
    let mut names = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            names.push((name.to_string(), true));
            rest = &r[end..];
        } else {
            let r = rest.strip_prefix('[')?;
            let quote = r.chars().next().filter(|q| *q == '\'' || *q == '"')?;
            let r = &r[1..];
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains(['\'', '"', '\\', '[', ']']) || name.contains(char::is_control) {
                return None;
            }
            names.push((name.to_string(), false));
            rest = r[end + 1..].strip_prefix(']')?;
        }
    }
    Some(names)
}

impl SimplePaths {
    /// Adds a path (its member names, at least one) and returns its slot; the same path twice shares one.
    pub fn add(&mut self, names: &[String]) -> usize {
        let mut node = &mut self.root;
        let mut leaf = None;
        let mut trail: Vec<usize> = Vec::with_capacity(names.len());
        for (depth, name) in names.iter().enumerate() {
            let i = match node.members.iter().position(|m| *m.name == **name) {
                Some(i) => i,
                None => {
                    node.members.push(Member {
                        name: name.as_str().into(),
                        leaf: None,
                        below: Node::default(),
                        slots: Vec::new(),
                    });
                    node.members.len() - 1
                }
            };
            trail.push(i);
            if depth + 1 == names.len() {
                leaf = node.members[i].leaf;
            }
            node = &mut node.members[i].below;
        }
        if let Some(slot) = leaf {
            return slot;
        }
        let slot = self.slots;
        self.slots += 1;
        let mut node = &mut self.root;
        for (depth, &i) in trail.iter().enumerate() {
            let m = &mut node.members[i];
            m.slots.push(slot);
            if depth + 1 == trail.len() {
                m.leaf = Some(slot);
            }
            node = &mut m.below;
        }
        slot
    }

    /// Number of distinct paths.
    pub fn len(&self) -> usize {
        self.slots
    }

    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// The selected value of every path, by slot, or serde_json's error for the text.
    pub fn scan(&self, text: &str) -> Result<Scanned, serde_json::Error> {
        let mut out: Scanned = SmallVec::from_elem(None, self.slots);
        let mut de = serde_json::Deserializer::from_str(text);
        Walk {
            node: &self.root,
            out: &mut out,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(out)
    }
}

/// Fills the slots below `node` from an already parsed value (a path that ends at a member that other
/// paths go through).
fn fill(node: &Node, value: &Value, out: &mut Scanned) {
    let Some(object) = value.as_object() else {
        return;
    };
    for m in &node.members {
        if let Some(v) = object.get(&*m.name) {
            if let Some(slot) = m.leaf {
                out[slot] = Some(v.clone());
            }
            fill(&m.below, v, out);
        }
    }
}

/// A value that may hold wanted members.
struct Walk<'a> {
    node: &'a Node,
    out: &'a mut Scanned,
}

/// Any value: parsed and checked, then dropped.
struct Skip;

/// A member name: which wanted member it is, if any.
struct Key<'a>(&'a Node);

/// A member name of a value nothing is wanted from.
struct AnyKey;

/// Accepts every kind of JSON value; `visit_map` and `visit_seq` are the visitor's own.
macro_rules! accept_scalars {
    () => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    accept_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Skip.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(found) = map.next_key_seed(Key(self.node))? {
            let Some(m) = found else {
                map.next_value_seed(Skip)?;
                continue;
            };
            for &slot in &m.slots {
                self.out[slot] = None;
            }
            match m.leaf {
                Some(slot) => {
                    let v: Value = map.next_value()?;
                    fill(&m.below, &v, self.out);
                    self.out[slot] = Some(v);
                }
                None => map.next_value_seed(Walk {
                    node: &m.below,
                    out: &mut *self.out,
                })?,
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    accept_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(AnyKey)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for AnyKey {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AnyKey {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

impl<'de, 'a> DeserializeSeed<'de> for Key<'a> {
    type Value = Option<&'a Member>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for Key<'a> {
    type Value = Option<&'a Member>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.members.iter().find(|m| *m.name == *name))
    }
}

#[cfg(test)]
mod tests;
