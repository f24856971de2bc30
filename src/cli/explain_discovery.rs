//! `explain` for Home Assistant discovery: what each `[[discovery]]` block does with one announcement
//! (the entity read, its host, column, topics and colour, or why it is refused), by the same code the
//! discovery sessions run, on a fresh state. Announcements given beforehand (`--announce`) are read
//! first, as retained ones are at a session's start, so a state or availability message of an announced
//! entity shows the entity, its template's result and its colour. Earlier messages that are not
//! announcements (an availability state, an earlier value) can be given the same way.

use crate::discovery::{announce, DiscoveryState, EntityKey};
use crate::plan::Plan;
use crate::status::discovery_status;
use std::fmt::Write;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Appends one paragraph per block whose prefix the topic is under; returns how many read it.
pub fn report(
    out: &mut String,
    plan: &Plan,
    announcements: &[(String, Vec<u8>)],
    topic: &str,
    payload: &[u8],
    now: SystemTime,
) -> usize {
    let mut read = 0;
    for (i, (broker, d)) in plan.discovery.iter().enumerate() {
        let under = topic
            .strip_prefix(d.prefix.as_str())
            .is_some_and(|r| r.starts_with('/'));
        // A state topic is anywhere; it is looked at only when announcements were given.
        if !under && announcements.is_empty() {
            continue;
        }
        let broker = plan.brokers.get(*broker).map_or("?", |b| b.name.as_str());
        let mut state = DiscoveryState::new(d.clone());
        let mut refused = String::new();
        for (t, p) in announcements {
            let o = state.offer(t, p, true, Instant::now(), now);
            if let Some(reason) = o.refused {
                let _ = writeln!(refused, "discovery[{i}]: --announce REFUSED: {reason}");
            }
        }
        let _ = write!(
            out,
            "\n{refused}discovery[{i}] prefix {} (broker {broker}): ",
            d.prefix
        );
        let not_config = announce::parse_topic(&d.prefix, &d.components, topic) == Ok(None);
        if not_config && (!under || !state.readers(topic).is_empty()) {
            read += state_message(out, plan, &mut state, topic, payload, now);
            continue;
        }
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

/// A message on a topic that is not an announcement: the entities reading it, what the message made of
/// each (as a live message), and the statuses of their columns. Returns 1 when an entity reads it.
fn state_message(
    out: &mut String,
    plan: &Plan,
    state: &mut DiscoveryState,
    topic: &str,
    payload: &[u8],
    now: SystemTime,
) -> usize {
    let readers = state.readers(topic);
    if readers.is_empty() {
        let _ = writeln!(
            out,
            "no announced entity reads this topic ({} announced; give their configs with --announce CONFIG_TOPIC=PAYLOAD)",
            state.entity_count()
        );
        return 0;
    }
    // Template failures before this message (on an earlier --announce'd value) are not its own.
    let errors_before: Vec<(EntityKey, u64)> = state
        .columns(Instant::now(), now)
        .into_iter()
        .flat_map(|c| c.entities)
        .map(|e| (e.key, e.template_errors))
        .collect();
    let offered = state.offer(topic, payload, false, Instant::now(), now);
    let _ = writeln!(out, "STATE of {} entity(ies)", readers.len());
    let columns = state.columns(Instant::now(), now);
    for key in &readers {
        let found = columns.iter().find_map(|c| {
            c.entities
                .iter()
                .find(|e| &e.key == key)
                .map(|e| (c.host.as_str(), c.column.as_str(), e))
        });
        let Some((host, column, e)) = found else {
            let _ = writeln!(out, "  entity {key}: no host or column can be named for it");
            continue;
        };
        let _ = writeln!(
            out,
            "  entity {key} ({:?}) on host {host} column {column}:",
            e.name
        );
        let _ = writeln!(
            out,
            "    value: {}{}{}",
            e.value.as_deref().unwrap_or("(none)"),
            e.unit
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default(),
            e.device_class
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default()
        );
        let before = errors_before
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, n)| *n);
        if e.template_errors > before {
            let _ = writeln!(out, "    template failed on this message");
        }
        let _ = writeln!(
            out,
            "    colour: {} ({})",
            e.judged.colour.as_str(),
            e.judged.reason
        );
    }
    if offered.template_errors > 0 {
        let _ = writeln!(out, "  template errors: {}", offered.template_errors);
    }
    for col in columns
        .iter()
        .filter(|c| c.entities.iter().any(|e| readers.contains(&e.key)))
    {
        let status = discovery_status(
            col,
            Duration::from_secs(420),
            now,
            plan.limits.max_value_chars,
        );
        let _ = writeln!(out, "{}", status.to_wire());
    }
    1
}
