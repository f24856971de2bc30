//! The rule engine: one `[[test]]` with a topic filter and `[[test.value]]`s makes a Xymon test per
//! captured host, with thresholds, staleness and expected hosts, from config alone.
//!
//! Pure (no tasks, no I/O); times are parameters. A `Rule` is compiled once from its `TestConfig` by
//! `plan::Plan::compile` (`compile`); the collector owns each rule's `RuleState` and feeds it the samples
//! whose topic matches the filter (`RuleState::admit` for a new topic, `RuleState::update`), and its sweep
//! timer re-evaluates the instances; a status is built (by `status::rule_status` from
//! `Instance::evaluate`) only when `Instance::colour_now` says one is due. The CLI's `explain` runs the
//! same code on one message with fresh state (`RuleState::offer`).
//!
//! - `compile`: `TestConfig` → `Rule`, every problem named by its key.
//! - `extract`: plain numbers, JSONPath (RFC 9535, `serde_json_path`), string maps.
//! - `scan`: the values of simple paths (`$.a.b`) read in one pass over a payload, without the document.
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
//!   by the caller), never sent. So is a reserved column (`names::RESERVED_COLUMNS`) and a test name the
//!   rule's `tests` list does not name. Whether a new instance's host.test belongs to another test is the
//!   collector's question (`RuleState::offer_owned` asks it), as only it knows every test.
//! - Bounds: `max_instances` tests and `max_topics` concrete topics per rule (default 10,000 each).
//!   Instances are never dropped once created (a sensor that went silent must show as stale), so the caps
//!   are what keeps memory bounded.
//! - A retained replay without a sensor timestamp updates the value shown but does not step the
//!   hits/hysteresis state: it is not a new measurement.

mod compile;
pub mod extract;
mod instance;
pub mod path;
pub mod scan;
pub mod staleness;
mod state;
pub mod threshold;

pub use compile::RuleError;
pub use instance::{sensor_time, Instance, TopicState, ValueLine, ValueState};
pub use state::{Claim, InstanceId, Instances, Matched, Numbers, Offered, RuleState};

use crate::colour::Colour;
use crate::filter::{Captures, Template, TopicFilter};
use crate::names::{HostName, TestName};
use crate::text::short;
use extract::Extractor;
use scan::SimplePaths;
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
    /// Every JSONPath of the rule (values and `timestamp`) when all are chains of member names: then each
    /// payload is read in one pass, without building the document.
    pub simple_paths: Option<SimplePaths>,
    /// `timestamp`'s slot in `simple_paths`.
    timestamp_slot: Option<usize>,
    pub expect: Vec<HostName>,
    pub max_instances: usize,
    pub max_topics: usize,
    pub interval: Duration,
    pub lifetime: Duration,
    /// The subscription QoS of the filter.
    pub qos: rumqttc::QoS,
    /// The test names a `{capture}` in `test` may produce; empty: any valid, unreserved name.
    pub tests: Vec<TestName>,
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
        if test.is_reserved() {
            return Err(Skip::ReservedColumn(test.to_string()));
        }
        if !self.tests.is_empty() && !self.tests.contains(&test) {
            return Err(Skip::TestNotListed(test.to_string()));
        }
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
    /// The derived test is one of `names::RESERVED_COLUMNS`.
    ReservedColumn(String),
    /// The derived test is not in the rule's `tests` list.
    TestNotListed(String),
    /// The derived host.test is a configured test's (or a rule's literal host.test).
    ConfiguredColumn(String),
    /// The derived host.test is an instance another rule made first.
    OtherRuleColumn(String),
}

impl Skip {
    /// The `dropped{reason}` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::BadHost(..) => "rule_invalid_host",
            Skip::BadTest(..) => "rule_invalid_test",
            Skip::MaxInstances(_) => "rule_max_instances",
            Skip::MaxTopics(_) => "rule_max_topics",
            Skip::ReservedColumn(_) => "rule_reserved_column",
            Skip::TestNotListed(_) => "rule_test_not_listed",
            Skip::ConfiguredColumn(_) => "rule_configured_column",
            Skip::OtherRuleColumn(_) => "rule_other_rule_column",
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
            Skip::ReservedColumn(t) => write!(
                f,
                "derived test {t:?} is a reserved column (xymond's own or the bridge's)"
            ),
            Skip::TestNotListed(t) => {
                write!(f, "derived test {t:?} is not in the rule's `tests` list")
            }
            Skip::ConfiguredColumn(c) => {
                write!(f, "derived column {c} belongs to a configured test")
            }
            Skip::OtherRuleColumn(c) => write!(f, "derived column {c} belongs to another rule"),
        }
    }
}

#[cfg(test)]
mod tests;
