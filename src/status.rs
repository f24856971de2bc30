//! The status builder: turns a closed collection round into a Xymon status.
//!
//! Fed by the collector with a `Closed` round plus the store's last known values; its `Status` goes to the
//! outbox (and, for broker-stats, its counters to the RRD writer). Pure functions of their inputs, `now`
//! included, so the exact text is unit-tested. Every topic and payload passes through
//! `sanitize::untrusted`; everything else in the text is the bridge's own.

use crate::collect::round::{Closed, Reading};
use crate::config::{Mode, TestConfig, TestKind, TopicName, BROKER_STATS_TOPICS};
use crate::store::TopicValue;
use crate::xymon::sanitize::{payload_text, untrusted};
use crate::xymon::{Colour, Status};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Indent of continuation lines of an untrusted value (see `sanitize`).
const INDENT: &str = "    ";

/// What the builder needs besides the round.
pub struct Context<'a> {
    pub now: SystemTime,
    pub max_value_chars: usize,
    /// The store's latest value of topic number `i` of the test, for topics the round did not bring.
    pub last_known: &'a dyn Fn(usize) -> Option<TopicValue>,
}

fn safe(raw: &[u8], ctx: &Context<'_>) -> String {
    untrusted(&payload_text(raw), ctx.max_value_chars, INDENT)
}

fn safe_topic(topic: &str) -> String {
    // Topics are bounded by MQTT (64 KiB); 256 characters are plenty to recognise one.
    untrusted(topic, 256, INDENT)
}

/// `2026-11-22 07:30:00`, local time, as the seed's ISO date. A time chrono cannot hold (past year
/// 262,142; `From<SystemTime>` would panic) is written as such rather than taking the collector down.
pub fn timestamp(t: SystemTime) -> String {
    // Whole seconds, rounded down (before 1970 too, as chrono's own conversion does).
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => {
            let d = e.duration();
            i64::try_from(d.as_secs())
                .ok()
                .map(|s| -s - i64::from(d.subsec_nanos() > 0))
        }
    };
    match secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
        Some(utc) => utc
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => "(time out of range)".into(),
    }
}

/// Whole seconds, humanised: `0s`, `42s`, `5m 3s`.
pub fn age(from: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(from).unwrap_or_default().as_secs();
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Status of a `kind = "topics"` test.
pub fn topics_status(
    test: &TestConfig,
    topics: &[TopicName],
    closed: &Closed,
    ctx: &Context<'_>,
) -> Status {
    let mut colour = Colour::Green;
    let mut problems = String::new();
    let mut values = String::new();
    let missing = closed.missing().count();
    for (i, topic) in topics.iter().enumerate() {
        let shown = safe_topic(topic);
        match &closed.values[i] {
            Some(r) => {
                let _ = writeln!(
                    values,
                    "&green {shown} = {}{}",
                    safe(&r.payload, ctx),
                    retained_note(r)
                );
            }
            None => {
                colour = colour.worst(Colour::Yellow);
                let last = match (ctx.last_known)(i) {
                    Some(v) => format!(
                        "; last value {}, received {} ago",
                        safe(&v.payload, ctx),
                        age(v.received_at, ctx.now)
                    ),
                    None => String::new(),
                };
                let why = match test.mode() {
                    Mode::Continuous => format!(
                        "not received within {} of the first topic",
                        ms(closed.window)
                    ),
                    Mode::Periodic => format!("no retained value within {}", ms(closed.window)),
                };
                let _ = writeln!(problems, "&yellow Missing topic: {shown} ({why}{last})");
            }
        }
    }
    for c in &closed.changed {
        colour = colour.worst(Colour::Yellow);
        let _ = writeln!(
            problems,
            "&yellow Topic received more than once in one round with different values: {}: {}, then {}",
            safe_topic(&topics[c.topic]),
            safe(&c.first, ctx),
            safe(&c.then, ctx)
        );
    }
    let summary = if missing > 0 {
        format!(
            "{} {}: {} of {} topics missing",
            timestamp(ctx.now),
            test.test,
            missing,
            topics.len()
        )
    } else if !closed.changed.is_empty() {
        format!(
            "{} {}: a topic changed value within one round",
            timestamp(ctx.now),
            test.test
        )
    } else {
        format!(
            "{} {}: all {} topics received",
            timestamp(ctx.now),
            test.test,
            topics.len()
        )
    };
    let mut body = String::from("\n");
    body.push_str(&problems);
    if !problems.is_empty() {
        body.push('\n');
    }
    body.push_str(&values);
    let _ = write!(
        body,
        "\nRound opened {}, {} after {} (window {}); broker {}\n",
        timestamp(closed.opened_at),
        if closed.is_complete() {
            "complete"
        } else {
            "closed"
        },
        ms(closed.took),
        ms(closed.window),
        safe_topic(&test.broker),
    );
    test_status(test, colour, summary, body)
}

/// A status under a configured test's host, test name and lifetime.
fn test_status(test: &TestConfig, colour: Colour, summary: String, body: String) -> Status {
    Status {
        host: test.host.clone(),
        test: test.test.clone(),
        colour,
        lifetime: test.lifetime(),
        summary,
        body,
    }
}

/// A periodic test whose broker is not connected at snapshot time. For broker-stats that is the news
/// itself (red); for a topics test the values are simply unknown (yellow). `error` is the connection
/// error as rumqttc reported it, so it is treated as untrusted text.
pub fn broker_down_status(test: &TestConfig, error: Option<&str>, now: SystemTime) -> Status {
    let colour = match test.kind {
        TestKind::BrokerStats => Colour::Red,
        TestKind::Topics | TestKind::Rule => Colour::Yellow,
    };
    let reason = error
        .map(|e| format!(": {}", untrusted(e, 300, INDENT)))
        .unwrap_or_default();
    let summary = format!("{} broker {} is not connected", timestamp(now), test.broker);
    let body = format!(
        "\n&{colour} Cannot reach MQTT broker {}{reason}\n",
        test.broker
    );
    test_status(test, colour, summary, body)
}

fn retained_note(r: &Reading) -> &'static str {
    if r.retained {
        " (retained)"
    } else {
        ""
    }
}

