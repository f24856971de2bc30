//! One Xymon test made by a rule (an `Instance`), the state of its values, and how they look now.
//!
//! Pure: `evaluate` takes the times as parameters. Read by the status builder and by `explain`.

use super::extract::{Extracted, Payload};
use super::staleness::{freshness, Freshness, Seen};
use super::threshold::{ColourState, Verdict};
use super::Rule;
use crate::colour::Colour;
use crate::filter::Captures;
use crate::names::{HostName, TestName};
use crate::text::short;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

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
            if secs > crate::limits::LATEST_WRITABLE_SECS as f64 {
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
