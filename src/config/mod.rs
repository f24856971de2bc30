//! The TOML configuration: schema, defaults, loading and validation.
//!
//! Fed by the CLI (the file named by `--config`); read once by `plan::Plan::compile`, which resolves
//! and compiles it for the stages. Every error names the file, the line and the key (`ConfigError`),
//! because the person reading it is an administrator with an editor open, not a developer with a
//! debugger; the plan's own errors (a rule that does not compile, an unreadable password file) are
//! located through `Config::error_at` the same way.

mod broker_url;
mod duration;
mod error;
mod templates;

pub use broker_url::BrokerUrl;
pub use error::ConfigError;

use crate::names::{HostName, TestName, TopicName};

use crate::colour::Colour;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The commented example shipped in the repository; `xymon-mqtt print-example-config` prints it and a test
/// parses it, so it cannot drift from the schema.
pub const EXAMPLE: &str = include_str!("../../xymon-mqtt.example.toml");

/// Default xymond address: the bridge runs on the Xymon server itself.
const DEFAULT_XYMON_SERVER: &str = "127.0.0.1:1984";
/// Debian's XYMONRRDS.
const DEFAULT_RRD_DIR: &str = "/var/lib/xymon/rrd";
/// Most `[web] max_connections`: far above what a dashboard needs, and within what tokio's semaphore
/// takes (it panics above `usize::MAX >> 3`).
const MAX_WEB_CONNECTIONS: usize = 65_536;
/// Default dashboard address: loopback only, so nothing is exposed until the administrator says so.
const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8585";

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
}

/// Where a config came from: its file name and its text, so that a problem found later (by the plan)
/// names the file, the line and the key like a parse error does.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub path: PathBuf,
    pub text: Arc<str>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XymonConfig {
    /// xymond's address, `host:port`.
    #[serde(default = "default_xymon_server")]
    pub server: String,
    /// Where RRD files are written (`$XYMONRRDS`).
    #[serde(default = "default_rrd_dir")]
    pub rrd_dir: PathBuf,
    /// A directory of RRD layout files (`*.toml`) that replace or extend the built-in `rrd-defs/`.
    pub rrd_defs: Option<PathBuf>,
    /// Connect + write + read timeout for one delivery to xymond.
    #[serde(default = "default_send_timeout", with = "duration")]
    pub timeout: Duration,
    /// Most status messages batched into one `combo` (the stock client's MAXMSGSPERCOMBO).
    #[serde(default = "default_combo_max")]
    pub combo_max: usize,
}

impl Default for XymonConfig {
    fn default() -> Self {
        XymonConfig {
            server: default_xymon_server(),
            rrd_dir: default_rrd_dir(),
            rrd_defs: None,
            timeout: default_send_timeout(),
            combo_max: default_combo_max(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default = "default_web_listen")]
    pub listen: SocketAddr,
    /// Serve the dashboard and the API at all.
    #[serde(default = "default_web_enabled")]
    pub enabled: bool,
    /// A file holding a bearer token (first line); when set, every request must present it.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A client must send a request's headers within this time or its connection is closed, so that slow
    /// or stalled clients (slowloris) cannot hold connections open.
    #[serde(default = "default_header_timeout", with = "duration")]
    pub header_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: default_web_listen(),
            enabled: default_web_enabled(),
            token_file: None,
            header_timeout: default_header_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    256
}

fn default_web_enabled() -> bool {
    true
}

/// Bounds on everything an MQTT publisher controls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest MQTT packet accepted from a broker. MQTT 3.1.1 cannot tell the broker this limit, so a
    /// larger packet makes the client drop that connection (it is logged and the bridge reconnects).
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// Payload bytes kept per topic in the store; the rest is cut off (and the cut is noted).
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Characters of one value shown in a status message.
    #[serde(default = "default_max_value_chars")]
    pub max_value_chars: usize,
    /// Distinct topics kept in the store; new topics past this are counted and not stored.
    #[serde(default = "default_max_topics")]
    pub max_topics: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_packet_bytes: default_max_packet_bytes(),
            max_payload_bytes: default_max_payload_bytes(),
            max_value_chars: default_max_value_chars(),
            max_topics: default_max_topics(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The name tests use in `broker = "..."`.
    pub name: String,
    /// `mqtt://host[:port]` (port defaults to 1883).
    pub url: BrokerUrl,
    pub username: Option<String>,
    /// A file holding the password (first line), so the secret stays out of the config file.
    pub password_file: Option<PathBuf>,
    /// Defaults to `xymon-mqtt-<name>-<pid>`.
    pub client_id: Option<String>,
    #[serde(default = "default_keep_alive", with = "duration")]
    pub keep_alive: Duration,
    /// Cap of the reconnect backoff (it starts at 1 s and doubles).
    #[serde(default = "default_reconnect_max", with = "duration")]
    pub reconnect_max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    /// A fixed list of topics, shown with their values (submqttm.py's generic XymonTest).
    #[default]
    Topics,
    /// submqttm.py's `mqtt` test: the broker's own `$SYS` counters, totals and rates.
    BrokerStats,
    /// A topic filter with captures and `[[test.value]]`s: one Xymon test per captured host.
    /// Chosen automatically when `topic` is set; see `crate::rules`.
    Rule,
}

/// A colour a config may name (purple is xymond's, never ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColourName {
    Clear,
    Green,
    Yellow,
    Red,
}

