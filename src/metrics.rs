//! The bridge's own counters, in a Prometheus registry, and the few facts the bridge's own column needs
//! beside them: the reasons of `dropped`, the last failed delivery, and the last ghost check.
//!
//! Fed by every stage (ingest, collector, sender) and by the own-status task (ghosts); read by the web
//! layer (`/metrics`, `/api/v1/brokers`, the overview's ghost banner), by the own-status task and by tests.
//! prometheus-client's counters are plain atomics, so updating them on the MQTT hot path costs one
//! relaxed add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabel {
    pub broker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    /// The rule's topic filter as configured.
    pub rule: String,
    pub reason: String,
}

/// A subscription filter of a broker. Bounded: both come from the config.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FilterLabel {
    pub broker: String,
    pub filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
}

/// Ghost hosts named in `/metrics` labels, at most: the gauge `ghost_hosts` counts them all.
pub const MAX_GHOST_LABELS: usize = 20;

/// A host the bridge sends statuses for that xymond drops, not having it in hosts.cfg (a ghost).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GhostHost {
    /// As the bridge sends it (with dots).
    pub host: String,
    /// The bridge's tests of the host.
    pub tests: Vec<String>,
    /// The configured test that makes it (`test[2]: rule "sensors/{host}/env", host "sensro-{host}"`).
    pub origin: String,
    /// When xymond last dropped a status of it.
    pub last_seen: SystemTime,
}

/// The last ghost check: the bridge's ghosts and when xymond was asked.
#[derive(Debug, Clone, Default)]
pub struct GhostReport {
    pub hosts: Vec<GhostHost>,
    pub checked_at: Option<SystemTime>,
    /// Why the last check failed, when it did (the hosts are then those of the check before).
    pub error: Option<String>,
}

