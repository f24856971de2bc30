//! The rule engine: one `[[test]]` with a topic filter and `[[test.value]]`s makes a Xymon test per
//! captured host, with thresholds, staleness and expected hosts, from config alone.
//!
//! Pure (no tasks, no I/O); times are parameters. A `Rule` is compiled once from its `TestConfig` by
//! `plan::Plan::compile` (`compile`); the collector owns each rule's `RuleState` and feeds it the samples
//! whose topic matches the filter (`RuleState::offer`), and its sweep timer re-evaluates the instances;
//! the status text is built by `status::rule_status` from `Instance::evaluate`. The CLI's `explain`
//! runs the same code on one message with fresh state.
//!
//! - `compile`: `TestConfig` → `Rule`, every problem named by its key.
//! - `extract`: plain numbers, JSONPath (RFC 9535, `serde_json_path`), string maps.
//! - `path`: JSONPaths from the config, parsed behind guards against what the parser cannot take.
//! - `threshold`: `> 28`-style conditions, hits and hysteresis.
//! - `staleness`: fresh / stale past `expire_after` / retained of unknown age.
//! - `instance`: one Xymon test made by a rule, its values and how they look now.
//! - `state`: a rule's instances and the topics that feed them.
//!
//! Decisions:
//! - An instance is one (host, test) pair; it may be fed by several concrete topics (with `+` or `#` that
//!   are not in the names), each with its own freshness. Values are listed per topic when there are more.
//! - Derived names are validated with `HostName`/`TestName`; an invalid one is refused (counted and logged
//!   by the caller), never sent.
//! - Bounds: `max_instances` tests and `max_topics` concrete topics per rule (default 10,000 each).
//!   Instances are never dropped once created (a sensor that went silent must show as stale), so the caps
//!   are what keeps memory bounded.
//! - A retained replay without a sensor timestamp updates the value shown but does not step the
//!   hits/hysteresis state: it is not a new measurement.

mod compile;
pub mod extract;
mod instance;
pub mod path;
pub mod staleness;
mod state;
pub mod threshold;

pub use compile::RuleError;
pub use instance::{sensor_time, Instance, TopicState, ValueLine, ValueState};
pub use state::{Offered, RuleState};

use crate::colour::Colour;
use crate::filter::{Captures, Template, TopicFilter};
use crate::names::{HostName, TestName};
use crate::text::short;
use extract::Extractor;
use serde_json_path::JsonPath;
use std::time::Duration;
use threshold::Thresholds;

/// The rrd-defs layout of per-value RRDs (one GAUGE DS named `value`).
pub const VALUE_RRD_DEF: &str = "value";

/// One compiled `[[test.value]]`.
#[derive(Debug, Clone)]
pub struct ValueRule {
    pub name: String,
    pub unit: String,
    pub extractor: Extractor,
    pub thresholds: Thresholds,
    pub rrd: bool,
    pub expire_after: Option<Duration>,
}

/// A compiled rule test.
#[derive(Debug, Clone)]
pub struct Rule {
    pub filter: TopicFilter,
    pub host: Template,
    pub test: Template,
    pub values: Vec<ValueRule>,
    pub stale_colour: Colour,
    pub unparsable_colour: Colour,
    pub timestamp: Option<(JsonPath, String)>,
    pub expect: Vec<HostName>,
    pub max_instances: usize,
    pub max_topics: usize,
    pub interval: Duration,
    pub lifetime: Duration,
    /// The subscription QoS of the filter.
    pub qos: rumqttc::QoS,
    /// The smallest `expire_after` of any value, for the sweep period.
    pub min_expire: Option<Duration>,
}

impl Rule {
    /// How often the collector sweeps this rule for staleness and due re-sends: a quarter of the
    /// shortest of `interval` and `expire_after`, within 1 s … 30 s.
    pub fn sweep_period(&self) -> Duration {
        let base = self
            .min_expire
            .map_or(self.interval, |e| e.min(self.interval));
        (base / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// The names of the instance a matched topic belongs to, or why there is none.
    pub fn names(&self, caps: &Captures) -> Result<(HostName, TestName), Skip> {
        let h = self.host.expand(caps);
        let host = HostName::try_from(h.clone()).map_err(|why| Skip::BadHost(h, why))?;
        let t = self.test.expand(caps);
        let test = TestName::try_from(t.clone()).map_err(|why| Skip::BadTest(t, why))?;
        Ok((host, test))
    }
}

/// Why a matching message made no status.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    BadHost(String, String),
    BadTest(String, String),
    MaxInstances(usize),
    MaxTopics(usize),
}

impl Skip {
    /// The `dropped{reason}` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::BadHost(..) => "rule_invalid_host",
            Skip::BadTest(..) => "rule_invalid_test",
            Skip::MaxInstances(_) => "rule_max_instances",
            Skip::MaxTopics(_) => "rule_max_topics",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::BadHost(h, why) => {
                write!(f, "derived host {:?} is not valid: {why}", short(h, 80))
            }
            Skip::BadTest(t, why) => {
                write!(f, "derived test {:?} is not valid: {why}", short(t, 80))
            }
            Skip::MaxInstances(n) => write!(f, "the rule already has max_instances = {n} tests"),
            Skip::MaxTopics(n) => write!(f, "the rule already tracks max_topics = {n} topics"),
        }
    }
}

#[cfg(test)]
mod tests;
