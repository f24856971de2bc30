//! The status of a `kind = "topics"` test: every listed topic with its value, and what was missing or
//! changed within the round; and the status of a periodic test whose broker cannot be reached.

use super::{age, ms, safe, safe_topic, test_status, timestamp, Closed, Context, Reading, INDENT};
use crate::colour::Colour;
use crate::config::{Mode, TestConfig, TestKind};
use crate::names::TopicName;
use crate::text::untrusted;
use crate::xymon::Status;
use std::fmt::Write;
use std::time::SystemTime;

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

/// A `topics` test some of whose topics the broker refuses to subscribe to, sent when the refusal is
/// learnt (a continuous test whose topics are all refused would otherwise never send a status).
/// `refused` holds (topic, the broker's reason).
pub fn refused_status(
    test: &TestConfig,
    refused: &[(&str, &str)],
    total: usize,
    now: SystemTime,
) -> Status {
    let summary = format!(
        "{} {}: the broker refuses {} of {} topics",
        timestamp(now),
        test.test,
        refused.len(),
        total
    );
    let mut status = test_status(test, Colour::Yellow, summary, String::from("\n"));
    for (topic, reason) in refused {
        super::add_refused(&mut status, topic, reason);
    }
    let _ = write!(status.body, "\nBroker {}\n", safe_topic(&test.broker));
    status
}

fn retained_note(r: &Reading) -> &'static str {
    if r.retained {
        " (retained)"
    } else {
        ""
    }
}
