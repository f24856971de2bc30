//! Rule tests (issue 5): one `[[test]]` with a topic filter and `[[test.value]]`s makes a Xymon test per
//! captured host, with thresholds, staleness and expected hosts, from config alone.
//!
//! Fed by the collector with the samples whose topic matches a rule filter (`RuleState::offer`) and by
//! its sweep timer (`RuleState::due`); the status text is built by `crate::status::rule_status` from
//! `Instance::evaluate`. `explain` runs the same code on one message with fresh state.
//!
//! - `filter`: topic filters with `{name}` captures, and host/test templates.
//! - `extract`: plain numbers, JSONPath (RFC 9535, `serde_json_path`), string maps.
//! - `threshold`: `> 28`-style conditions, hits and hysteresis.
//! - `staleness`: fresh / stale past `expire_after` / retained of unknown age.
//!
//! Decisions:
//! - An instance is one (host, test) pair; it may be fed by several concrete topics (with `+` or `#` that
//!   are not in the names), each with its own freshness. Values are listed per topic when there are more.
//! - Derived names are validated with `HostName`/`TestName`; an invalid one is refused (counted and logged
//!   by the caller), never sent.
//! - Bounds: `max_instances` tests and `max_topics` concrete topics per rule (default 10,000 each).
//!   Instances are never dropped once created (a sensor that went silent must show as stale), so the caps
//!   are what keeps memory bounded.
//! - A retained replay without a sensor timestamp updates the value shown but does not step the
//!   hits/hysteresis state: it is not a new measurement.

pub mod explain;
pub mod extract;
pub mod filter;
pub mod staleness;
pub mod threshold;
pub mod xymon_config;

use crate::config::{ColourName, HostName, TestConfig, TestName, DEFAULT_MAX_INSTANCES};
use crate::xymon::Colour;
use extract::{Extracted, Extractor, Payload};
use filter::{Captures, Template, TopicFilter};
use serde_json_path::JsonPath;
use staleness::{freshness, Freshness, Seen};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};
use threshold::{ColourState, Cond, Thresholds, Verdict};
use tokio::time::Instant;

/// The rrd-defs layout of per-value RRDs (one GAUGE DS named `value`).
pub const VALUE_RRD_DEF: &str = "value";

/// The RRD names (`<test>.<value>`) of every `rrd = true` value of the rule tests among `tests`.
pub fn rrd_names<'a>(tests: impl Iterator<Item = &'a TestConfig>) -> Vec<String> {
    let mut out = Vec::new();
    for t in tests.filter(|t| t.kind == crate::config::TestKind::Rule) {
        for v in t.values.iter().filter(|v| v.rrd) {
            out.push(format!("{}.{}", t.test, v.name));
        }
    }
    out
}

/// Characters of a payload kept per topic for display (unparsable values show it).
const PAYLOAD_KEEP: usize = 512;

/// Cuts `s` to `n` characters (for messages about untrusted text; escaping is the status builder's).
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// One compiled `[[test.value]]`.
#[derive(Debug, Clone)]
pub struct ValueRule {
    pub name: String,
    pub unit: String,
    pub extractor: Extractor,
    pub thresholds: Thresholds,
    pub rrd: bool,
    pub expire_after: Option<Duration>,
}

/// A compiled rule test.
#[derive(Debug, Clone)]
pub struct Rule {
    pub filter: TopicFilter,
    pub host: Template,
    pub test: Template,
    pub values: Vec<ValueRule>,
    pub stale_colour: Colour,
    pub unparsable_colour: Colour,
    pub timestamp: Option<(JsonPath, String)>,
    pub expect: Vec<HostName>,
    pub max_instances: usize,
    pub max_topics: usize,
    pub interval: Duration,
    pub lifetime: Duration,
    /// The smallest `expire_after` of any value, for the sweep period.
    pub min_expire: Option<Duration>,
}