/// The five broker counters of one broker-stats snapshot, in `BROKER_STATS_TOPICS` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Counters {
    pub at: SystemTime,
    pub values: [Option<u64>; 5],
}

impl Counters {
    pub const BYTES_RECEIVED: usize = 0;
    pub const BYTES_SENT: usize = 1;
    pub const MESSAGES_RECEIVED: usize = 2;
    pub const MESSAGES_SENT: usize = 3;
    pub const MESSAGES_STORED: usize = 4;
}

/// Status of a `kind = "broker-stats"` test (the seed's `mqtt` test): totals, and rates from the previous
/// snapshot. Returns the counters for the next round (and for the RRD writer).
pub fn broker_stats_status(
    test: &TestConfig,
    closed: &Closed,
    prev: Option<&Counters>,
    ctx: &Context<'_>,
) -> (Status, Counters) {
    let mut colour = Colour::Green;
    let mut notes = String::new();
    let mut counters = Counters {
        at: ctx.now,
        values: [None; 5],
    };
    for (i, topic) in BROKER_STATS_TOPICS.iter().enumerate() {
        // This round's value, else the last one seen: mosquitto publishes a $SYS value only when it changes.
        let (payload, received_at, fresh) = match &closed.values[i] {
            Some(r) => (r.payload.clone(), r.at, true),
            None => match (ctx.last_known)(i) {
                Some(v) => (v.payload.clone(), v.received_at, false),
                None => {
                    colour = colour.worst(Colour::Yellow);
                    let _ = writeln!(notes, "&yellow No value yet for {topic}");
                    continue;
                }
            },
        };
        match std::str::from_utf8(&payload)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) => {
                counters.values[i] = Some(n);
                if !fresh {
                    let _ = writeln!(
                        notes,
                        "{topic}: not in this round; using the last value, received {} ago",
                        age(received_at, ctx.now)
                    );
                }
            }
            None => {
                colour = colour.worst(Colour::Yellow);
                let _ = writeln!(
                    notes,
                    "&yellow {topic} is not a counter: {}",
                    safe(&payload, ctx)
                );
            }
        }
    }
    let show = |i: usize| counters.values[i].map_or_else(|| "-".to_string(), |n| n.to_string());
    let mut body = String::from("\n");
    body.push_str(&notes);
    if !notes.is_empty() {
        body.push('\n');
    }
    body.push_str("Total counts\n");
    for (what, dir, i) in [
        ("Octets", "received", Counters::BYTES_RECEIVED),
        ("Octets", "transmitted", Counters::BYTES_SENT),
        ("Messages", "received", Counters::MESSAGES_RECEIVED),
        ("Messages", "transmitted", Counters::MESSAGES_SENT),
        ("Messages", "stored", Counters::MESSAGES_STORED),
    ] {
        let _ = writeln!(body, "  {what:<10} {dir:<12} {:>14}", show(i));
    }
    body.push('\n');
    match prev.map(|p| (p, ctx.now.duration_since(p.at).unwrap_or_default())) {
        Some((p, dt)) if dt.as_secs_f64() >= 1.0 => {
            let secs = dt.as_secs_f64();
            let _ = writeln!(body, "Rates over the last {}", age(p.at, ctx.now));
            for (what, dir, i, scale, unit) in [
                (
                    "Messages",
                    "received",
                    Counters::MESSAGES_RECEIVED,
                    1.0,
                    "msg/s",
                ),
                (
                    "Messages",
                    "transmitted",
                    Counters::MESSAGES_SENT,
                    1.0,
                    "msg/s",
                ),
                ("Bits", "received", Counters::BYTES_RECEIVED, 8.0, "bit/s"),
                ("Bits", "transmitted", Counters::BYTES_SENT, 8.0, "bit/s"),
            ] {
                let rate = match (p.values[i], counters.values[i]) {
                    (Some(a), Some(b)) if b >= a => {
                        format!("{:>14.2} {unit}", (b - a) as f64 * scale / secs)
                    }
                    (Some(_), Some(_)) => "   counter went back (broker restarted?)".to_string(),
                    _ => "              -".to_string(),
                };
                let _ = writeln!(body, "  {what:<10} {dir:<12} {rate}");
            }
        }
        _ => body.push_str(
            "Rates: first snapshot since the bridge started; rates follow at the next one\n",
        ),
    }
    let summary = format!(
        "{} MQTT broker statistics{}",
        timestamp(ctx.now),
        if colour == Colour::Green {
            ""
        } else {
            ": some counters unavailable"
        }
    );
    let status = test_status(test, colour, summary, body);
    (status, counters)
}

