//! The status of one rule instance (a value per line, each with its colour and reason), and of a host
//! a rule expects that has never published.

use super::{safe_topic, timestamp, INDENT};
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use crate::rules::{Instance, Rule, ValueLine};
use crate::text::untrusted;
use crate::xymon::Status;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Status of one rule instance: one line per value with its colour icon, value, unit and the
/// reason for its colour; the status colour is the worst. `lines` come from `Instance::evaluate`; every
/// untrusted string (topic, payload text, mapped text) is sanitised here. Pure, `now` included.
pub fn rule_status(
    rule: &Rule,
    inst: &Instance,
    lines: &[ValueLine],
    now: SystemTime,
    max_value_chars: usize,
) -> Status {
    let colour = Instance::colour(lines);
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
    for ts in &inst.topics {
        let topic = &ts.name;
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
    rule: &Rule,
    host: &HostName,
    test: &TestName,
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