fn value_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 48
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Rule {
    /// Compiles a rule test; the error is (key relative to the test, message), for the config loader.
    pub fn compile(tc: &TestConfig) -> Result<Rule, (String, String)> {
        let e = |k: &str, m: String| (k.to_string(), m);
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
            if !value_name_ok(&v.name) {
                return Err((
                    k("name"),
                    format!("value name {:?} may contain only a-z, 0-9, '_' and '-' (it names the RRD file and graph)", v.name),
                ));
            }
            if tc.values[..j].iter().any(|o| o.name == v.name) {
                return Err((k("name"), format!("value {:?} is defined twice", v.name)));
            }
            let extractor =
                Extractor::new(v.path.as_deref(), v.map.clone()).map_err(|m| (k("path"), m))?;
            let cond = |leaf: &str, s: &Option<String>| -> Result<Option<Cond>, (String, String)> {
                s.as_deref()
                    .map(Cond::parse)
                    .transpose()
                    .map_err(|m| (k(leaf), m))
            };
            let thresholds = Thresholds {
                yellow: cond("yellow", &v.yellow)?,
                red: cond("red", &v.red)?,
                hits: v.hits,
                hysteresis: v.hysteresis,
            };
            if v.hits == 0 || v.hits > 1000 {
                return Err((k("hits"), "must be 1 to 1000".into()));
            }
            if !(v.hysteresis.is_finite() && v.hysteresis >= 0.0) {
                return Err((k("hysteresis"), "must be a number ≥ 0".into()));
            }
            if v.rrd && !test.is_literal() {
                return Err((
                    k("rrd"),
                    "per-value RRDs need a literal `test` name (the graphs.d/xymonserver.d lines are generated from it)".into(),
                ));
            }
            if v.expire_after.is_some_and(|d| d.is_zero()) {
                return Err((k("expire_after"), "must be longer than 0".into()));
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
                JsonPath::parse(p).map_err(|err| {
                    e("timestamp_path", format!("{p:?} is not a JSONPath: {err}"))
                })?,
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
            expect,
            max_instances,
            max_topics,
            interval: tc.interval(),
            lifetime: lifetime(tc.lifetime, tc.interval(), min_expire),
            min_expire,
        })
    }

    /// How often the collector sweeps this rule for staleness and due re-sends: a quarter of the
    /// shortest of `interval` and `expire_after`, within 1 s … 30 s.
    pub fn sweep_period(&self) -> Duration {
        let base = self
            .min_expire
            .map_or(self.interval, |e| e.min(self.interval));
        (base / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// The names of the instance a matched topic belongs to, or why there is none.
    pub fn names(&self, caps: &Captures) -> Result<(HostName, TestName), Skip> {
        let h = self.host.expand(caps);
        let host = HostName::try_from(h.clone()).map_err(|why| Skip::BadHost(h, why))?;
        let t = self.test.expand(caps);
        let test = TestName::try_from(t.clone()).map_err(|why| Skip::BadTest(t, why))?;
        Ok((host, test))
    }
}

/// Lifetime of a rule status: explicit, or 2 × interval + 5 minutes like other tests. The re-send
/// interval (plus the sweep delay) is always shorter than that, so a healthy instance never goes purple.
fn lifetime(explicit: Option<Duration>, interval: Duration, _expire: Option<Duration>) -> Duration {
    let raw = explicit.unwrap_or(interval * 2 + Duration::from_secs(300));
    Duration::from_secs(raw.as_secs().div_ceil(60).max(1) * 60)
}

/// Why a matching message made no status.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    BadHost(String, String),
    BadTest(String, String),
    MaxInstances(usize),
    MaxTopics(usize),
}

impl Skip {
    /// The `dropped{reason}` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::BadHost(..) => "rule_invalid_host",
            Skip::BadTest(..) => "rule_invalid_test",
            Skip::MaxInstances(_) => "rule_max_instances",
            Skip::MaxTopics(_) => "rule_max_topics",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::BadHost(h, why) => {
                write!(f, "derived host {:?} is not valid: {why}", short(h, 80))
            }
            Skip::BadTest(t, why) => {
                write!(f, "derived test {:?} is not valid: {why}", short(t, 80))
            }
            Skip::MaxInstances(n) => write!(f, "the rule already has max_instances = {n} tests"),
            Skip::MaxTopics(n) => write!(f, "the rule already tracks max_topics = {n} topics"),
        }
    }
}

