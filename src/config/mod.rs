//! The TOML configuration: schema, defaults, loading and validation. The schema (the tables' structs,
//! enums and defaults) is in `schema`, re-exported here; this file loads and validates it.
//!
//! Fed by the CLI (the file named by `--config`); read once by `plan::Plan::compile`, which resolves
//! and compiles it for the stages. Every error names the file, the line and the key (`ConfigError`),
//! because the person reading it is an administrator with an editor open, not a developer with a
//! debugger; the plan's own errors (a rule that does not compile, an unreadable password file) are
//! located through `Config::error_at` the same way.

mod broker_url;
mod discovery;
mod duration;
mod error;
mod ownership;
mod schema;
mod self_status;
mod templates;

pub use broker_url::BrokerUrl;
pub use discovery::{DiscoveryConfig, DiscoveryThreshold};
pub use error::ConfigError;
pub use schema::{
    BrokerConfig, ColourName, LimitsConfig, Mode, Protocol, TestConfig, TestKind, ValueConfig,
    WebConfig, XymonConfig, BROKER_STATS_TOPICS, DEFAULT_INTERVAL, DEFAULT_MAX_INSTANCES,
    DEFAULT_RULE_INTERVAL,
};
pub use self_status::SelfStatusConfig;

use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The commented example shipped in the repository; `xymon-mqtt print-example-config` prints it and a test
/// parses it, so it cannot drift from the schema.
pub const EXAMPLE: &str = include_str!("../../xymon-mqtt.example.toml");

/// Most `[web] max_connections`: far above what a dashboard needs, and within what tokio's semaphore
/// takes (it panics above `usize::MAX >> 3`).
const MAX_WEB_CONNECTIONS: usize = 65_536;

/// Least `[limits] store_bytes`: below a megabyte the store would evict what a small site needs.
const MIN_STORE_BYTES: usize = 1 << 20;
/// Least `[limits] max_packet_bytes`: a CONNACK and a SUBACK of `mqtt::SUBSCRIBE_CHUNK` filters fit.
const MIN_PACKET_BYTES: usize = 1024;
/// MQTT's largest packet: 256 MiB of remaining length and a 5-byte fixed header.
pub const MAX_PACKET_BYTES: usize = 268_435_460;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file and text this config was read from, for errors found after parsing.
    #[serde(skip)]
    pub origin: Origin,
    #[serde(default)]
    pub xymon: XymonConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default, rename = "broker")]
    pub brokers: Vec<Spanned<BrokerConfig>>,
    #[serde(default, rename = "test")]
    pub tests: Vec<Spanned<TestConfig>>,
    #[serde(default, rename = "discovery")]
    pub discovery: Vec<Spanned<DiscoveryConfig>>,
    #[serde(default)]
    pub self_status: SelfStatusConfig,
}

