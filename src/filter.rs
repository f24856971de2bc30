//! Topic filters with named captures, and name templates that use the captures.
//!
//! Fed by the config loader (`TopicFilter::parse`, `Template::parse`, once at start-up) and by the web
//! layer (`TopicFilter::parse_mqtt`, its `filter` parameter); used on the ingest path (`matches`, to decide
//! what to forward), by the collector and `explain`, and by the web layer to select topics.
//!
//! Decisions:
//! - `{name}` stands for a whole topic level and matches one level like `+`; `+` matches one level
//!   unnamed; `#` matches the rest (zero or more levels) and must be last. A capture inside a level
//!   (`sensor-{id}`) is refused at load time: MQTT cannot subscribe to it, so it would silently match less.
//! - As in MQTT, a wildcard in the first level does not match topics starting with `$` (`$SYS/...`).
//! - The subscription sent to the broker is the filter with every `{name}` replaced by `+`.
//! - Templates (`host`, `test`) are literal text with `{name}` placeholders; every placeholder must be a
//!   capture of the filter (checked at load time).

use std::fmt;

/// Captured (name, value) pairs, in filter order. A handful at most, so a Vec beats a map.
pub type Captures = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Lit(String),
    Capture(String),
    Plus,
    Hash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    raw: String,
    levels: Vec<Level>,
}

fn valid_capture_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl TopicFilter {
    /// Parses `sensors/{host}/env`, `a/+/b/#`, …; the error says what is wrong, for the config error.
    pub fn parse(raw: &str) -> Result<TopicFilter, String> {
        Self::parse_levels(raw, true)
    }

    /// Parses a plain MQTT filter as a broker reads it: `+` and `#` stand for whole levels, `#` comes last,
    /// and there are no captures (`{x}` is literal text, as it is to a broker). For filters given at run
    /// time, such as the web API's `filter` parameter, which then match exactly as rule filters do.
    pub fn parse_mqtt(raw: &str) -> Result<TopicFilter, String> {
        Self::parse_levels(raw, false)
    }

    fn parse_levels(raw: &str, captures: bool) -> Result<TopicFilter, String> {
        if raw.is_empty() || raw.len() > u16::MAX as usize {
            return Err("a topic filter must be 1 to 65535 bytes".into());
        }
        if raw.contains('\0') {
            return Err("a topic filter may not contain NUL".into());
        }
        let parts: Vec<&str> = raw.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        let mut names: Vec<&str> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let level = match *p {
                "+" => Level::Plus,
                "#" if i + 1 == parts.len() => Level::Hash,
                "#" => return Err(format!("{raw:?}: `#` must be the last level")),
                p if p.contains(['+', '#']) => {
                    return Err(format!(
                        "{raw:?}: `+` and `#` must stand for a whole level (as in `a/+/b`)"
                    ))
                }
                p if !captures => Level::Lit(p.to_string()),
                p if p.starts_with('{') && p.ends_with('}') => {
                    let name = &p[1..p.len() - 1];
                    if !valid_capture_name(name) {
                        return Err(format!(
                            "{raw:?}: capture {p:?} must be {{name}} with a name of letters, digits and '_'"
                        ));
                    }
                    if names.contains(&name) {
                        return Err(format!("{raw:?}: capture {{{name}}} is used twice"));
                    }
                    names.push(name);
                    Level::Capture(name.to_string())
                }
                p if p.contains(['{', '}']) => {
                    return Err(format!(
                    "{raw:?}: a capture must be a whole level (`a/{{name}}/b`), not part of {p:?}"
                ))
                }
                p => Level::Lit(p.to_string()),
            };
            levels.push(level);
        }
        Ok(TopicFilter {
            raw: raw.to_string(),
            levels,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The MQTT subscription: captures become `+`.
    pub fn subscription(&self) -> String {
        self.levels
            .iter()
            .map(|l| match l {
                Level::Lit(s) => s.as_str(),
                Level::Capture(_) | Level::Plus => "+",
                Level::Hash => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Names of the captures, in order.
    pub fn capture_names(&self) -> Vec<&str> {
        self.levels
            .iter()
            .filter_map(|l| match l {
                Level::Capture(n) => Some(n.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether the filter has no wildcard at all (then it is an exact topic).
    pub fn is_exact(&self) -> bool {
        self.levels.iter().all(|l| matches!(l, Level::Lit(_)))
    }

    /// The captures when `topic` matches, else why not (for `explain`).
    pub fn match_topic(&self, topic: &str) -> Result<Captures, String> {
        let parts: Vec<&str> = topic.split('/').collect();
        if topic.starts_with('$') && !matches!(self.levels.first(), Some(Level::Lit(_))) {
            return Err("topics starting with `$` match only a filter whose first level is literal (MQTT rule)".into());
        }
        let mut caps = Captures::new();
        for (i, level) in self.levels.iter().enumerate() {
            match level {
                Level::Hash => return Ok(caps),
                _ if i >= parts.len() => {
                    return Err(format!(
                        "the topic has {} levels, the filter needs at least {}",
                        parts.len(),
                        i + 1
                    ))
                }
                Level::Lit(s) if s != parts[i] => {
                    return Err(format!(
                        "level {} is {:?}, the filter wants {s:?}",
                        i + 1,
                        parts[i]
                    ))
                }
                Level::Lit(_) | Level::Plus => {}
                Level::Capture(n) => caps.push((n.clone(), parts[i].to_string())),
            }
        }
        if parts.len() > self.levels.len() {
            return Err(format!(
                "the topic has {} levels, the filter {} (end it with /# to match deeper topics)",
                parts.len(),
                self.levels.len()
            ));
        }
        Ok(caps)
    }

    /// Cheap yes/no for the ingest hot path (no allocation).
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$') && !matches!(self.levels.first(), Some(Level::Lit(_))) {
            return false;
        }
        let mut parts = topic.split('/');
        for level in &self.levels {
            match (level, parts.next()) {
                (Level::Hash, _) => return true,
                (_, None) => return false,
                (Level::Lit(s), Some(p)) if s != p => return false,
                _ => {}
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// `sensor-{host}`: literal text and capture placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(raw: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{raw:?}: `{{` without `}}`"))?;
            let name = &rest[open + 1..open + close];
            if !valid_capture_name(name) {
                return Err(format!("{raw:?}: {{{name}}} is not a capture name"));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("{raw:?}: `}}` without `{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template {
            raw: raw.to_string(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }

    /// The text with every placeholder replaced by its capture (a missing one by nothing; config
    /// validation rules that out).
    pub fn expand(&self, caps: &Captures) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    if let Some((_, val)) = caps.iter().find(|(n, _)| n == v) {
                        out.push_str(val);
                    }
                }
            }
        }
        out
    }

    /// The text with every placeholder replaced by `x`: what the config loader validates as a name.
    pub fn sample(&self) -> String {
        let caps: Captures = self.vars().map(|v| (v.to_string(), "x".into())).collect();
        self.expand(&caps)
    }
}

#[cfg(test)]
mod tests;