/// One value of one topic.
#[derive(Debug, Clone, Default)]
pub struct ValueState {
    pub last: Option<Result<Extracted, String>>,
    pub colour: ColourState,
    /// The verdict of the last sample that stepped the state.
    pub verdict: Option<Verdict>,
}

/// One concrete topic of an instance.
#[derive(Debug, Clone)]
pub struct TopicState {
    pub seen: Seen,
    pub received_wall: SystemTime,
    /// The payload as text (cut), for unparsable values.
    pub payload: String,
    pub values: Vec<ValueState>,
    pub timestamp_error: Option<String>,
}

/// One Xymon test made by a rule.
#[derive(Debug, Clone)]
pub struct Instance {
    pub host: HostName,
    pub test: TestName,
    pub captures: Captures,
    pub topics: BTreeMap<String, TopicState>,
    pub last_sent: Option<Instant>,
    pub sent_colour: Option<Colour>,
}

/// What a value looks like now, for the status text.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueLine {
    pub topic: String,
    pub name: String,
    pub colour: Colour,
    /// `21.5 °C`, `OFF → 0`; None when unparsable. Untrusted parts are still raw here.
    pub shown: Option<String>,
    pub reason: String,
}

fn fmt_age(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn shown(x: &Extracted, unit: &str, mapped: bool) -> String {
    let mut s = if mapped {
        format!("{} → {}", short(&x.text, 64), x.number)
    } else {
        x.number.to_string()
    };
    if !unit.is_empty() {
        s.push(' ');
        s.push_str(unit);
    }
    s
}

impl Instance {
    /// Every value's colour and reason at `now` (pure).
    pub fn evaluate(&self, rule: &Rule, now: Instant, now_wall: SystemTime) -> Vec<ValueLine> {
        let mut out = Vec::new();
        for (topic, ts) in &self.topics {
            for (v, vs) in rule.values.iter().zip(&ts.values) {
                let fresh = freshness(&ts.seen, v.expire_after, now, now_wall);
                let mapped = |x: &Extracted| {
                    !v.extractor.map.is_empty() && v.extractor.map.contains_key(&x.text)
                };
                let line = |colour, shown, reason| ValueLine {
                    topic: topic.clone(),
                    name: v.name.clone(),
                    colour,
                    shown,
                    reason,
                };
                let value_text = match &vs.last {
                    Some(Ok(x)) => Some(shown(x, &v.unit, mapped(x))),
                    _ => None,
                };
                match (fresh, &vs.last) {
                    (_, None) => continue,
                    (Freshness::Retained, Some(_)) => out.push(line(
                        rule.stale_colour,
                        value_text,
                        "retained, age unknown: replayed by the broker, no live message since the bridge subscribed".into(),
                    )),
                    (Freshness::Stale { age, limit }, Some(_)) => out.push(line(
                        rule.stale_colour,
                        value_text,
                        format!("stale: last message {} ago, expire_after {}", fmt_age(age), fmt_age(limit)),
                    )),
                    (Freshness::Fresh { .. }, Some(Err(why))) => out.push(line(
                        rule.unparsable_colour,
                        None,
                        format!("unparsable: {why}"),
                    )),
                    (Freshness::Fresh { .. }, Some(Ok(_))) => {
                        let (colour, reason) = match &vs.verdict {
                            Some(v) => (v.colour, v.reason.clone()),
                            None => (vs.colour.colour, "no live sample yet".into()),
                        };
                        out.push(line(colour, value_text, reason));
                    }
                }
            }
        }
        out
    }

    /// The worst colour of `lines` (green when there are none).
    pub fn colour(lines: &[ValueLine]) -> Colour {
        lines
            .iter()
            .map(|l| l.colour)
            .max()
            .unwrap_or(Colour::Green)
    }
}

/// Reads the sensor's timestamp: Unix seconds (or milliseconds when > 10^11), or RFC 3339 text.
pub fn sensor_time(
    payload: &Payload<'_>,
    path: &JsonPath,
    text: &str,
) -> Result<SystemTime, String> {
    match payload.select(path, text)? {
        serde_json::Value::Number(n) => {
            let v = n
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or("negative timestamp")?;
            let secs = if v > 1e11 { v / 1000.0 } else { v };
            // Years 1970 to 9999, as RFC 3339 text allows: a huge number (`1e300`) fits no Duration, and
            // one past chrono's year 262,142 (`1e16` ms) would make every date formatter panic.
            if secs > crate::LATEST_WRITABLE_SECS as f64 {
                return Err(format!("timestamp {v:e} is out of range"));
            }
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
        }
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("timestamp {:?} is not RFC 3339: {e}", short(&s, 40))),
        _ => Err("the timestamp is neither a number nor a string".into()),
    }
}