impl From<ColourName> for Colour {
    fn from(c: ColourName) -> Self {
        match c {
            ColourName::Clear => Colour::Clear,
            ColourName::Green => Colour::Green,
            ColourName::Yellow => Colour::Yellow,
            ColourName::Red => Colour::Red,
        }
    }
}

/// One `[[test.value]]` of a rule test: how to read a number from the payload and colour it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueConfig {
    /// Shown in the status; also the RRD file and graph name (`[a-z0-9_-]`).
    pub name: String,
    /// RFC 9535 JSONPath into a JSON payload; omitted for a plain-number payload.
    pub path: Option<String>,
    #[serde(default)]
    pub unit: String,
    /// String payloads (or JSON strings/booleans) to numbers, e.g. `{ ON = 1, OFF = 0 }`.
    #[serde(default)]
    pub map: std::collections::BTreeMap<String, f64>,
    /// Threshold expressions (`> 28`, `outside 5..35`, …).
    pub yellow: Option<String>,
    pub red: Option<String>,
    /// Consecutive samples that must agree before the colour changes.
    #[serde(default = "default_hits")]
    pub hits: u32,
    /// How far a value must cross back past a threshold to leave its colour.
    #[serde(default)]
    pub hysteresis: f64,
    /// Write `<rrd_dir>/<host>/<test>.<name>.rrd` (GAUGE, rrd-defs/value.toml).
    #[serde(default)]
    pub rrd: bool,
    /// Overrides the test's `expire_after` for this value.
    #[serde(default, with = "duration")]
    pub expire_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every round of publishes makes one status, sent when the round is complete or its window closes.
    Continuous,
    /// Every `interval`, aligned to the wall clock, subscribe briefly and report the retained values.
    Periodic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    /// A rule test may use captures of `topic` here (`{host}`); other tests must not.
    #[serde(deserialize_with = "templates::host_or_template")]
    pub host: HostName,
    #[serde(deserialize_with = "templates::test_or_template")]
    pub test: TestName,
    pub broker: String,
    #[serde(default)]
    pub kind: TestKind,
    /// Defaults to continuous for `topics`, and is always periodic for `broker-stats`.
    pub mode: Option<Mode>,
    /// Periodic: the period. Continuous: how often the sensors publish (only used for the lifetime).
    #[serde(default, with = "duration")]
    pub interval: Option<Duration>,
    /// How long a round may take to collect all topics.
    #[serde(default = "default_window", with = "duration")]
    pub window: Duration,
    /// How long xymond keeps the status before it turns purple; derived from `interval` when omitted.
    #[serde(default, with = "duration")]
    pub lifetime: Option<Duration>,
    /// Shared by every clone of this test (the collector's slot, the web's test list): at 100k topics
    /// each copy of the list would be 1.6 MB.
    #[serde(default)]
    pub topics: Arc<[TopicName]>,
    /// MQTT subscription QoS, 0 to 2.
    #[serde(default)]
    pub qos: u8,
    /// Rule tests: an MQTT filter with named captures, `sensors/{host}/env`.
    pub topic: Option<String>,
    /// Rule tests: a value older than this is stale (per concrete topic). None: never stale by age.
    #[serde(default, with = "duration")]
    pub expire_after: Option<Duration>,
    /// Rule tests: the colour of a stale value (`clear` for sensors that may sleep). Default yellow.
    pub stale_colour: Option<ColourName>,
    /// Rule tests: the colour of a payload that cannot be read. Default yellow.
    pub unparsable_colour: Option<ColourName>,
    /// Rule tests: JSONPath of the sensor's own timestamp (Unix seconds or milliseconds, or RFC 3339).
    pub timestamp_path: Option<String>,
    /// Rule tests: hosts that must appear; one that never published is reported by name.
    #[serde(default)]
    pub expect: Vec<String>,
    /// Rule tests: most Xymon tests (instances) this rule creates; more are counted and logged.
    pub max_instances: Option<usize>,
    /// Rule tests: most concrete topics this rule tracks; more are counted and logged.
    pub max_topics: Option<usize>,
    #[serde(default, rename = "value")]
    pub values: Vec<ValueConfig>,
}

/// The `$SYS` topics the `broker-stats` kind reads (mosquitto's names, as submqttm.py reads them).
pub const BROKER_STATS_TOPICS: [&str; 5] = [
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/messages/stored",
];

