//! The `[[discovery]]` table: Home Assistant MQTT discovery on one broker, and its
//! `[[discovery.threshold]]`s.
//!
//! Deserialized with the rest of `Config`; compiled by `discovery::compile` (called by the plan), which
//! checks the globs, host names, columns and thresholds and names the key of any problem.

use super::ColourName;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The `[[broker]]` whose announcements are read.
    pub broker: String,
    /// The discovery prefix (Home Assistant's default `homeassistant`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The components taken: `sensor`, `binary_sensor`.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Globs on the device name, any identifier or connection value, or the node id; empty: every device.
    #[serde(default)]
    pub include: Vec<String>,
    /// As `include`; a device matching one is left out even when included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The Xymon host of a device: `{device}` (its name made a valid host name), `{node_id}`, `{id}`
    /// (its first identifier), or fixed text.
    #[serde(default = "default_host")]
    pub host: String,
    /// Device identifiers or names mapped to hosts.cfg names; checked before `host`.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// The column of an entity: fixed (`sensors`), or `{device_class}` (the entity's class; an entity
    /// without one goes to its component's name).
    #[serde(default = "default_column")]
    pub column: String,
    /// The colour of a device's columns after it said offline (default red).
    pub offline_colour: Option<ColourName>,
    /// The colour of a value older than its `expire_after` (default yellow).
    pub stale_colour: Option<ColourName>,
    /// The colour of a value whose template failed (default yellow).
    pub error_colour: Option<ColourName>,
    /// binary_sensor: the colour of "on" per device_class; "off" is green. Classes not named use the
    /// built-in table (red for smoke, gas, moisture, carbon_monoxide, problem, safety; else green).
    #[serde(default)]
    pub on_colour: BTreeMap<String, ColourName>,
    /// Every numeric sensor's value goes to an RRD, `<rrd_dir>/<host>/<column>.<object_id>.rrd`.
    #[serde(default)]
    pub rrd: bool,
    /// As `rrd`, for the sensors of these device_classes only.
    #[serde(default)]
    pub rrd_classes: Vec<String>,
    /// Thresholds by device_class, device and entity.
    #[serde(default, rename = "threshold")]
    pub thresholds: Vec<DiscoveryThreshold>,
    /// Most entities kept; further announcements are refused and counted (default 10,000).
    pub max_entities: Option<usize>,
    /// Largest config payload read, in bytes (default 16 KiB).
    pub max_config_bytes: Option<usize>,
    /// Instructions one template render may run (minijinja's fuel; default 10,000).
    pub template_fuel: Option<u64>,
}

/// Thresholds for the entities its selectors match (all that are given must match). The most specific
/// entry wins: one naming `entity` over one naming `device` over one naming only `class`; among equals,
/// the first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryThreshold {
    /// The entity's device_class.
    pub class: Option<String>,
    /// Glob on the device name, an identifier or the node id.
    pub device: Option<String>,
    /// Glob on the entity's unique_id, object id or name.
    pub entity: Option<String>,
    pub yellow: Option<String>,
    pub red: Option<String>,
    #[serde(default = "default_hits")]
    pub hits: u32,
    #[serde(default)]
    pub hysteresis: f64,
}

fn default_prefix() -> String {
    "homeassistant".into()
}
fn default_components() -> Vec<String> {
    vec!["sensor".into(), "binary_sensor".into()]
}
fn default_host() -> String {
    "{device}".into()
}
fn default_column() -> String {
    "sensors".into()
}
fn default_hits() -> u32 {
    1
}