/// What `offer` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub key: (HostName, TestName),
    /// The instance was created by this message.
    pub created: bool,
    /// (value index, number) of values parsed from a live (or sensor-timestamped) message: RRD updates.
    pub numbers: Vec<(usize, f64)>,
}

/// One rule's runtime state: its instances and the topics that feed them.
#[derive(Debug)]
pub struct RuleState {
    pub rule: Rule,
    pub instances: HashMap<(HostName, TestName), Instance>,
    topic_index: HashMap<String, (HostName, TestName)>,
    /// When the `expect` list was last reported.
    pub expect_sent: Option<Instant>,
    pub started: Instant,
}

impl RuleState {
    pub fn new(rule: Rule, now: Instant) -> RuleState {
        RuleState {
            rule,
            instances: HashMap::new(),
            topic_index: HashMap::new(),
            expect_sent: None,
            started: now,
        }
    }

    /// Feeds one message whose topic matched the filter (`caps`).
    pub fn offer(
        &mut self,
        topic: &str,
        caps: Captures,
        raw: &[u8],
        retained: bool,
        now: Instant,
        now_wall: SystemTime,
    ) -> Result<Offered, Skip> {
        let (key, created) = match self.topic_index.get(topic) {
            Some(k) => (k.clone(), false),
            None => {
                let key = self.rule.names(&caps)?;
                if self.topic_index.len() >= self.rule.max_topics {
                    return Err(Skip::MaxTopics(self.rule.max_topics));
                }
                let created = !self.instances.contains_key(&key);
                if created && self.instances.len() >= self.rule.max_instances {
                    return Err(Skip::MaxInstances(self.rule.max_instances));
                }
                self.topic_index.insert(topic.to_string(), key.clone());
                (key, created)
            }
        };
        let rule = &self.rule;
        let inst = self
            .instances
            .entry(key.clone())
            .or_insert_with(|| Instance {
                host: key.0.clone(),
                test: key.1.clone(),
                captures: caps,
                topics: BTreeMap::new(),
                last_sent: None,
                sent_colour: None,
            });
        let payload = Payload::new(raw);
        let (sensor, timestamp_error) = match &rule.timestamp {
            Some((path, text)) => match sensor_time(&payload, path, text) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        let ts = inst
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicState {
                seen: Seen {
                    received: now,
                    sensor_time: None,
                    retained,
                },
                received_wall: now_wall,
                payload: String::new(),
                values: vec![ValueState::default(); rule.values.len()],
                timestamp_error: None,
            });
        ts.seen = Seen {
            received: now,
            sensor_time: sensor,
            retained,
        };
        ts.received_wall = now_wall;
        ts.payload = short(&crate::xymon::sanitize::payload_text(raw), PAYLOAD_KEEP);
        ts.timestamp_error = timestamp_error;
        let measurement = !retained || sensor.is_some();
        let mut numbers = Vec::new();
        for (j, (v, vs)) in rule.values.iter().zip(ts.values.iter_mut()).enumerate() {
            let got = v.extractor.extract(&payload);
            if let (Ok(x), true) = (&got, measurement) {
                vs.verdict = Some(vs.colour.step(&v.thresholds, x.number));
                numbers.push((j, x.number));
            }
            if got.is_err() {
                vs.verdict = None;
            }
            vs.last = Some(got);
        }
        Ok(Offered {
            key,
            created,
            numbers,
        })
    }

    /// Expected hosts that have no instance yet.
    pub fn missing_expected(&self) -> Vec<&HostName> {
        self.rule
            .expect
            .iter()
            .filter(|h| !self.instances.keys().any(|(ih, _)| ih == *h))
            .collect()
    }
}

#[cfg(test)]
mod tests;
