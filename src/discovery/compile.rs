//! `[[discovery]]` → `DiscoveryPlan`: every glob, host, column, colour and threshold checked once, each
//! problem named by its key (relative to the `[[discovery]]` table; the plan adds the file and line).

use super::announce::AnnounceLimits;
use super::judge::{Policy, ThresholdRule};
use super::select::{Column, Selector};
use super::{Component, DiscoveryPlan, RrdChoice};
use crate::colour::Colour;
use crate::config::{DiscoveryConfig, DiscoveryThreshold};
use crate::names::{HostName, TestName};
use crate::rules::threshold::{Cond, Thresholds};
use glob::Pattern;

/// Most `max_entities`: a bound that still fits the bridge's memory budget.
const MAX_ENTITIES: usize = 1_000_000;
/// Largest config payload a block may allow.
const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Most template fuel: a render stays well under a millisecond.
const MAX_FUEL: u64 = 1_000_000;
/// Bytes a template may output: a value is short.
const MAX_TEMPLATE_OUTPUT: usize = 4096;

/// A problem in one `[[discovery]]`, by key (`threshold[1].red`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct DiscoveryError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> DiscoveryError {
    DiscoveryError {
        key: key.into(),
        message: message.into(),
    }
}

fn globs(list: &[String], key: &str) -> Result<Vec<Pattern>, DiscoveryError> {
    list.iter()
        .enumerate()
        .map(|(i, g)| {
            Pattern::new(g)
                .map_err(|e| err(format!("{key}[{i}]"), format!("{g:?} is not a glob: {e}")))
        })
        .collect()
}

fn threshold(i: usize, t: &DiscoveryThreshold) -> Result<ThresholdRule, DiscoveryError> {
    let key = |k: &str| format!("threshold[{i}].{k}");
    let cond = |k: &str, v: &Option<String>| {
        v.as_deref()
            .map(Cond::parse)
            .transpose()
            .map_err(|m| err(key(k), m))
    };
    let glob = |k: &str, v: &Option<String>| {
        v.as_deref()
            .map(Pattern::new)
            .transpose()
            .map_err(|e| err(key(k), format!("not a glob: {e}")))
    };
    if t.class.is_none() && t.device.is_none() && t.entity.is_none() {
        return Err(err(key("class"), "name a class, a device or an entity"));
    }
    if t.yellow.is_none() && t.red.is_none() {
        return Err(err(key("yellow"), "give `yellow`, `red` or both"));
    }
    if !t.hysteresis.is_finite() || t.hysteresis < 0.0 {
        return Err(err(key("hysteresis"), "must be a finite number ≥ 0"));
    }
    if t.hits == 0 || t.hits > 1000 {
        return Err(err(key("hits"), "must be 1 to 1000"));
    }
    Ok(ThresholdRule {
        class: t.class.clone(),
        device: glob("device", &t.device)?,
        entity: glob("entity", &t.entity)?,
        thresholds: Thresholds {
            yellow: cond("yellow", &t.yellow)?,
            red: cond("red", &t.red)?,
            hits: t.hits,
            hysteresis: t.hysteresis,
        },
    })
}

/// Compiles one `[[discovery]]` table.
pub fn compile(c: &DiscoveryConfig) -> Result<DiscoveryPlan, DiscoveryError> {
    let prefix = c.prefix.trim_end_matches('/').to_string();
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
        return Err(err("prefix", "must be a topic prefix without wildcards"));
    }
    let mut components = Vec::new();
    for (i, name) in c.components.iter().enumerate() {
        let comp = Component::parse(name).ok_or_else(|| {
            err(
                format!("components[{i}]"),
                format!("{name:?}: only sensor and binary_sensor are read"),
            )
        })?;
        if !components.contains(&comp) {
            components.push(comp);
        }
    }
    if components.is_empty() {
        return Err(err("components", "name at least one component"));
    }
    let sample = c
        .host
        .replace("{device}", "d")
        .replace("{node_id}", "n")
        .replace("{id}", "i");
    HostName::try_from(sample).map_err(|m| err("host", format!("{:?}: {m}", c.host)))?;
    let mut hosts = std::collections::BTreeMap::new();
    for (k, v) in &c.hosts {
        let h = HostName::try_from(v.clone()).map_err(|m| err(format!("hosts.{k}"), m))?;
        hosts.insert(k.clone(), h);
    }
    let column = if c.column == "{device_class}" {
        Column::ByClass
    } else {
        let t = TestName::try_from(c.column.clone())
            .map_err(|m| err("column", format!("{m}; or write \"{{device_class}}\"")))?;
        if t.is_reserved() {
            return Err(err("column", format!("{t} is a reserved column")));
        }
        Column::Fixed(t)
    };
    let thresholds = c
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| threshold(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let max_entities = c.max_entities.unwrap_or(10_000);
    if max_entities == 0 || max_entities > MAX_ENTITIES {
        return Err(err("max_entities", format!("must be 1 to {MAX_ENTITIES}")));
    }
    let defaults = AnnounceLimits::default();
    let max_config_bytes = c.max_config_bytes.unwrap_or(defaults.max_config_bytes);
    if !(256..=MAX_CONFIG_BYTES).contains(&max_config_bytes) {
        return Err(err(
            "max_config_bytes",
            format!("must be 256 to {MAX_CONFIG_BYTES}"),
        ));
    }
    let template_fuel = c.template_fuel.unwrap_or(10_000);
    if !(100..=MAX_FUEL).contains(&template_fuel) {
        return Err(err("template_fuel", format!("must be 100 to {MAX_FUEL}")));
    }
    let colour = |v: Option<crate::config::ColourName>, d: Colour| v.map_or(d, Colour::from);
    Ok(DiscoveryPlan {
        broker: c.broker.clone(),
        prefix,
        components,
        selector: Selector {
            include: globs(&c.include, "include")?,
            exclude: globs(&c.exclude, "exclude")?,
            host: c.host.clone(),
            hosts,
            column,
        },
        policy: Policy {
            thresholds,
            on_colour: c
                .on_colour
                .iter()
                .map(|(k, v)| (k.clone(), Colour::from(*v)))
                .collect(),
            offline: colour(c.offline_colour, Colour::Red),
            stale: colour(c.stale_colour, Colour::Yellow),
            error: colour(c.error_colour, Colour::Yellow),
        },
        limits: AnnounceLimits {
            max_config_bytes,
            ..defaults
        },
        max_entities,
        template_fuel,
        max_template_output: MAX_TEMPLATE_OUTPUT,
        rrd: RrdChoice {
            all: c.rrd,
            classes: c.rrd_classes.clone(),
        },
    })
}
