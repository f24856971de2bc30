//! The plan: a validated `Config` compiled once into what the stages run.
//!
//! Fed by the CLI (`check`, `run`, `explain`, `xymon-config` all compile the config into a `Plan`);
//! read by the supervisor (`bridge`), which hands each stage its part, and by the web layer. Here, and
//! only here: broker addresses, credentials, TLS settings and client ids are resolved (`broker`), every
//! file the config names is read, rule tests and `[[discovery]]` blocks are compiled, every
//! test is tied to its broker by index, the exact topics are routed to the tests that read them, and the
//! RRD files the bridge writes are named. A problem is a `ConfigError` that names the file, the line and
//! the key, like a parse error.

mod broker;
mod diff;
mod routing;
pub mod self_status;

pub use broker::{BrokerPlan, Credentials};
pub use diff::{fingerprint, Diff, Shape};
pub use routing::{BrokerRouting, Dest, ExactTopic};
pub use self_status::SelfStatusPlan;

use crate::colour::Colour;
use crate::config::{Config, ConfigError, LimitsConfig, TestConfig, TestKind, XymonConfig};
use crate::discovery::DiscoveryPlan;
use crate::names::{BrokerId, TopicName};
use crate::rules::Rule;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The rrd-defs layout of per-value RRDs (one GAUGE DS named `value`).
pub const VALUE_RRD_DEF: &str = "value";

/// Everything the bridge runs, resolved from one config file.
#[derive(Debug)]
pub struct Plan {
    /// The config file, for log lines.
    pub path: PathBuf,
    /// In config order: the index is the `BrokerId`.
    pub brokers: Vec<BrokerPlan>,
    /// The `topics` and `broker-stats` tests, in config order: the collector's slots.
    pub tests: Vec<TestPlan>,
    /// The rule tests, in config order.
    pub rules: Vec<RulePlan>,
    /// The `[[discovery]]` blocks, in config order, each with its broker.
    pub discovery: Vec<(BrokerId, DiscoveryPlan)>,
    /// Per broker: the permanent subscriptions and where each exact topic goes.
    pub routing: Vec<BrokerRouting>,
    /// The RRD files the bridge writes; `None` when it writes none (then `rrd_dir` is not even checked).
    pub rrd: Option<RrdPlan>,
    pub xymon: XymonConfig,
    pub limits: LimitsConfig,
    pub web: WebPlan,
    /// The bridge's own column; `None` when `[self_status] enabled = false`.
    pub self_status: Option<SelfStatusPlan>,
}

/// A `topics` or `broker-stats` test and its broker.
#[derive(Debug, Clone)]
pub struct TestPlan {
    pub config: TestConfig,
    pub broker: BrokerId,
    /// Its index among the config's `[[test]]`s.
    pub index: usize,
    /// The topics it reads, in display order (the config's own list, shared; broker-stats: the `$SYS`
    /// names).
    pub topics: Arc<[TopicName]>,
    /// A continuous test's colour while its broker is disconnected.
    pub outage_colour: Colour,
    /// Its config as text: a reload keeps the state of a test whose fingerprint did not change.
    pub fingerprint: u64,
}

impl TestPlan {
    /// Read by short-lived snapshot sessions (`mode = "periodic"`, and every broker-stats test), not by
    /// the permanent subscriptions.
    pub fn is_periodic(&self) -> bool {
        self.config.mode() == crate::config::Mode::Periodic
    }
}

/// A compiled rule test and its broker.
#[derive(Debug, Clone)]
pub struct RulePlan {
    pub rule: Rule,
    pub broker: BrokerId,
    /// Its index among the config's `[[test]]`s, for log lines.
    pub index: usize,
    /// Its instances' colour while the broker is disconnected.
    pub outage_colour: Colour,
    /// Its config as text: a reload keeps the state of a rule whose fingerprint did not change.
    pub fingerprint: u64,
}

/// The RRD files the bridge writes itself.
#[derive(Debug, Clone)]
pub struct RrdPlan {
    pub dir: PathBuf,
    /// The directory of layout files that replace or extend the built-in `rrd-defs/`.
    pub defs: Option<PathBuf>,
    /// `<test>.<value>` of every `rrd = true` value of a rule test; each uses `VALUE_RRD_DEF`.
    pub rule_rrds: Vec<String>,
    /// Whether a broker-stats test writes the broker's message and byte RRDs.
    pub broker_stats: bool,
    /// Whether a `[[discovery]]` block writes RRDs (file names known only when entities are announced;
    /// every one uses `VALUE_RRD_DEF`).
    pub discovery: bool,
}

/// What the web layer serves, resolved.
#[derive(Debug, Clone)]
pub struct WebPlan {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// Where the dashboard finds RRD files to draw.
    pub rrd_dir: PathBuf,
    /// Broker names, by `BrokerId`.
    pub brokers: Vec<String>,
    /// Every configured test, in config order.
    pub tests: Vec<TestInfo>,
}

/// A configured test as the pages show it.
#[derive(Debug, Clone)]
pub struct TestInfo {
    pub host: String,
    pub test: String,
    pub broker: BrokerId,
    pub kind: TestKind,
    /// A `topics` test's list is the config's, shared with the collector, not copied (broker-stats: its own
    /// list of the five `$SYS` names).
    pub topics: Arc<[TopicName]>,
}