/// Status of one rule instance (issue 5): one line per value with its colour icon, value, unit and the
/// reason for its colour; the status colour is the worst. `lines` come from `Instance::evaluate`; every
/// untrusted string (topic, payload text, mapped text) is sanitised here. Pure, `now` included.
pub fn rule_status(
    rule: &crate::rules::Rule,
    inst: &crate::rules::Instance,
    lines: &[crate::rules::ValueLine],
    now: SystemTime,
    max_value_chars: usize,
) -> Status {
    let colour = crate::rules::Instance::colour(lines);
    let several = inst.topics.len() > 1;
    let mut body = String::from("\n");
    for l in lines {
        let name = if several {
            format!("{} {}", safe_topic(&l.topic), l.name)
        } else {
            l.name.clone()
        };
        match &l.shown {
            Some(v) => {
                let _ = writeln!(
                    body,
                    "&{} {name} = {} ({})",
                    l.colour,
                    untrusted(v, max_value_chars, INDENT),
                    untrusted(&l.reason, max_value_chars, INDENT)
                );
            }
            None => {
                let _ = writeln!(
                    body,
                    "&{} {name}: {}",
                    l.colour,
                    untrusted(&l.reason, max_value_chars, INDENT)
                );
            }
        }
    }
    body.push('\n');
    for (topic, ts) in &inst.topics {
        let retained = if ts.seen.retained { ", retained" } else { "" };
        let _ = write!(
            body,
            "Topic {}: last message {}{retained}",
            safe_topic(topic),
            timestamp(ts.received_wall)
        );
        if let Some(t) = ts.seen.sensor_time {
            let _ = write!(body, ", sensor time {}", timestamp(t));
        }
        body.push('\n');
        if let Some(e) = &ts.timestamp_error {
            let _ = writeln!(
                body,
                "{INDENT}timestamp_path: {}",
                untrusted(e, max_value_chars, INDENT)
            );
        }
        if lines.iter().any(|l| l.topic == *topic && l.shown.is_none()) {
            let _ = writeln!(
                body,
                "{INDENT}payload: {}",
                untrusted(&ts.payload, max_value_chars, INDENT)
            );
        }
    }
    let _ = writeln!(body, "Rule: topic {}", safe_topic(rule.filter.as_str()));
    let bad = lines.iter().filter(|l| l.colour > Colour::Green).count();
    let summary = if bad == 0 {
        format!(
            "{} {}: all {} values ok",
            timestamp(now),
            inst.test,
            lines.len()
        )
    } else {
        let names: Vec<&str> = lines
            .iter()
            .filter(|l| l.colour > Colour::Green)
            .map(|l| l.name.as_str())
            .collect();
        format!(
            "{} {}: {} of {} values not ok: {}",
            timestamp(now),
            inst.test,
            bad,
            lines.len(),
            names.join(", ")
        )
    };
    Status {
        host: inst.host.clone(),
        test: inst.test.clone(),
        colour,
        lifetime: rule.lifetime,
        summary,
        body,
    }
}

/// Status of a host listed in a rule's `expect` that has never published.
pub fn expected_missing_status(
    rule: &crate::rules::Rule,
    host: &crate::config::HostName,
    test: &crate::config::TestName,
    since: Duration,
    now: SystemTime,
) -> Status {
    Status {
        host: host.clone(),
        test: test.clone(),
        colour: rule.stale_colour,
        lifetime: rule.lifetime,
        summary: format!("{} {test}: expected host has not published", timestamp(now)),
        body: format!(
            "\n&{} {host} is listed in `expect` but no topic matching {} has arrived for it (bridge running for {})\n",
            rule.stale_colour,
            safe_topic(rule.filter.as_str()),
            humantime::format_duration(Duration::from_secs(since.as_secs()))
        ),
    }
}

#[cfg(test)]
mod tests;
