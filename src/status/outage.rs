//! The status of a continuous test or a rule instance while its broker is disconnected: in the outage
//! colour (`outage_colour`, default clear), naming the broker, its error and how long it has been down,
//! instead of the last values, which say nothing about the sensors now.

use super::{age, timestamp, INDENT};
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use crate::text::untrusted;
use crate::xymon::Status;
use std::time::{Duration, SystemTime};

/// A broker outage as the collector knows it.
#[derive(Debug, Clone)]
pub struct Outage<'a> {
    /// The broker's configured name.
    pub broker: &'a str,
    /// The connection error as the MQTT client reported it (untrusted: partly the broker's words).
    pub error: Option<&'a str>,
    /// When the broker was last connected (the disconnect, or the bridge's first attempt).
    pub since: SystemTime,
    pub colour: Colour,
}

/// Status of `host.test` during `outage`. Line 1 holds only the bridge's own words: the broker's name is
/// in the body, escaped like any other text.
pub fn outage_status(
    host: &HostName,
    test: &TestName,
    lifetime: Duration,
    outage: &Outage<'_>,
    now: SystemTime,
) -> Status {
    let down = age(outage.since, now);
    let broker = untrusted(outage.broker, 200, INDENT);
    let error = outage
        .error
        .map(|e| format!(": {}", untrusted(e, 300, INDENT)))
        .unwrap_or_default();
    Status {
        host: host.clone(),
        test: test.clone(),
        colour: outage.colour,
        lifetime,
        summary: format!(
            "{} {test}: MQTT broker not connected for {down}",
            timestamp(now)
        ),
        body: format!(
            "\n&{} MQTT broker {broker} is not connected since {} ({down}){error}\n\n\
             The values of this test are unknown while the bridge cannot reach the broker; the next round \
             after it reconnects reports them again.\n",
            outage.colour,
            timestamp(outage.since),
        ),
    }
}
