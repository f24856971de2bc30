//! Test fixtures: configs that the unit tests of several modules (status, web) share.

use super::{Config, TestConfig};
use std::path::Path;

/// A `topics` test (greenhouse.env, two topics) and a `broker-stats` test (mqtt-broker.mqtt), one broker.
pub(crate) const TOPICS_AND_BROKER_STATS: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
host = "greenhouse"
test = "env"
broker = "local"
topics = ["sensors/greenhouse/temperature", "sensors/greenhouse/humidity"]

[[test]]
host = "mqtt-broker"
test = "mqtt"
broker = "local"
kind = "broker-stats"
"#;

/// `text` parsed as the file `t.toml`; panics on a bad fixture.
pub(crate) fn config(text: &str) -> Config {
    Config::from_str_named(text, Path::new("t.toml")).expect("fixture config")
}

/// The tests of `text`, in config order.
pub(crate) fn tests(text: &str) -> Vec<TestConfig> {
    config(text)
        .tests
        .into_iter()
        .map(|t| t.into_inner())
        .collect()
}
