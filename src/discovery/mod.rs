//! Home Assistant MQTT discovery: devices that announce themselves (ESPHome, Zigbee2MQTT, Tasmota) become
//! Xymon columns without a `[[test]]` per device layout.
//!
//! Pure (no tasks, no I/O); times are parameters. A `[[discovery]]` table is compiled once by the plan
//! (`compile`, errors named by key); the session that reads the broker owns a `DiscoveryState` per block,
//! hands it every message (`DiscoveryState::offer`) and subscribes or unsubscribes the topics it names;
//! the columns are read with `DiscoveryState::columns`. Layered above `rules` because colours reuse the
//! rule engine's thresholds, hits, hysteresis and staleness (`rules::threshold`, `rules::staleness`), and
//! below `plan`, which compiles it.
//!
//! - `abbrev`: HA's abbreviated keys and the `~` base topic.
//! - `announce`: a config topic and payload → an `Entity`, or a reason it is refused.
//! - `template`: `value_template`s with minijinja, compiled once per entity, bounded.
//! - `select`: which devices, which host, which column.
//! - `judge`: thresholds, on/off colours, staleness and availability → a colour and why.
//! - `state`: the entities and devices of one block; messages in.
//! - `view`: the device columns of a state, coloured.
//! - `board`: the latest columns of every block, shared read-only with the dashboard.
//!
//! Where Home Assistant's own behaviour decides a question, each file's docs name the HA code followed.

mod abbrev;
pub mod announce;
mod board;
mod compile;
mod intern;
pub mod judge;
pub mod select;
mod state;
pub mod template;
mod view;

pub use announce::{AnnounceLimits, AvailabilityMode, Device, Entity, EntityKey, Refused};
pub use board::{lock, Board, DeviceView, SharedState};
pub use compile::{compile, DiscoveryError};
pub use state::{DiscoveryState, Offered, Place};
#[cfg(test)]
pub use view::Changes;
pub use view::{ColumnView, Due, EntityView, Why};

use judge::Policy;
use select::Selector;

/// The components read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Sensor,
    BinarySensor,
}

impl Component {
    pub fn parse(s: &str) -> Option<Component> {
        match s {
            "sensor" => Some(Component::Sensor),
            "binary_sensor" => Some(Component::BinarySensor),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Sensor => "sensor",
            Component::BinarySensor => "binary_sensor",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One compiled `[[discovery]]`.
#[derive(Debug, Clone)]
pub struct DiscoveryPlan {
    /// The `[[broker]]` it reads, by name (the plan ties it to the broker's index).
    pub broker: String,
    /// Without a trailing `/`.
    pub prefix: String,
    pub components: Vec<Component>,
    pub selector: Selector,
    pub policy: Policy,
    pub limits: AnnounceLimits,
    pub max_entities: usize,
    pub template_fuel: u64,
    pub max_template_output: usize,
    /// Numeric sensors whose values go to RRDs.
    pub rrd: RrdChoice,
}

/// Which numeric sensors of a block get an RRD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RrdChoice {
    /// Every one.
    pub all: bool,
    /// Those of these device_classes.
    pub classes: Vec<String>,
}

impl RrdChoice {
    pub fn any(&self) -> bool {
        self.all || !self.classes.is_empty()
    }

    /// Whether an entity of `class` gets an RRD.
    pub fn wants(&self, class: Option<&str>) -> bool {
        self.all || class.is_some_and(|c| self.classes.iter().any(|k| k == c))
    }
}

/// The RRD file stem of an entity's values: `<column>.<object_id>`, the `<test>.<value>` naming of rule
/// values (object ids are `[a-zA-Z0-9_-]+`, so the stem is a valid file name and rrdtool DEF path).
pub fn rrd_name(column: &str, key: &EntityKey) -> String {
    format!("{column}.{}", key.object_id)
}

#[cfg(test)]
mod bad_day_tests;
#[cfg(test)]
mod changes_tests;
#[cfg(test)]
mod tests;