/// Where a config came from: its file name and its text, so that a problem found later (by the plan)
/// names the file, the line and the key like a parse error does.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
        Config::from_str_named(&text, path)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn from_str_named(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| ConfigError::from_toml(path, text, String::new(), e))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            // Spanned<T> shows up as a private segment in the path; it means nothing to a reader.
            let key = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
            ConfigError::from_toml(path, text, key, e.into_inner())
        })?;
        // `topic = ...` makes a rule test; `kind` need not say so.
        for t in &mut config.tests {
            let tc = t.get_mut();
            if tc.topic.is_some() && tc.kind == TestKind::Topics && tc.topics.is_empty() {
                tc.kind = TestKind::Rule;
            }
        }
        config.validate(path, text)?;
        config.origin = Origin {
            path: path.to_path_buf(),
            text: Arc::from(text),
        };
        Ok(config)
    }

    /// An error about the table at `span` (a `[[broker]]`, `[[test]]` or `[[discovery]]`, by its
    /// `Spanned` span), at the line of `key` inside it. For a key under a test's `[[test.value]]`
    /// (`value[J].name`) or a `[[discovery.threshold]]` (`threshold[J].red`), the line is found in the
    /// J-th such table after the header.
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: String,
    ) -> ConfigError {
        let text = &self.origin.text;
        // Keys of sub-tables (`value[J].name`, `threshold[J].red`): the J-th such table after the header.
        let span = SUB_TABLES
            .iter()
            .find_map(|&(prefix, parent, child)| {
                let (j, _) = key.split_once(prefix)?.1.split_once(']')?;
                sub_table_span(text, span.start, parent, child, j.parse().unwrap_or(0))
            })
            .unwrap_or(span);
        ConfigError::at_key(&self.origin.path, text, span, key.to_string(), message)
    }

    /// An error about a key of a top-level table (`web.token_file`), at the line that sets it.
    pub fn error_at_line(&self, key: &str, message: String) -> ConfigError {
        ConfigError::at_line(&self.origin.path, &self.origin.text, key, message)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let err = |span: std::ops::Range<usize>, key: String, msg: String| {
            ConfigError::at_key(path, text, span, key, msg)
        };
        if self.xymon.combo_max == 0 || self.xymon.combo_max > 100 {
            return Err(ConfigError::at_line(
                path,
                text,
                "xymon.combo_max",
                "must be 1 to 100 (xymond's MAXMSGSPERCOMBO)".into(),
            ));
        }
        if self.web.header_timeout.is_zero() {
            return Err(ConfigError::at_line(
                path,
                text,
                "web.header_timeout",
                "must be longer than 0".into(),
            ));
        }
        if !(1..=MAX_WEB_CONNECTIONS).contains(&self.web.max_connections) {
            return Err(ConfigError::at_line(
                path,
                text,
                "web.max_connections",
                format!("must be at least 1 and at most {MAX_WEB_CONNECTIONS}"),
            ));
        }
        if self.limits.store_bytes < MIN_STORE_BYTES {
            return Err(ConfigError::at_line(
                path,
                text,
                "limits.store_bytes",
                format!("must be at least {MIN_STORE_BYTES} (1 MiB)"),
            ));
        }
        if !(MIN_PACKET_BYTES..=MAX_PACKET_BYTES).contains(&self.limits.max_packet_bytes) {
            return Err(ConfigError::at_line(
                path,
                text,
                "limits.max_packet_bytes",
                format!("must be {MIN_PACKET_BYTES} to {MAX_PACKET_BYTES} (MQTT's largest packet)"),
            ));
        }
        let mut names = HashSet::new();
        for (i, b) in self.brokers.iter().enumerate() {
            let key = |k: &str| format!("broker[{i}].{k}");
            if !names.insert(b.get_ref().name.as_str()) {
                return Err(err(
                    b.span(),
                    key("name"),
                    format!("broker name {:?} is used twice", b.get_ref().name),
                ));
            }
            if let Some((k, message)) = broker_problem(b.get_ref()) {
                return Err(err(b.span(), key(k), message));
            }
        }
        let mut columns = HashSet::new();
        for (i, t) in self.tests.iter().enumerate() {
            let key = |k: &str| format!("test[{i}].{k}");
            let tc = t.get_ref();
            if !names.contains(tc.broker.as_str()) {
                return Err(err(
                    t.span(),
                    key("broker"),
                    format!("no [[broker]] is named {:?}", tc.broker),
                ));
            }
            if tc.kind != TestKind::Rule {
                if tc.host.as_str().contains('{') || tc.test.as_str().contains('{') {
                    return Err(err(
                        t.span(),
                        key(if tc.host.as_str().contains('{') {
                            "host"
                        } else {
                            "test"
                        }),
                        "`{capture}` is only allowed in a rule test (one with `topic = ...`)"
                            .into(),
                    ));
                }
                let rule_only = [
                    ("topic", tc.topic.is_some()),
                    ("value", !tc.values.is_empty()),
                    ("expect", !tc.expect.is_empty()),
                    ("expire_after", tc.expire_after.is_some()),
                    ("timestamp_path", tc.timestamp_path.is_some()),
                    ("tests", !tc.tests.is_empty()),
                ];
                if let Some((k, _)) = rule_only.iter().find(|(_, set)| *set) {
                    return Err(err(
                        t.span(),
                        key(k),
                        format!(
                            "`{k}` belongs to rule tests (`topic = ...`), not to kind {:?}",
                            tc.kind
                        ),
                    ));
                }
            }
            if !columns.insert((tc.host.clone(), tc.test.clone())) {
                return Err(err(
                    t.span(),
                    key("test"),
                    format!("{}.{} is defined twice", tc.host, tc.test),
                ));
            }
            if let Some((k, msg)) = ownership::test_names(tc) {
                return Err(err(t.span(), key(k), msg));
            }
            if let Some((k, filter)) = shared_subscription(tc) {
                return Err(err(
                    t.span(),
                    key(&k),
                    format!(
                        "{filter:?} is a shared subscription; those are not supported: the broker would \
                         spread a test's topics over several bridges, and a test's topics must meet in one"
                    ),
                ));
            }
            if tc.qos > 2 {
                return Err(err(t.span(), key("qos"), "must be 0, 1 or 2".into()));
            }
            if tc.window.is_zero() {
                return Err(err(t.span(), key("window"), "must be longer than 0".into()));
            }
            match tc.kind {
                TestKind::Topics if tc.topics.is_empty() => {
                    return Err(err(
                        t.span(),
                        key("topics"),
                        "list at least one topic".into(),
                    ))
                }
                TestKind::BrokerStats if !tc.topics.is_empty() => {
                    return Err(err(
                        t.span(),
                        key("topics"),
                        "broker-stats reads the fixed $SYS topics; remove `topics`".into(),
                    ))
                }
                _ if tc.outage_colour.is_some() && tc.mode() == Mode::Periodic => {
                    return Err(err(
                        t.span(),
                        key("outage_colour"),
                        "applies to continuous and rule tests; a periodic test reports an unreachable broker in its own status".into(),
                    ))
                }
                TestKind::BrokerStats if tc.mode == Some(Mode::Continuous) => {
                    return Err(err(
                        t.span(),
                        key("mode"),
                        "broker-stats is always periodic".into(),
                    ))
                }
                _ => {}
            }
            let unique: HashSet<_> = tc.topics.iter().collect();
            if unique.len() != tc.topics.len() {
                return Err(err(
                    t.span(),
                    key("topics"),
                    "a topic is listed twice".into(),
                ));
            }
            if tc.mode() == Mode::Periodic {
                let interval = tc.interval();
                if interval < Duration::from_secs(2) {
                    return Err(err(t.span(), key("interval"), "must be at least 2s".into()));
                }
                if tc.window >= interval {
                    return Err(err(
                        t.span(),
                        key("window"),
                        "must be shorter than `interval`".into(),
                    ));
                }
            }
        }
        if let Some((i, msg)) = ownership::expected_hosts(&self.tests, &columns) {
            return Err(err(self.tests[i].span(), format!("test[{i}].expect"), msg));
        }
        self_status::validate(self, path, text)
    }
}

