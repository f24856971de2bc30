//! xymon-mqtt: an MQTT → Xymon bridge that runs on the Xymon server next to xymond.
//!
//! # Data flow
//!
//! ```text
//! broker ──> mqtt::run (one task per broker) ──> Store (latest value per topic)
//!                 │ Sample (bounded channel)          ▲ last known values
//!                 ▼                                   │
//!            collect::Collector ── rounds, timers ────┘
//!                 │ status::* (pure) builds the text
//!                 ▼
//!              Outbox (latest status per host.test) ──> xymon::run ──> xymond :1984
//! ```
//!
//! # Layout
//! - `config`: TOML schema and validation (errors name file, line and key).
//! - `mqtt`: rumqttc event loops, reconnect/backoff/resubscribe, ingest into the store.
//! - `store`: latest topic values and broker states (read by the collector and the web layer); the
//!   configured exact topics are registered in it at start-up, which numbers the collector's routes.
//! - `collect`: rounds per test (continuous and periodic modes), timers, wall-clock alignment.
//! - `status`: status text for topics and broker-stats tests.
//! - `xymon`: wire format, sanitising of untrusted text, the outbox and the sender.
//!
//! Shutdown: one `CancellationToken`. Ingest stops first, the collector processes what was already
//! received and closes open rounds, then the sender delivers what is pending within a deadline.

pub mod backoff;
pub mod collect;
pub mod config;
pub mod heap;
pub mod log_limit;
pub mod metrics;
pub mod mqtt;
pub mod rrd;
pub mod rules;
pub mod status;
pub mod store;
pub mod web;
pub mod xymon;

use anyhow::Context as _;
use config::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Samples queued between ingest and the collector. The collector is pure in-memory work, so this only
/// absorbs bursts; when it is full ingest waits (the broker buffers), it never drops.
const SAMPLE_CAPACITY: usize = 4096;

/// RRD updates queued for the blocking writer; two per broker-stats snapshot, so this is plenty, and a
/// full queue means the disk is stuck (updates are then counted and skipped, never waited for).
const RRD_QUEUE_CAPACITY: usize = 1024;

/// 9999-12-31T23:59:59Z in Unix seconds: the last second that a four-digit RFC 3339 year, and humantime,
/// can write. Later sensor times are refused (`rules::sensor_time`); a later clock is shown as this
/// (`web::api::Timestamp`).
pub const LATEST_WRITABLE_SECS: u64 = 253_402_300_799;

/// How long shutdown may take to deliver pending statuses before giving up.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The state the bridge shares between its stages (and, later, the web layer).
#[derive(Clone)]
pub struct Shared {
    pub store: store::Store,
    pub outbox: Arc<xymon::Outbox>,
    pub metrics: Arc<metrics::Metrics>,
}

/// A configured bridge, not yet running. `shared` is there from the start so callers (the web layer,
/// tests) can watch the store and the outbox.
pub struct Bridge {
    config: Config,
    pub shared: Shared,
}

impl Bridge {
    pub fn new(config: Config) -> Bridge {
        let shared = Shared {
            store: store::Store::new(
                &config
                    .brokers
                    .iter()
                    .map(|b| (b.get_ref().name.clone(), b.get_ref().url.clone()))
                    .collect::<Vec<_>>(),
                config.limits.max_topics,
                config.limits.max_payload_bytes,
            ),
            outbox: Arc::new(xymon::Outbox::new()),
            metrics: Arc::new(metrics::Metrics::new()),
        };
        Bridge { config, shared }
    }

    /// Runs the bridge until `cancel` fires, then shuts down in order and returns.
    ///
    /// # Errors
    /// Start-up problems (an unreadable password file), and a stage that stops on its own before
    /// `cancel` (a panic: the rest is then shut down in order). Everything else after start-up is logged
    /// and retried.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        run_bridge(self.config, self.shared, cancel).await
    }
}

/// Runs a bridge for `config` until `cancel` fires (or a stage fails; see `Bridge::run`).
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    Bridge::new(config).run(cancel).await
}

