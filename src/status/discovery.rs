//! The status of one discovered device column: a line per entity with its colour, value, unit,
//! device_class and the reason for its colour, then the device (model, manufacturer, software).
//!
//! Pure. Fed by the discovery sessions (`mqtt::discovery`) with `discovery::ColumnView`s; every string
//! that came over MQTT (names, values, units, classes, device fields, template errors) is sanitised here.

use super::{timestamp, INDENT};
use crate::discovery::ColumnView;
use crate::text::untrusted;
use crate::xymon::Status;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Characters of a device field (model, software version) shown.
const MAX_DEVICE_CHARS: usize = 128;

pub fn discovery_status(
    col: &ColumnView,
    lifetime: Duration,
    now: SystemTime,
    max_value_chars: usize,
) -> Status {
    let safe = |s: &str| untrusted(s, max_value_chars, INDENT);
    let mut body = String::from("\n");
    for e in &col.entities {
        let mut what = safe(&e.name);
        if let Some(c) = &e.device_class {
            let _ = write!(what, " [{}]", safe(c));
        }
        match &e.value {
            Some(v) => {
                let unit = e
                    .unit
                    .as_deref()
                    .map(|u| format!(" {}", safe(u)))
                    .unwrap_or_default();
                let retained = if e.retained { ", retained" } else { "" };
                let _ = writeln!(
                    body,
                    "&{} {what} = {}{unit} ({}{retained})",
                    e.judged.colour,
                    safe(v),
                    safe(&e.judged.reason)
                );
            }
            None => {
                let _ = writeln!(
                    body,
                    "&{} {what}: {}",
                    e.judged.colour,
                    safe(&e.judged.reason)
                );
            }
        }
        if e.template_errors > 0 {
            let _ = writeln!(body, "{INDENT}template errors: {}", e.template_errors);
        }
    }
    let d = &col.device;
    body.push('\n');
    let field = |label: &str, v: Option<&str>, body: &mut String| {
        if let Some(v) = v {
            let _ = writeln!(body, "{label}: {}", untrusted(v, MAX_DEVICE_CHARS, INDENT));
        }
    };
    field("Device", d.name.as_deref(), &mut body);
    field("Model", d.model.as_deref(), &mut body);
    field("Manufacturer", d.manufacturer.as_deref(), &mut body);
    field("Software", d.sw_version.as_deref(), &mut body);
    if !d.identifiers.is_empty() {
        let ids: Vec<String> = d
            .identifiers
            .iter()
            .take(4)
            .map(|i| untrusted(i, MAX_DEVICE_CHARS, INDENT))
            .collect();
        let _ = writeln!(body, "Identifiers: {}", ids.join(", "));
    }
    let n = col.entities.len();
    Status {
        host: col.host.clone(),
        test: col.column.clone(),
        colour: col.colour,
        lifetime,
        summary: format!(
            "{} - {n} {} discovered, {}",
            timestamp(now),
            if n == 1 { "entity" } else { "entities" },
            col.colour
        ),
        body,
    }
}