/// Default period of periodic tests: Xymon's own 5-minute rhythm.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Default re-send interval of rule tests.
pub const DEFAULT_RULE_INTERVAL: Duration = Duration::from_secs(60);
/// Default cap on the tests one rule creates, and on the topics it tracks.
pub const DEFAULT_MAX_INSTANCES: usize = 10_000;

impl TestConfig {
    pub fn mode(&self) -> Mode {
        match self.kind {
            TestKind::BrokerStats => Mode::Periodic,
            TestKind::Rule => Mode::Continuous,
            TestKind::Topics => self.mode.unwrap_or(Mode::Continuous),
        }
    }

    /// The topics this test needs, in display order. For a `topics` test this is the config's own list,
    /// shared, not copied.
    pub fn topic_list(&self) -> Arc<[TopicName]> {
        match self.kind {
            TestKind::BrokerStats => BROKER_STATS_TOPICS
                .iter()
                .map(|&s| TopicName::from_static(s))
                .collect(),
            TestKind::Topics => self.topics.clone(),
            // A rule has a filter, not a topic list (see `crate::rules`).
            TestKind::Rule => Arc::default(),
        }
    }

    /// Periodic tests: the period. Rule tests: the most time between two statuses of an instance whose
    /// colour does not change (default 1 minute). Otherwise only used for the lifetime.
    pub fn interval(&self) -> Duration {
        match self.kind {
            TestKind::Rule => self.interval.unwrap_or(DEFAULT_RULE_INTERVAL),
            _ => self.interval.unwrap_or(DEFAULT_INTERVAL),
        }
    }

    /// Status lifetime: explicit, or two intervals plus five minutes of slack (one lost round never
    /// turns the column purple), rounded up to whole minutes because xymond counts minutes.
    pub fn lifetime(&self) -> Duration {
        let raw = self
            .lifetime
            .unwrap_or_else(|| self.interval() * 2 + Duration::from_secs(300));
        Duration::from_secs(raw.as_secs().div_ceil(60).max(1) * 60)
    }

    pub fn qos(&self) -> rumqttc::QoS {
        match self.qos {
            2 => rumqttc::QoS::ExactlyOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::AtMostOnce,
        }
    }
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

    /// An error about the table at `span` (a `[[broker]]` or `[[test]]`, by its `Spanned` span), at the
    /// line of `key` inside it. For a key under a test's `[[test.value]]` (`value[J].name`), the line is
    /// found in the J-th value table after the test's header.
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: String,
    ) -> ConfigError {
        let text = &self.origin.text;
        let span = match key
            .split_once("value[")
            .and_then(|(_, r)| r.split_once(']'))
        {
            Some((j, _)) => {
                value_table_span(text, span.start, j.parse().unwrap_or(0)).unwrap_or(span)
            }
            None => span,
        };
        ConfigError::at_key(&self.origin.path, text, span, key.to_string(), message)
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
            // MQTT sends it as 16-bit seconds (rumqttc would cut a longer one with `as u16`).
            let keep_alive = b.get_ref().keep_alive;
            if keep_alive < Duration::from_secs(1) || keep_alive > Duration::from_secs(65_535) {
                return Err(err(
                    b.span(),
                    key("keep_alive"),
                    "must be at least 1s and at most 65535s (MQTT's 16-bit field)".into(),
                ));
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
        Ok(())
    }
}

/// Byte range of the `j`-th `[[test.value]]` table after `from` (the header of its `[[test]]`).
fn value_table_span(text: &str, from: usize, j: usize) -> Option<std::ops::Range<usize>> {
    let mut offset = from.min(text.len());
    let mut seen = 0;
    for (i, line) in text[offset..].split_inclusive('\n').enumerate() {
        let l = line.trim();
        if i > 0 && l.starts_with("[[test]]") {
            return None;
        }
        if l.starts_with("[[test.value]]") {
            if seen == j {
                return Some(offset..offset + line.len());
            }
            seen += 1;
        }
        offset += line.len();
    }
    None
}

fn default_xymon_server() -> String {
    DEFAULT_XYMON_SERVER.into()
}
fn default_rrd_dir() -> PathBuf {
    DEFAULT_RRD_DIR.into()
}
fn default_send_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_combo_max() -> usize {
    100
}
fn default_web_listen() -> SocketAddr {
    // A constant that parses: checked by the `defaults_parse` test.
    DEFAULT_WEB_LISTEN
        .parse()
        .unwrap_or_else(|_| ([127, 0, 0, 1], 8585).into())
}
fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_hits() -> u32 {
    1
}
fn default_window() -> Duration {
    Duration::from_millis(500)
}
fn default_max_packet_bytes() -> usize {
    8 << 20
}
fn default_max_payload_bytes() -> usize {
    64 << 10
}
fn default_max_value_chars() -> usize {
    512
}
fn default_max_topics() -> usize {
    1_000_000
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