async fn run_bridge(
    config: Config,
    shared: Shared,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let brokers: Vec<config::BrokerConfig> =
        config.brokers.iter().map(|b| b.get_ref().clone()).collect();
    let broker_id = |name: &str| brokers.iter().position(|b| b.name == name);
    let tests: Vec<(config::TestConfig, store::BrokerId)> = config
        .tests
        .iter()
        .filter_map(|t| Some((t.get_ref().clone(), broker_id(&t.get_ref().broker)?)))
        .collect();
    // Registers the configured exact topics in the store, before any ingest task starts.
    let collect::Routing { wanted, routes } =
        collect::routing(&tests, brokers.len(), &shared.store);

    let mut connections = Vec::new();
    let mut loops = Vec::new();
    for b in &brokers {
        let (host, port) = config::parse_broker_url(&b.url).map_err(anyhow::Error::msg)?;
        let credentials = match (&b.username, &b.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), read_password(file)?)),
            (Some(user), None) => Some((user.clone(), String::new())),
            _ => None,
        };
        let connection = mqtt::Connection {
            host,
            port,
            client_id: b
                .client_id
                .clone()
                .unwrap_or_else(|| format!("xymon-mqtt-{}-{}", b.name, std::process::id())),
            keep_alive: b.keep_alive,
            credentials,
            max_packet_bytes: config.limits.max_packet_bytes,
        };
        loops.push(mqtt::connect(connection.clone()));
        connections.push(connection);
    }

    let (sample_tx, sample_rx) = mpsc::channel(SAMPLE_CAPACITY);
    let log_limit = Arc::new(log_limit::LogLimiter::new(Duration::from_secs(60)));
    let ingest_stop = cancel.child_token();
    let mut ingest = tokio::task::JoinSet::new();
    for (id, (((client, eventloop), b), wanted)) in
        loops.into_iter().zip(&brokers).zip(wanted).enumerate()
    {
        let task = mqtt::BrokerTask {
            id,
            name: b.name.clone(),
            eventloop,
            client,
            wanted: Arc::new(wanted),
            reconnect_max: b.reconnect_max,
        };
        let ingest_shared = mqtt::Shared {
            store: shared.store.clone(),
            samples: sample_tx.clone(),
            metrics: shared.metrics.clone(),
            log_limit: log_limit.clone(),
        };
        ingest.spawn(mqtt::run(task, ingest_shared, ingest_stop.clone()));
    }
    // Held until the stop: the collector ends when the channel closes, which would otherwise happen at
    // once with no broker configured (and read as the collector failing, below).
    let sample_tx_held = sample_tx;

    // RRDs are written for broker-stats tests and for rule values with `rrd = true`; without either,
    // rrd_dir is not even checked.
    let rule_rrds = rules::rrd_names(tests.iter().map(|(t, _)| t));
    let mut rrd_thread = None;
    let mut rrd_writer = None;
    if !rule_rrds.is_empty()
        || tests
            .iter()
            .any(|(t, _)| t.kind == config::TestKind::BrokerStats)
    {
        let mut defs = rrd::RrdDefs::load_with_overrides(config.xymon.rrd_defs.as_deref())?;
        for name in &rule_rrds {
            if !defs.alias(name, rules::VALUE_RRD_DEF) {
                anyhow::bail!(
                    "the RRD layout {:?} is missing from rrd_defs",
                    rules::VALUE_RRD_DEF
                );
            }
        }
        let (writer, thread) =
            rrd::RrdWriter::start(config.xymon.rrd_dir.clone(), defs, RRD_QUEUE_CAPACITY)?;
        rrd_thread = Some(thread);
        rrd_writer = Some(writer);
    }
    let graphs = if tests
        .iter()
        .any(|(t, _)| t.kind == config::TestKind::BrokerStats)
    {
        rrd_writer
            .clone()
            .map(|writer| collect::graphs::BrokerGraphs { writer })
    } else {
        None
    };

    let collector = collect::Collector::new(
        tests,
        routes,
        connections,
        shared.store.clone(),
        shared.outbox.clone(),
        shared.metrics.clone(),
        config.limits.max_value_chars,
        graphs,
    );
    let collector = match rrd_writer.filter(|_| !rule_rrds.is_empty()) {
        Some(w) => collector.with_rule_rrd(w),
        None => collector,
    };
    // The collector stops when ingest has stopped and the channel is drained, not on the token.
    let mut collector = tokio::spawn(collector.run(sample_rx, CancellationToken::new()));

    let sender_stop = CancellationToken::new();
    let mut sender = tokio::spawn(xymon::run(
        xymon::SenderConfig {
            addr: config.xymon.server.clone(),
            timeout: config.xymon.timeout,
            combo_max: config.xymon.combo_max,
            drain_deadline: DRAIN_DEADLINE,
        },
        shared.outbox.clone(),
        shared.metrics.clone(),
        sender_stop.clone(),
    ));
    // Web UI and API (src/web): stops on the cancel token; a web problem never stops the bridge.
    let web = web::start(&config, shared.clone(), cancel.clone()).await;

    info!(brokers = brokers.len(), tests = config.tests.len(), xymond = %config.xymon.server, "bridge running");
    // Every stage has what it needs; the parsed config (for 100k topics, megabytes) is not kept.
    drop(config);

    // Until the stop signal, no stage ends: ingest retries its broker for ever, the collector runs while
    // ingest does, the sender until told to stop. One that ends anyway has panicked (a bug). The bridge
    // then stops with an error rather than run on half-working (web up, every test going purple), so
    // that systemd restarts it (`Restart=on-failure`). After the signal, ingest and then the collector
    // end by design, which is not a failure.
    let (mut collector_done, mut sender_done) = (false, false);
    let ended = |stage: &'static str, r: Result<(), tokio::task::JoinError>| {
        if cancel.is_cancelled() {
            if let Err(e) = r {
                warn!(stage, error = %e, "ended abnormally while stopping");
            }
            None
        } else {
            Some((stage, r.err()))
        }
    };
    // Ingest before the collector: a panicking ingest task also closes its end of the channel, and
    // the collector ending after it is the consequence, not the cause.
    let failed = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        Some(r) = ingest.join_next() => ended("MQTT ingest", r),
        r = &mut collector => {
            collector_done = true;
            ended("the collector", r)
        }
        r = &mut sender => {
            sender_done = true;
            ended("the Xymon sender", r)
        }
    };
    drop(sample_tx_held);
    if let Some((stage, e)) = &failed {
        let error = e.as_ref().map(ToString::to_string).unwrap_or_default();
        error!(
            stage,
            error, "a stage of the bridge stopped; stopping the bridge"
        );
        cancel.cancel();
    }
    info!("shutting down");
    while let Some(r) = ingest.join_next().await {
        if let Err(e) = r {
            warn!(error = %e, "MQTT ingest ended abnormally");
        }
    }
    if !collector_done {
        if let Err(e) = collector.await {
            warn!(error = %e, "collector ended abnormally");
        }
    }
    // The collector held the last RrdWriter handle: the worker now drains its queue and exits.
    if let Some(thread) = rrd_thread {
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(DRAIN_DEADLINE, joined).await.is_err() {
            warn!("RRD writer still busy at the shutdown deadline");
        }
    }
    sender_stop.cancel();
    if !sender_done {
        if let Err(e) = sender.await {
            warn!(error = %e, "sender ended abnormally");
        }
    }
    if let Some(web) = web {
        if tokio::time::timeout(DRAIN_DEADLINE, web).await.is_err() {
            warn!("web server did not stop in time");
        }
    }
    if let Some((stage, _)) = failed {
        anyhow::bail!("{stage} stopped unexpectedly (see the log above); the bridge stopped");
    }
    info!("stopped");
    Ok(())
}

fn read_password(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read password_file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}