/// When a stage last made progress, for `/healthz`'s "stuck" check: one relaxed store per beat, read
/// only when someone asks.
pub struct Heartbeat {
    base: Instant,
    /// Milliseconds after `base` of the last beat.
    last: AtomicU64,
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// The stage made progress now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat (since start-up before the first).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// PUBLISH packets received, per broker.
    pub messages: Family<BrokerLabel, Counter>,
    /// 1 while connected, per broker.
    pub connected: Family<BrokerLabel, Gauge>,
    /// Messages skipped, by reason (oversized, store full, …).
    pub dropped: Family<ReasonLabel, Counter>,
    /// Statuses xymond has taken.
    pub statuses_sent: Counter,
    /// Connections to xymond that delivered (one status or one combo).
    pub deliveries: Counter,
    /// Connections to xymond that failed.
    pub delivery_failures: Counter,
    /// Messages a rule refused (invalid derived name, instance or topic cap), per rule and reason. Bounded:
    /// rules come from the config and reasons are a fixed set.
    pub rule_refused: Family<RuleLabel, Counter>,
    /// Collection rounds completed, per outcome.
    pub rounds: Family<ReasonLabel, Counter>,
    /// The collector took samples (a beat per batch): with its queue full, a silent collector is stuck.
    pub collector_beat: Heartbeat,
    /// Subscription filters the broker refused in a SUBACK, per broker and filter (once per SUBACK).
    pub subscribe_refused: Family<FilterLabel, Counter>,
    /// The reasons `dropped` has counted, so the bridge's own column can list them (a fixed set of
    /// names; one lock at a reason's first drop only).
    drop_reasons: Mutex<BTreeSet<String>>,
    /// The latest failed delivery to xymond: when and why (kept after deliveries succeed again).
    last_delivery_error: Mutex<Option<(SystemTime, String)>>,
    /// Hosts the bridge sends for that xymond drops (the ghost check of the bridge's own column).
    pub ghost_hosts: Gauge,
    /// 1 per ghost host, by name, for the first `MAX_GHOST_LABELS` of them.
    pub ghost_host: Family<HostLabel, Gauge>,
    ghosts: Mutex<GhostReport>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("xymon_mqtt");
        let m = Metrics {
            messages: Family::default(),
            connected: Family::default(),
            dropped: Family::default(),
            statuses_sent: Counter::default(),
            deliveries: Counter::default(),
            delivery_failures: Counter::default(),
            rounds: Family::default(),
            rule_refused: Family::default(),
            collector_beat: Heartbeat::new(),
            subscribe_refused: Family::default(),
            drop_reasons: Mutex::default(),
            last_delivery_error: Mutex::default(),
            ghost_hosts: Gauge::default(),
            ghost_host: Family::default(),
            ghosts: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "mqtt_messages",
            "MQTT messages received",
            m.messages.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while connected to the broker",
            m.connected.clone(),
        );
        registry.register("dropped", "Messages skipped, by reason", m.dropped.clone());
        registry.register(
            "statuses_sent",
            "Statuses delivered to xymond",
            m.statuses_sent.clone(),
        );
        registry.register(
            "deliveries",
            "Connections to xymond that delivered",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_failures",
            "Connections to xymond that failed",
            m.delivery_failures.clone(),
        );
        registry.register(
            "rule_refused",
            "Messages a rule refused, by rule and reason",
            m.rule_refused.clone(),
        );
        registry.register(
            "rounds",
            "Collection rounds completed, by outcome",
            m.rounds.clone(),
        );
        registry.register(
            "subscribe_refused",
            "Subscription filters the broker refused, by broker and filter",
            m.subscribe_refused.clone(),
        );
        registry.register(
            "ghost_hosts",
            "Hosts the bridge sends statuses for that xymond drops (not in hosts.cfg)",
            m.ghost_hosts.clone(),
        );
        registry.register(
            "ghost_host",
            "1 for each host xymond drops, by name (the first 20)",
            m.ghost_host.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn broker(name: &str) -> BrokerLabel {
        BrokerLabel {
            broker: name.to_string(),
        }
    }

    pub fn count_drop(&self, reason: &str) {
        let first = self
            .dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc()
            == 0;
        if first {
            lock(&self.drop_reasons).insert(reason.to_string());
        }
    }

    /// Every reason `dropped` has counted, with its count, sorted by reason.
    pub fn drops(&self) -> Vec<(String, u64)> {
        let reasons: Vec<String> = lock(&self.drop_reasons).iter().cloned().collect();
        reasons
            .into_iter()
            .map(|reason| {
                let label = ReasonLabel { reason };
                let n = self.dropped.get(&label).map_or(0, |c| c.get());
                (label.reason, n)
            })
            .collect()
    }

    /// Notes a failed delivery to xymond.
    pub fn delivery_failed(&self, at: SystemTime, error: &str) {
        *lock(&self.last_delivery_error) = Some((at, error.to_string()));
    }

    /// The latest failed delivery to xymond, if any since start-up.
    pub fn last_delivery_error(&self) -> Option<(SystemTime, String)> {
        lock(&self.last_delivery_error).clone()
    }

    /// Replaces the ghost report; the gauges follow it (labels for the first `MAX_GHOST_LABELS` hosts).
    pub fn set_ghosts(&self, report: GhostReport) {
        self.ghost_hosts
            .set(i64::try_from(report.hosts.len()).unwrap_or(i64::MAX));
        self.ghost_host.clear();
        for g in report.hosts.iter().take(MAX_GHOST_LABELS) {
            self.ghost_host
                .get_or_create(&HostLabel {
                    host: g.host.clone(),
                })
                .set(1);
        }
        *lock(&self.ghosts) = report;
    }

    /// The last ghost report.
    pub fn ghosts(&self) -> GhostReport {
        lock(&self.ghosts).clone()
    }

    /// Counts one refusal of `filter` by `broker`.
    pub fn count_refusal(&self, broker: &str, filter: &str) {
        self.subscribe_refused
            .get_or_create(&FilterLabel {
                broker: broker.to_string(),
                filter: filter.to_string(),
            })
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A lock of plain data: a panic while holding it leaves nothing half-written that matters.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
