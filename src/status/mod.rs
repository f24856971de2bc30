//! The status builders: one per kind of test, each turning what the collector gathered into a Xymon
//! `Status`.
//!
//! Fed by the collector: a `Closed` round plus the store's last known values (`topics`, `broker_stats`),
//! or a rule instance's evaluated values (`rule`). The `Status` goes to the outbox (and, for
//! broker-stats, the `Counters` to the RRD writer). Pure functions of their inputs, `now` included, so
//! the exact text is unit-tested. Every topic and payload passes through `text::untrusted`; everything
//! else in the text is the bridge's own.
//!
//! - `round`: what a closed collection round holds (the input of the topics and broker-stats builders).
//! - `topics`: `kind = "topics"` tests, and any periodic test whose broker is unreachable.
//! - `broker_stats`: the broker's `$SYS` counters, totals and rates.
//! - `rule`: one rule instance, and a host a rule expects that never published.
//! - `outage`: a continuous test or rule instance while its broker is disconnected.
//! - `self_status`: the bridge's own column (brokers, deliveries, ghosts, refusals, RRD, store).

mod broker_stats;
mod discovery;
mod outage;
mod round;
mod rule;
mod self_status;
mod topics;

pub use broker_stats::{broker_stats_status, Counters};
pub use discovery::discovery_status;
pub use outage::{outage_status, Outage};
pub use round::{Changed, Closed, Reading};
pub use rule::{expected_missing_status, rule_status};
pub use self_status::{
    self_status, BrokerLine, Delivery, Drops, RrdFailure, SelfReport, STORE_YELLOW_PERCENT,
};
pub use topics::{broker_down_status, refused_status, topics_status};

use crate::colour::Colour;
use crate::config::TestConfig;
use crate::store::TopicValue;
use crate::text::{payload_text, untrusted};
use crate::xymon::Status;
use std::time::{Duration, SystemTime};

/// Indent of continuation lines of an untrusted value (see `text::untrusted`).
pub(crate) const INDENT: &str = "    ";

/// What the builder needs besides the round.
pub struct Context<'a> {
    pub now: SystemTime,
    pub max_value_chars: usize,
    /// The store's latest value of topic number `i` of the test, for topics the round did not bring.
    pub last_known: &'a dyn Fn(usize) -> Option<TopicValue>,
}

pub(crate) fn safe(raw: &[u8], ctx: &Context<'_>) -> String {
    untrusted(&payload_text(raw), ctx.max_value_chars, INDENT)
}

pub(crate) fn safe_topic(topic: &str) -> String {
    // Topics are bounded by MQTT (64 KiB); 256 characters are plenty to recognise one.
    untrusted(topic, 256, INDENT)
}

/// `2026-11-22 07:30:00`, local time, as submqttm.py's ISO date. A time chrono cannot hold (past year
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

pub(crate) fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// A status under a configured test's host, test name and lifetime.
pub(crate) fn test_status(
    test: &TestConfig,
    colour: Colour,
    summary: String,
    body: String,
) -> Status {
    Status {
        host: test.host.clone(),
        test: test.test.clone(),
        colour,
        lifetime: test.lifetime(),
        summary,
        body,
    }
}

/// Marks `status` yellow for a problem with one of its RRD files (`file` names it), with the writer's
/// error as untrusted text: a bad RRD file turns only the test that writes it yellow.
pub fn add_rrd_problem(status: &mut Status, file: &str, error: &str) {
    status.colour = status.colour.worst(Colour::Yellow);
    status.body.push_str(&format!(
        "&yellow RRD {file}: {}\n",
        untrusted(error, 500, INDENT)
    ));
}

/// Marks `status` yellow for a subscription the broker refuses: nothing published on `filter` reaches
/// the bridge. `reason` is the broker's word (untrusted text).
pub fn add_refused(status: &mut Status, filter: &str, reason: &str) {
    status.colour = status.colour.worst(Colour::Yellow);
    status.body.push_str(&format!(
        "&yellow The broker refuses the subscription to {}: {}; nothing published there reaches the bridge\n",
        safe_topic(filter),
        untrusted(reason, 300, INDENT)
    ));
}

#[cfg(test)]
mod self_status_tests;
#[cfg(test)]
mod tests;