/// The first problem of one `[[broker]]`'s keys: the key and the message.
fn broker_problem(b: &BrokerConfig) -> Option<(&'static str, String)> {
    // MQTT sends it as 16-bit seconds (rumqttc would cut a longer one with `as u16`).
    if b.keep_alive < Duration::from_secs(1) || b.keep_alive > Duration::from_secs(65_535) {
        return Some((
            "keep_alive",
            "must be at least 1s and at most 65535s (MQTT's 16-bit field)".into(),
        ));
    }
    // rumqttc's MQTT 5 client panics on a shorter one.
    if b.protocol == Protocol::V5 && b.keep_alive < Duration::from_secs(5) {
        return Some((
            "keep_alive",
            "must be at least 5s with protocol = \"5\" (the MQTT client's minimum)".into(),
        ));
    }
    let tls_keys = [
        ("ca_file", b.ca_file.is_some()),
        ("client_cert_file", b.client_cert_file.is_some()),
        ("client_key_file", b.client_key_file.is_some()),
    ];
    if !b.url.tls() {
        if let Some((k, _)) = tls_keys.iter().find(|(_, set)| *set) {
            return Some((
                k,
                format!("`{k}` is for TLS connections; use an mqtts:// url"),
            ));
        }
    }
    match (&b.client_cert_file, &b.client_key_file) {
        (Some(_), None) => {
            return Some((
                "client_key_file",
                "`client_cert_file` needs its private key in `client_key_file`".into(),
            ))
        }
        (None, Some(_)) => {
            return Some((
                "client_cert_file",
                "`client_key_file` needs its certificate in `client_cert_file`".into(),
            ))
        }
        _ => {}
    }
    if b.protocol == Protocol::V311 && b.password_file.is_some() && b.username.is_none() {
        return Some((
            "password_file",
            "MQTT 3.1.1 sends a password only with a user name: set `username`, or use protocol = \"5\""
                .into(),
        ));
    }
    if b.client_id.as_deref() == Some("") {
        return Some((
            "client_id",
            "must not be empty (leave it out for the default)".into(),
        ));
    }
    None
}

/// A `$share/...` filter among a test's topics: the key and the filter.
fn shared_subscription(tc: &TestConfig) -> Option<(String, &str)> {
    let shared = |t: &str| t.starts_with("$share/");
    if let Some(f) = tc.topic.as_deref().filter(|f| shared(f)) {
        return Some(("topic".into(), f));
    }
    tc.topics
        .iter()
        .position(|t| shared(t))
        .map(|i| (format!("topics[{i}]"), &*tc.topics[i]))
}

/// Byte range of the `j`-th `[[test.value]]` table after `from` (the header of its `[[test]]`).
/// Keys inside arrays of sub-tables: (key prefix, parent header, sub-table header).
const SUB_TABLES: [(&str, &str, &str); 2] = [
    ("value[", "[[test]]", "[[test.value]]"),
    ("threshold[", "[[discovery]]", "[[discovery.threshold]]"),
];

fn sub_table_span(
    text: &str,
    from: usize,
    parent: &str,
    child: &str,
    j: usize,
) -> Option<std::ops::Range<usize>> {
    let mut offset = from.min(text.len());
    let mut seen = 0;
    for (i, line) in text[offset..].split_inclusive('\n').enumerate() {
        let l = line.trim();
        if i > 0 && l.starts_with(parent) {
            return None;
        }
        if l.starts_with(child) {
            if seen == j {
                return Some(offset..offset + line.len());
            }
            seen += 1;
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
