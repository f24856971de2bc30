//! The status of a `kind = "broker-stats"` test: the broker's own `$SYS` counters, totals and rates.

use super::{age, safe, test_status, timestamp, Closed, Context};
use crate::colour::Colour;
use crate::config::{TestConfig, BROKER_STATS_TOPICS};
use crate::xymon::Status;
use std::fmt::Write;
use std::time::SystemTime;

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

/// Status of a `kind = "broker-stats"` test (submqttm.py's `mqtt` test): totals, and rates from the previous
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
