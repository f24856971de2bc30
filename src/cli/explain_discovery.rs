//! `explain` for Home Assistant discovery: what each `[[discovery]]` block does with one announcement
//! (the entity read, its host, column, topics and colour, or why it is refused), by the same code the
//! discovery sessions run, on a fresh state.

use crate::discovery::{announce, DiscoveryState};
use crate::plan::Plan;
use crate::status::discovery_status;
use std::fmt::Write;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Appends one paragraph per block whose prefix the topic is under; returns how many read it.
pub fn report(
    out: &mut String,
    plan: &Plan,
    topic: &str,
    payload: &[u8],
    now: SystemTime,
) -> usize {
    let mut read = 0;
    for (i, (broker, d)) in plan.discovery.iter().enumerate() {
        let under = topic
            .strip_prefix(d.prefix.as_str())
            .is_some_and(|r| r.starts_with('/'));
        if !under {
            continue;
        }
        let broker = plan.brokers.get(*broker).map_or("?", |b| b.name.as_str());
        let _ = write!(
            out,
            "\ndiscovery[{i}] prefix {} (broker {broker}): ",
            d.prefix
        );
        let mut state = DiscoveryState::new(d.clone());
        let offered = state.offer(topic, payload, true, Instant::now(), now);
        if let Some(reason) = offered.refused {
            read += 1;
            let _ = writeln!(out, "REFUSED: {reason}");
            continue;
        }
        if state.entity_count() == 0 {
            let ours = announce::parse_topic(&d.prefix, &d.components, topic);
            let why = match ours {
                Ok(Some(_)) if payload.is_empty() => {
                    read += 1;
                    "an empty config: removes the entity"
                }
                Ok(Some(_)) => "a device left out by include/exclude",
                _ => "not an announcement this block reads (another component, or not .../config)",
            };
            let _ = writeln!(out, "{why}");
            continue;
        }
        read += 1;
        let _ = writeln!(out, "ANNOUNCEMENT");
        let _ = writeln!(out, "  subscribes: {}", offered.subscribe.join(", "));
        for col in state.columns(Instant::now(), now) {
            let _ = writeln!(out, "  host {} column {}:", col.host, col.column);
            let status = discovery_status(
                &col,
                Duration::from_secs(420),
                now,
                plan.limits.max_value_chars,
            );
            let _ = writeln!(out, "{}", status.to_wire());
        }
    }
    read
}
