//! Compiling a rule test: `TestConfig` → `Rule`, once, in `plan::Plan::compile`.
//!
//! Every problem is a `RuleError` naming the key relative to the test (`topic`, `value[1].path`), so the
//! plan can point at the file, the line and the key.

use super::extract::Extractor;
use super::path::parse_path;
use super::scan::{member_names, SimplePaths};
use super::threshold::{Cond, Thresholds};
use super::{Rule, ValueRule};
use crate::config::{ColourName, TestConfig, DEFAULT_MAX_INSTANCES};
use crate::filter::{Template, TopicFilter};
use crate::names::HostName;
use serde_json_path::JsonPath;
use std::time::Duration;

/// A rule test that does not compile: the key (relative to the test) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RuleError {
    pub key: String,
    pub message: String,
}

fn value_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 48
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Rule {
    /// Compiles a rule test.
    ///
    /// # Errors
    /// The first problem found, by its key relative to the test.
    pub fn compile(tc: &TestConfig) -> Result<Rule, RuleError> {
        let e = |k: &str, m: String| RuleError {
            key: k.to_string(),
            message: m,
        };
        let raw = tc
            .topic
            .as_deref()
            .ok_or_else(|| e("topic", "a rule test needs `topic`".into()))?;
        let filter = TopicFilter::parse(raw).map_err(|m| e("topic", m))?;
        let caps = filter.capture_names();
        let host = Template::parse(tc.host.as_str()).map_err(|m| e("host", m))?;
        let test = Template::parse(tc.test.as_str()).map_err(|m| e("test", m))?;
        for (k, t) in [("host", &host), ("test", &test)] {
            if let Some(v) = t.vars().find(|v| !caps.contains(v)) {
                return Err(e(
                    k,
                    format!(
                        "{{{v}}} is not a capture of topic {raw:?} (captures: {})",
                        {
                            let c: Vec<String> = caps.iter().map(|c| format!("{{{c}}}")).collect();
                            if c.is_empty() {
                                "none".to_string()
                            } else {
                                c.join(", ")
                            }
                        }
                    ),
                ));
            }
        }
        if tc.values.is_empty() {
            return Err(e(
                "value",
                "a rule test needs at least one [[test.value]]".into(),
            ));
        }
        let mut values = Vec::with_capacity(tc.values.len());
        for (j, v) in tc.values.iter().enumerate() {
            let k = |leaf: &str| format!("value[{j}].{leaf}");
            let e = |leaf: &str, m: String| e(&k(leaf), m);
            if !value_name_ok(&v.name) {
                return Err(e(
                    "name",
                    format!("value name {:?} may contain only a-z, 0-9, '_' and '-' (it names the RRD file and graph)", v.name),
                ));
            }
            if tc.values[..j].iter().any(|o| o.name == v.name) {
                return Err(e("name", format!("value {:?} is defined twice", v.name)));
            }
            let extractor =
                Extractor::new(v.path.as_deref(), v.map.clone()).map_err(|m| e("path", m))?;
            let cond = |leaf: &str, s: &Option<String>| -> Result<Option<Cond>, RuleError> {
                s.as_deref()
                    .map(Cond::parse)
                    .transpose()
                    .map_err(|m| e(leaf, m))
            };
            let thresholds = Thresholds {
                yellow: cond("yellow", &v.yellow)?,
                red: cond("red", &v.red)?,
                hits: v.hits,
                hysteresis: v.hysteresis,
            };
            if v.hits == 0 || v.hits > 1000 {
                return Err(e("hits", "must be 1 to 1000".into()));
            }
            if !(v.hysteresis.is_finite() && v.hysteresis >= 0.0) {
                return Err(e("hysteresis", "must be a number ≥ 0".into()));
            }
            if v.rrd && !test.is_literal() {
                return Err(e(
                    "rrd",
                    "per-value RRDs need a literal `test` name (the graphs.d/xymonserver.d lines are generated from it)".into(),
                ));
            }
            if v.expire_after.is_some_and(|d| d.is_zero()) {
                return Err(e("expire_after", "must be longer than 0".into()));
            }
            values.push(ValueRule {
                name: v.name.clone(),
                unit: v.unit.clone(),
                extractor,
                thresholds,
                rrd: v.rrd,
                expire_after: v.expire_after.or(tc.expire_after),
            });
        }
        if tc.expire_after.is_some_and(|d| d.is_zero()) {
            return Err(e("expire_after", "must be longer than 0".into()));
        }
        let timestamp = match &tc.timestamp_path {
            Some(p) => Some((
                parse_path(p).map_err(|err| e("timestamp_path", err))?,
                p.clone(),
            )),
            None => None,
        };
        let mut expect = Vec::new();
        for h in &tc.expect {
            expect.push(HostName::try_from(h.clone()).map_err(|m| e("expect", m))?);
        }
        if !expect.is_empty() && !test.is_literal() {
            return Err(e(
                "expect",
                "`expect` needs a literal `test` name (the status of a missing host is sent to HOST.TEST)".into(),
            ));
        }
        let (simple_paths, timestamp_slot) = simple_paths(&mut values, timestamp.as_ref());
        let max_instances = tc.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        let max_topics = tc.max_topics.unwrap_or(DEFAULT_MAX_INSTANCES);
        if max_instances == 0 {
            return Err(e("max_instances", "must be at least 1".into()));
        }
        if max_topics == 0 {
            return Err(e("max_topics", "must be at least 1".into()));
        }
        if tc.interval() < Duration::from_secs(1) {
            return Err(e("interval", "must be at least 1s".into()));
        }
        let min_expire = values.iter().filter_map(|v| v.expire_after).min();
        Ok(Rule {
            filter,
            host,
            test,
            values,
            stale_colour: tc.stale_colour.unwrap_or(ColourName::Yellow).into(),
            unparsable_colour: tc.unparsable_colour.unwrap_or(ColourName::Yellow).into(),
            timestamp,
            simple_paths,
            timestamp_slot,
            expect,
            max_instances,
            max_topics,
            interval: tc.interval(),
            lifetime: tc.lifetime(),
            qos: tc.qos(),
            tests: tc.tests.clone(),
            min_expire,
        })
    }
}

/// The rule's paths as one `SimplePaths` when every one (values and timestamp) is a chain of member names,
/// with each value's slot set; else `None` and no slots: the full engine reads them all.
fn simple_paths(
    values: &mut [ValueRule],
    timestamp: Option<&(JsonPath, String)>,
) -> (Option<SimplePaths>, Option<usize>) {
    let paths = values
        .iter()
        .filter_map(|v| {
            Some((
                v.extractor.path.as_ref()?,
                v.extractor.path_text.as_deref()?,
            ))
        })
        .chain(timestamp.map(|(p, t)| (p, t.as_str())));
    let Some(names) = paths
        .map(|(p, t)| member_names(p, t))
        .collect::<Option<Vec<_>>>()
    else {
        return (None, None);
    };
    if names.is_empty() {
        return (None, None);
    }
    let mut set = SimplePaths::default();
    let slots: Vec<usize> = names.iter().map(|n| set.add(n)).collect();
    let mut slots = slots.into_iter();
    for v in values.iter_mut() {
        if v.extractor.path.is_some() && v.extractor.path_text.is_some() {
            v.extractor.slot = slots.next();
        }
    }
    let timestamp_slot = timestamp.and_then(|_| slots.next());
    (Some(set), timestamp_slot)
}
