//! `[self_status]`: the bridge's own Xymon column (its health as a status) and the ghost check.
//!
//! Deserialized with the rest of the config; validated by `Config::validate` (`problem`); resolved by
//! `plan::Plan::compile` (the default host is the machine's name as Xymon knows it) and read by the
//! supervisor's own-status task.

use super::{duration, Config, ConfigError};
use crate::names::{HostName, TestName, BRIDGE_COLUMN};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Least `interval`: the status is built from counters, and more than one a second is noise.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfStatusConfig {
    /// Send the bridge's own status at all.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The host of the column; default: this machine's name as Xymon knows it (`MACHINEDOTS`).
    pub host: Option<HostName>,
    /// The column; default `xymon-mqtt`.
    #[serde(default = "default_column")]
    pub column: TestName,
    /// How often the status is sent.
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// How long a broker may stay disconnected before the column turns red.
    #[serde(default = "default_grace", with = "duration")]
    pub disconnect_grace: Duration,
    /// How often xymond is asked for its `ghostlist` (hosts it dropped, not being in hosts.cfg).
    #[serde(default = "default_ghost_interval", with = "duration")]
    pub ghost_interval: Duration,
}

impl Default for SelfStatusConfig {
    fn default() -> Self {
        SelfStatusConfig {
            enabled: default_enabled(),
            host: None,
            column: default_column(),
            interval: default_interval(),
            disconnect_grace: default_grace(),
            ghost_interval: default_ghost_interval(),
        }
    }
}

impl SelfStatusConfig {
    /// The first problem of the table: its key and the message.
    pub(super) fn problem(&self) -> Option<(&'static str, String)> {
        if self.interval < MIN_INTERVAL {
            return Some(("interval", "must be at least 1s".into()));
        }
        if self.ghost_interval < MIN_INTERVAL {
            return Some(("ghost_interval", "must be at least 1s".into()));
        }
        if self.column.is_reserved() && self.column.as_str() != BRIDGE_COLUMN {
            return Some((
                "column",
                format!("{:?} is one of xymond's own columns", self.column.as_str()),
            ));
        }
        None
    }

    /// A configured test that writes the (renamed) column on the column's host: its index.
    pub(super) fn taken_by(&self, tests: &[(&HostName, &TestName)]) -> Option<usize> {
        let host = self.host.as_ref()?;
        tests
            .iter()
            .position(|(h, t)| h.as_str().eq_ignore_ascii_case(host.as_str()) && *t == &self.column)
    }
}

/// Checks `[self_status]` of a parsed config; `path` and `text` locate the problem.
pub(super) fn validate(config: &Config, path: &Path, text: &str) -> Result<(), ConfigError> {
    let s = &config.self_status;
    if let Some((k, message)) = s.problem() {
        return Err(ConfigError::at_line(
            path,
            text,
            &format!("self_status.{k}"),
            message,
        ));
    }
    let literal: Vec<_> = config
        .tests
        .iter()
        .map(|t| (&t.get_ref().host, &t.get_ref().test))
        .collect();
    if let Some(i) = s.taken_by(&literal) {
        return Err(ConfigError::at_line(
            path,
            text,
            "self_status.column",
            format!(
                "{}.{} is the bridge's own column, but test[{i}] writes it too",
                literal[i].0, s.column
            ),
        ));
    }
    Ok(())
}

fn default_enabled() -> bool {
    true
}

fn default_column() -> TestName {
    // A constant, not input: `default_column_is_the_bridge_column` checks it.
    TestName::try_from(BRIDGE_COLUMN.to_string()).expect("BRIDGE_COLUMN is a valid test name")
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_grace() -> Duration {
    Duration::from_secs(120)
}

fn default_ghost_interval() -> Duration {
    Duration::from_secs(20)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{config, TOPICS_AND_BROKER_STATS};
    use super::super::Config;
    use std::path::Path;
    use std::time::Duration;

    fn error(text: &str) -> String {
        Config::from_str_named(text, Path::new("t.toml"))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn default_column_is_the_bridge_column() {
        let c = config(TOPICS_AND_BROKER_STATS);
        let s = &c.self_status;
        assert!(s.enabled);
        assert_eq!(s.column.as_str(), crate::names::BRIDGE_COLUMN);
        assert_eq!(s.host, None);
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.disconnect_grace, Duration::from_secs(120));
        assert_eq!(s.ghost_interval, Duration::from_secs(20));
    }

    #[test]
    fn every_key_is_read() {
        let c = config(&format!(
            "[self_status]\nhost = \"xymon.example.com\"\ncolumn = \"bridge\"\ninterval = \"30s\"\n\
             disconnect_grace = \"5m\"\nghost_interval = \"15s\"\n{TOPICS_AND_BROKER_STATS}"
        ));
        let s = &c.self_status;
        assert_eq!(
            s.host.as_ref().map(|h| h.as_str()),
            Some("xymon.example.com")
        );
        assert_eq!(s.column.as_str(), "bridge");
        assert_eq!(s.interval, Duration::from_secs(30));
        assert_eq!(s.disconnect_grace, Duration::from_secs(300));
        assert_eq!(s.ghost_interval, Duration::from_secs(15));
        let off = config("[self_status]\nenabled = false\n");
        assert!(!off.self_status.enabled);
    }

    #[test]
    fn problems_name_file_line_and_key() {
        // `interval` is also a key of tests: the line found is the one in [self_status].
        let text = format!(
            "{TOPICS_AND_BROKER_STATS}interval = \"5m\"\n\n[self_status]\ninterval = \"0s\"\n"
        );
        let e = error(&text);
        let line = text.lines().position(|l| l == "interval = \"0s\"").unwrap() + 1;
        assert!(
            e.starts_with(&format!(
                "t.toml:{line}:1: key `self_status.interval`: must be at least 1s"
            )),
            "{e}"
        );
        let e = error("[self_status]\nghost_interval = \"500ms\"\n");
        assert!(
            e.contains("key `self_status.ghost_interval`: must be at least 1s"),
            "{e}"
        );
        let e = error("[self_status]\ncolumn = \"info\"\n");
        assert!(
            e.contains("key `self_status.column`: \"info\" is one of xymond's own columns"),
            "{e}"
        );
        let e = error("[self_status]\ncolumn = \"Bad.Name\"\n");
        assert!(e.contains("self_status.column"), "{e}");
        let e = error("[self_status]\nhost = \"bad host\"\n");
        assert!(e.contains("self_status.host"), "{e}");
        let e = error("[self_status]\ncolour = \"red\"\n");
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn a_renamed_column_must_not_be_a_configured_test() {
        let e = error(&format!(
            "[self_status]\nhost = \"Greenhouse\"\ncolumn = \"env\"\n{TOPICS_AND_BROKER_STATS}"
        ));
        assert!(
            e.contains("key `self_status.column`: greenhouse.env is the bridge's own column, but test[0] writes it too"),
            "{e}"
        );
    }
}
