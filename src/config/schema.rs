//! The configuration schema: the serde structs and enums of every TOML table (`[xymon]`, `[web]`,
//! `[limits]`, `[[broker]]`, `[[test]]`, `[[test.value]]`), their defaults, and the derived values of a
//! test (`TestConfig::mode`, `lifetime`, ...).
//!
//! Deserialized by `Config` (in `config/mod.rs`, which loads and validates it and re-exports every item
//! here as `crate::config::X`); read by the plan, the collector, the status builders and the CLI.

use super::{duration, templates, BrokerUrl};
use crate::colour::Colour;
use crate::names::{HostName, TestName, TopicName};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default xymond address: the bridge runs on the Xymon server itself.
const DEFAULT_XYMON_SERVER: &str = "127.0.0.1:1984";
/// Debian's XYMONRRDS.
pub(super) const DEFAULT_RRD_DIR: &str = "/var/lib/xymon/rrd";
/// Default dashboard address: loopback only, so nothing is exposed until the administrator says so.
pub(super) const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8585";

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
    /// Largest MQTT packet accepted from a broker. With MQTT 5 the bridge announces it in CONNECT and the
    /// broker drops larger messages for it; MQTT 3.1.1 cannot announce it, and there the broker's own
    /// limit applies (see the README, "Oversize messages").
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
    /// Bytes the topic store may hold: payloads, names and a fixed cost per topic
    /// (`store::ENTRY_OVERHEAD`). When it is reached, the least recently updated topics that no configured
    /// test waits for are evicted.
    #[serde(default = "default_store_bytes")]
    pub store_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_packet_bytes: default_max_packet_bytes(),
            max_payload_bytes: default_max_payload_bytes(),
            max_value_chars: default_max_value_chars(),
            max_topics: default_max_topics(),
            store_bytes: default_store_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The name tests use in `broker = "..."`.
    pub name: String,
    /// `mqtt://host[:port]` (port defaults to 1883) or `mqtts://host[:port]` for TLS (8883).
    pub url: BrokerUrl,
    /// The MQTT version spoken to this broker.
    #[serde(default)]
    pub protocol: Protocol,
    pub username: Option<String>,
    /// A file holding the password (first line), so the secret stays out of the config file.
    pub password_file: Option<PathBuf>,
    /// Defaults to `xymon-mqtt-<name>-<pid>` for a clean session, and to `xymon-mqtt-<host>-<name>`
    /// (this machine's host name) when `session_expiry` keeps the session, so a restarted bridge finds it.
    pub client_id: Option<String>,
    /// 1 s to 65,535 s (MQTT's 16-bit field); at least 5 s with MQTT 5 (rumqttc's minimum).
    #[serde(default = "default_keep_alive", with = "duration")]
    pub keep_alive: Duration,
    /// Cap of the reconnect backoff (it starts at 1 s and doubles).
    #[serde(default = "default_reconnect_max", with = "duration")]
    pub reconnect_max: Duration,
    /// The colour of this broker's continuous tests and rule instances while it is disconnected (a test's
    /// own `outage_colour` wins). Default clear: the bridge cannot tell how the sensors are.
    pub outage_colour: Option<ColourName>,
    /// `mqtts://` only: the CA certificates (PEM) the broker's certificate must chain to. Without it, the
    /// system's CA certificates.
    pub ca_file: Option<PathBuf>,
    /// `mqtts://` only: the bridge's own certificate (PEM, the chain after it), for brokers that require
    /// one (`require_certificate true`). Goes with `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// `mqtts://` only: the private key (PEM: PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// How long the broker keeps the bridge's session (its subscriptions and the QoS 1 and 2 messages
    /// published for it) while the bridge is away. 0 or absent: a clean session at every connect.
    #[serde(default, with = "duration")]
    pub session_expiry: Option<Duration>,
}

impl BrokerConfig {
    /// Whether the broker keeps the session between connections.
    pub fn persistent(&self) -> bool {
        self.session_expiry.is_some_and(|d| !d.is_zero())
    }
}

/// The MQTT version of a broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Protocol {
    /// MQTT 5: the bridge announces its Maximum Packet Size, sessions expire by `session_expiry`, and
    /// SUBACKs say why a filter was refused.
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1, for brokers without MQTT 5.
    #[serde(rename = "3.1.1")]
    V311,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::V5 => "5",
            Protocol::V311 => "3.1.1",
        })
    }
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
    /// Rule tests whose `test` has a `{capture}`: the test names it may produce; any other is refused.
    #[serde(default)]
    pub tests: Vec<TestName>,
    /// Continuous and rule tests: the colour while the broker is disconnected (default: the broker's
    /// `outage_colour`, else clear).
    pub outage_colour: Option<ColourName>,
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
fn default_store_bytes() -> usize {
    64 << 20
}