impl Plan {
    /// Compiles a validated config.
    ///
    /// # Errors
    /// A rule test that does not compile, or a file the config names (password, CA, certificate, key,
    /// token) that cannot be read or holds nothing usable; located by file, line and key.
    pub fn compile(config: &Config) -> Result<Plan, ConfigError> {
        let mut brokers = Vec::with_capacity(config.brokers.len());
        for (i, b) in config.brokers.iter().enumerate() {
            let plan = broker::resolve(b.get_ref(), config.limits.max_packet_bytes).map_err(
                |(key, message)| config.error_at(b.span(), &format!("broker[{i}].{key}"), message),
            )?;
            brokers.push(plan);
        }
        if let Some(file) = &config.web.token_file {
            // The web layer reads it again when it starts; this is `check` finding a bad one first.
            match first_line(file) {
                Ok(token) if token.trim().is_empty() => {
                    return Err(config
                        .error_at_line("web.token_file", format!("{} is empty", file.display())))
                }
                Ok(_) => {}
                Err(e) => return Err(config.error_at_line("web.token_file", e)),
            }
        }
        // Validation checked that every test names a broker.
        let broker_id = |name: &str| brokers.iter().position(|b| b.name == name);
        // A test's own outage colour, else its broker's, else clear.
        let outage_colour = |tc: &TestConfig, broker: BrokerId| {
            tc.outage_colour
                .or_else(|| config.brokers.get(broker)?.get_ref().outage_colour)
                .map_or(Colour::Clear, Colour::from)
        };
        let mut tests = Vec::new();
        let mut rules = Vec::new();
        let mut web_tests = Vec::with_capacity(config.tests.len());
        for (index, t) in config.tests.iter().enumerate() {
            let tc = t.get_ref();
            let Some(broker) = broker_id(&tc.broker) else {
                continue;
            };
            let topics = tc.topic_list();
            web_tests.push(TestInfo {
                host: tc.host.to_string(),
                test: tc.test.to_string(),
                broker,
                kind: tc.kind,
                topics: topics.clone(),
            });
            let fingerprint = diff::fingerprint(&(tc, outage_colour(tc, broker)));
            if tc.kind == TestKind::Rule {
                let rule = Rule::compile(tc).map_err(|e| {
                    config.error_at(t.span(), &format!("test[{index}].{}", e.key), e.message)
                })?;
                rules.push(RulePlan {
                    rule,
                    broker,
                    index,
                    outage_colour: outage_colour(tc, broker),
                    fingerprint,
                });
            } else {
                tests.push(TestPlan {
                    config: tc.clone(),
                    broker,
                    index,
                    topics,
                    outage_colour: outage_colour(tc, broker),
                    fingerprint,
                });
            }
        }
        let mut discovery = Vec::with_capacity(config.discovery.len());
        for (i, d) in config.discovery.iter().enumerate() {
            let at = |key: &str, message: String| {
                config.error_at(d.span(), &format!("discovery[{i}].{key}"), message)
            };
            let broker = broker_id(&d.get_ref().broker).ok_or_else(|| {
                at(
                    "broker",
                    format!("no [[broker]] is named {:?}", d.get_ref().broker),
                )
            })?;
            let compiled =
                crate::discovery::compile(d.get_ref()).map_err(|e| at(&e.key, e.message))?;
            discovery.push((broker, compiled));
        }
        let routing = routing::route(brokers.len(), &tests, &rules);
        let rule_rrds: Vec<String> = rules
            .iter()
            .flat_map(|r| {
                r.rule
                    .values
                    .iter()
                    .filter(|v| v.rrd)
                    .map(|v| format!("{}.{}", r.rule.test.as_str(), v.name))
            })
            .collect();
        let broker_stats = tests.iter().any(|t| t.config.kind == TestKind::BrokerStats);
        let discovery_rrds = discovery.iter().any(|(_, d)| d.rrd.any());
        let rrd = (broker_stats || !rule_rrds.is_empty() || discovery_rrds).then(|| RrdPlan {
            dir: config.xymon.rrd_dir.clone(),
            defs: config.xymon.rrd_defs.clone(),
            rule_rrds,
            broker_stats,
            discovery: discovery_rrds,
        });
        let web = WebPlan {
            enabled: config.web.enabled,
            listen: config.web.listen,
            token_file: config.web.token_file.clone(),
            header_timeout: config.web.header_timeout,
            max_connections: config.web.max_connections,
            rrd_dir: config.xymon.rrd_dir.clone(),
            brokers: brokers.iter().map(|b| b.name.clone()).collect(),
            tests: web_tests,
        };
        Ok(Plan {
            path: config.origin.path.clone(),
            brokers,
            tests,
            rules,
            discovery,
            routing,
            rrd,
            xymon: config.xymon.clone(),
            limits: config.limits.clone(),
            web,
            self_status: self_status::resolve(config),
        })
    }

    /// The configured tests, rule tests included.
    pub fn test_count(&self) -> usize {
        self.tests.len() + self.rules.len()
    }
}

/// The most of a secret file that is read: a password or token is a line, and a bound keeps a file
/// named by mistake (a log, `/dev/zero`) from filling memory.
const SECRET_FILE_MAX: u64 = 64 * 1024;

/// The first line of a secret file (a password, a token), without its line end.
///
/// # Errors
/// The file cannot be read, is not a regular file (a FIFO or a device could block or never end), or has
/// no line end within its first 64 KiB; the message names it.
pub fn first_line(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(SECRET_FILE_MAX).read_to_end(&mut bytes))
        .map_err(|e| cannot(&e))?;
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None if meta.len() > SECRET_FILE_MAX => {
            return Err(cannot(&"its first line is longer than 64 KiB"));
        }
        None => &bytes[..],
    };
    let line = std::str::from_utf8(line).map_err(|_| cannot(&"not UTF-8 text"))?;
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

#[cfg(test)]
mod tests;
