//! One Xymon test made by a rule (an `Instance`), the state of its values, and how they look now.
//!
//! Pure: `evaluate` and `colour_now` take the times as parameters. Read by the status builder and by
//! `explain`. The state keeps no words: a value's reason is written by `evaluate`, which runs only for a
//! status that is sent (or shown); `colour_now` decides whether one is due without writing any.

use super::extract::{Extracted, Payload};
use super::staleness::{freshness, Freshness, Seen};
use super::threshold::{ColourState, Step, Why};
use super::{Rule, ValueRule};
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use crate::text::short;
use serde_json_path::JsonPath;
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// One value of one topic.
#[derive(Debug, Clone, Default)]
pub struct ValueState {
    pub last: Option<Result<Extracted, String>>,
    pub colour: ColourState,
    /// Why the last sample that stepped `colour` wanted its colour (the rest of that step is in `colour`,
    /// `ColourState::last_step`); `None` after an unparsable one.
    pub verdict: Option<Why>,
}

/// One concrete topic of an instance.
#[derive(Debug, Clone)]
pub struct TopicState {
    /// The topic (the store's shared copy of the name, when the collector fed it).
    pub name: Arc<str>,
    pub seen: Seen,
    pub received_wall: SystemTime,
    /// The payload as text (cut), kept while a value of it is unparsable: the status then shows it.
    pub payload: Box<str>,
    pub values: Box<[ValueState]>,
    pub timestamp_error: Option<Box<str>>,
}

/// One Xymon test made by a rule.
#[derive(Debug, Clone)]
pub struct Instance {
    pub host: HostName,
    pub test: TestName,
    /// The concrete topics that feed it, sorted by name: usually one, held inline.
    pub topics: SmallVec<[TopicState; 1]>,
    pub last_sent: Option<Instant>,
    pub sent_colour: Option<Colour>,
}

/// What a value looks like now, for the status text.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueLine {
    pub topic: Arc<str>,
    pub name: String,
    pub colour: Colour,
    /// `21.5 °C`, `OFF → 0`; None when unparsable. Untrusted parts are still raw here.
    pub shown: Option<String>,
    pub reason: String,
}

/// How one value looks now, before it is put into words.
enum Look<'a> {
    Retained,
    Stale { age: Duration, limit: Duration },
    Unparsable(&'a str),
    Stepped(Step),
    NoLiveSample,
}

const RETAINED: &str =
    "retained, age unknown: replayed by the broker, no live message since the bridge subscribed";

fn fmt_age(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn shown(x: &Extracted, v: &ValueRule) -> String {
    let mut s = if v.extractor.mapped(&x.text) {
        format!("{} → {}", short(&x.text.as_text(), 64), x.number)
    } else {
        x.number.to_string()
    };
    if !v.unit.is_empty() {
        s.push(' ');
        s.push_str(&v.unit);
    }
    s
}

impl Instance {
    /// The topic `name` of this instance, if it feeds it.
    pub fn topic_mut(&mut self, name: &str) -> Option<&mut TopicState> {
        let i = self.topics.binary_search_by(|t| (*t.name).cmp(name)).ok()?;
        self.topics.get_mut(i)
    }

    /// Every value with a sample, with its colour at `now` and why.
    fn looks<'a>(
        &'a self,
        rule: &'a Rule,
        now: Instant,
        now_wall: SystemTime,
    ) -> impl Iterator<
        Item = (
            &'a TopicState,
            &'a ValueRule,
            &'a ValueState,
            Colour,
            Look<'a>,
        ),
    > + 'a {
        self.topics.iter().flat_map(move |ts| {
            rule.values
                .iter()
                .zip(ts.values.iter())
                .filter_map(move |(v, vs)| {
                    let last = vs.last.as_ref()?;
                    let (colour, look) =
                        match (freshness(&ts.seen, v.expire_after, now, now_wall), last) {
                            (Freshness::Retained, _) => (rule.stale_colour, Look::Retained),
                            (Freshness::Stale { age, limit }, _) => {
                                (rule.stale_colour, Look::Stale { age, limit })
                            }
                            (Freshness::Fresh { .. }, Err(why)) => {
                                (rule.unparsable_colour, Look::Unparsable(why))
                            }
                            (Freshness::Fresh { .. }, Ok(_)) => match vs.verdict {
                                Some(why) => {
                                    let step = vs.colour.last_step(why);
                                    (step.colour, Look::Stepped(step))
                                }
                                None => (vs.colour.colour, Look::NoLiveSample),
                            },
                        };
                    Some((ts, v, vs, colour, look))
                })
        })
    }

    /// Every value's colour and reason at `now` (pure).
    pub fn evaluate(&self, rule: &Rule, now: Instant, now_wall: SystemTime) -> Vec<ValueLine> {
        self.looks(rule, now, now_wall)
            .map(|(ts, v, vs, colour, look)| {
                let value_text = match &vs.last {
                    Some(Ok(x)) => Some(shown(x, v)),
                    _ => None,
                };
                let (shown, reason) = match look {
                    Look::Retained => (value_text, RETAINED.to_string()),
                    Look::Stale { age, limit } => (
                        value_text,
                        format!(
                            "stale: last message {} ago, expire_after {}",
                            fmt_age(age),
                            fmt_age(limit)
                        ),
                    ),
                    Look::Unparsable(why) => (None, format!("unparsable: {why}")),
                    Look::Stepped(step) => (value_text, step.reason(&v.thresholds)),
                    Look::NoLiveSample => (value_text, "no live sample yet".to_string()),
                };
                ValueLine {
                    topic: ts.name.clone(),
                    name: v.name.clone(),
                    colour,
                    shown,
                    reason,
                }
            })
            .collect()
    }

    /// The colour of the status `evaluate` would make at `now`, without making it.
    pub fn colour_now(&self, rule: &Rule, now: Instant, now_wall: SystemTime) -> Colour {
        self.looks(rule, now, now_wall)
            .map(|(.., colour, _)| colour)
            .max()
            .unwrap_or(Colour::Green)
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
    sensor_time_at(payload, None, path, text)
}

/// `sensor_time`, for a path with a slot among the rule's simple paths.
pub(super) fn sensor_time_at(
    payload: &Payload<'_>,
    slot: Option<usize>,
    path: &JsonPath,
    text: &str,
) -> Result<SystemTime, String> {
    match payload.node(slot, path, text)? {
        serde_json::Value::Number(n) => {
            let v = n
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or("negative timestamp")?;
            let secs = if v > 1e11 { v / 1000.0 } else { v };
            // Years 1970 to 9999, as RFC 3339 text allows: a huge number (`1e300`) fits no Duration, and
            // one past chrono's year 262,142 (`1e16` ms) would make every date formatter panic.
            if secs > crate::limits::LATEST_WRITABLE_SECS as f64 {
                return Err(format!("timestamp {v:e} is out of range"));
            }
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
        }
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("timestamp {:?} is not RFC 3339: {e}", short(s, 40))),
        _ => Err("the timestamp is neither a number nor a string".into()),
    }
}
