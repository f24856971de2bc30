//! The supervisor: starts the stages of a `Plan`, watches them, and stops them in order.
//!
//! Fed by the CLI's `run` with a compiled plan and the one cancellation token (SIGINT, SIGTERM). The
//! wiring, in data-flow order:
//!
//! ```text
//! broker ─> mqtt::run (a task per broker) ─> Store (latest value per topic) <─ web (reads)
//!              │ Sample (bounded channel)       ▲ last known values
//!              ▼                                │
//!           collect::Collector ─ rounds, rules, timers ─ SnapshotRequest ─> mqtt::snapshot::serve
//!              │ status::* builds the text
//!              ├─> Outbox (latest status per host.test) ─> xymon::run ─> xymond :1984
//!              └─> RrdWriter (a blocking worker) ─> <rrd_dir>/<host>/*.rrd
//! ```
//!
//! Shutdown: ingest stops first; the collector processes what was already received and closes open
//! rounds; the RRD writer drains its queue; then the sender delivers what is pending within a deadline.
//! A stage that ends on its own before the stop (a panic) stops the bridge with an error, so systemd
//! restarts it.

use crate::collect::{self, Collector, Refusal, RouteTable, Sample, SnapshotRequest};
use crate::discovery;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::mqtt::{self, Connection, Wanted};
use crate::plan::{Plan, VALUE_RRD_DEF};
use crate::rrd::{RrdDefs, RrdProbe, RrdWriter};
use crate::store::{Store, UsageCollector};
use crate::web;
use crate::xymon::{self, Outbox};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Samples queued between ingest and the collector. The collector is pure in-memory work, so this only
/// absorbs bursts; when it is full ingest waits (the broker buffers), it never drops.
const SAMPLE_CAPACITY: usize = 4096;

/// RRD updates queued for the blocking writer; two per broker-stats snapshot, so this is plenty, and a
/// full queue means the disk is stuck (updates are then counted and skipped, never waited for).
const RRD_QUEUE_CAPACITY: usize = 1024;

/// Snapshot requests queued for the MQTT stage: one per periodic test at most is in flight.
const SNAPSHOT_REQUEST_CAPACITY: usize = 64;

/// Refused (or granted again) filters queued for the collector; only changes are sent, so this is
/// rarely more than a handful. Full, the session waits, as it does for samples.
const REFUSAL_CAPACITY: usize = 256;

/// How long shutdown may take to deliver pending statuses before giving up.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The live state the stages share, readable from outside (the web layer, tests).
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    /// The discovered devices, as the discovery sessions last built them.
    pub devices: discovery::Board,
}

impl Shared {
    /// What the web layer reads (no stage to watch: see `Bridge::run` for the running bridge's).
    pub fn web_sources(&self) -> web::Sources {
        web::Sources {
            store: self.store.clone(),
            outbox: self.outbox.clone(),
            metrics: self.metrics.clone(),
            devices: self.devices.clone(),
            stages: Arc::default(),
        }
    }
}

/// A planned bridge, not yet running. `shared` is there from the start so callers (tests) can watch the
/// store and the outbox.
pub struct Bridge {
    plan: Plan,
    pub shared: Shared,
}

impl Bridge {
    pub fn new(plan: Plan) -> Bridge {
        let store = Store::for_plan(&plan);
        let mut metrics = Metrics::new();
        // The store's budget figures, read from the store at each scrape.
        metrics
            .registry
            .register_collector(Box::new(UsageCollector(store.clone())));
        let shared = Shared {
            store,
            outbox: Arc::new(Outbox::new()),
            metrics: Arc::new(metrics),
            devices: discovery::Board::default(),
        };
        Bridge { plan, shared }
    }

    /// Runs the bridge until `cancel` fires, then shuts down in order and returns.
    ///
    /// # Errors
    /// Start-up problems (the RRD directory or layouts), and a stage that stops on its own before
    /// `cancel` (a panic: the rest is then shut down in order). Everything else after start-up is logged
    /// and retried.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let Bridge { mut plan, shared } = self;
        let rrd = start_rrd_writer(&plan)?;
        let routing = std::mem::take(&mut plan.routing);
        let connections: Vec<Connection> = plan.brokers.iter().map(Connection::new).collect();

        let (sample_tx, sample_rx) = mpsc::channel::<Sample>(SAMPLE_CAPACITY);
        let (snapshot_tx, snapshot_rx) =
            mpsc::channel::<SnapshotRequest>(SNAPSHOT_REQUEST_CAPACITY);
        let (refusal_tx, refusal_rx) = mpsc::channel::<Refusal>(REFUSAL_CAPACITY);
        let ingest_stop = cancel.child_token();
        let mut ingest = spawn_ingest(
            &plan,
            &routing,
            &connections,
            &shared,
            (&sample_tx, &refusal_tx),
            &ingest_stop,
        );
        drop(refusal_tx);
        spawn_discovery(
            &mut plan,
            (&connections, rrd.as_ref().map(|(w, _)| w)),
            &shared,
            &mut ingest,
            &ingest_stop,
        );
        // Held until the stop: the collector ends when the channel closes, which would otherwise happen
        // at once with no broker configured (and read as the collector failing, below).
        let sample_tx_held = sample_tx;
        let snapshots = tokio::spawn(mqtt::snapshot::serve(
            snapshot_rx,
            connections,
            shared.store.clone(),
            shared.metrics.clone(),
        ));

        let routes: Vec<RouteTable> = routing.iter().map(|r| RouteTable::new(&r.exact)).collect();
        drop(routing);
        let collector = Collector::new(
            std::mem::take(&mut plan.tests),
            std::mem::take(&mut plan.rules),
            routes,
            shared.store.clone(),
            collect::Sinks {
                outbox: shared.outbox.clone(),
                metrics: shared.metrics.clone(),
                rrd: rrd.as_ref().map(|(w, _)| w.clone()),
                snapshots: snapshot_tx,
            },
            plan.limits.max_value_chars,
        );
        let rrd_probe = rrd.as_ref().map(|(w, _)| w.probe());
        let rrd_thread = rrd.map(|(_, thread)| thread);
        // The collector stops when ingest has stopped and the channel is drained.
        let mut collector = tokio::spawn(collector.run(sample_rx, refusal_rx));

        let sender_stop = CancellationToken::new();
        let mut sender = tokio::spawn(xymon::run(
            xymon::SenderConfig {
                addr: plan.xymon.server.clone(),
                timeout: plan.xymon.timeout,
                combo_max: plan.xymon.combo_max,
                drain_deadline: DRAIN_DEADLINE,
            },
            shared.outbox.clone(),
            shared.metrics.clone(),
            sender_stop.clone(),
        ));
        // A web problem never stops the bridge.
        let sources = web::Sources {
            stages: Arc::new(watched_stages(&sample_tx_held, rrd_probe, &shared)),
            ..shared.web_sources()
        };
        let web = web::start(&plan.web, sources, cancel.clone()).await;

        info!(brokers = plan.brokers.len(), tests = plan.test_count(), xymond = %plan.xymon.server, "bridge running");
        // Every stage has what it needs; the rest of the plan (for 100k topics, megabytes) is not kept.
        drop(plan);

        // Until the stop signal, no stage ends: ingest retries its broker for ever, the collector runs
        // while ingest does, the sender until told to stop. One that ends anyway has panicked (a bug).
        // The bridge then stops with an error rather than run on half-working (web up, every test going
        // purple), so that systemd restarts it (`Restart=on-failure`). After the signal, ingest and then
        // the collector end by design, which is not a failure.
        let (mut collector_done, mut sender_done) = (false, false);
        let ended = |stage: &'static str, r: Result<(), JoinError>| {
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
        // The collector held the last snapshot request sender: the snapshot server ends; sessions still
        // running are abandoned (their values are in the broker).
        snapshots.abort();
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
}

/// Runs a bridge for `plan` until `cancel` fires (or a stage fails; see `Bridge::run`).
pub async fn run(plan: Plan, cancel: CancellationToken) -> anyhow::Result<()> {
    Bridge::new(plan).run(cancel).await
}

/// How long a stage's queue may stay full with nothing taken before `/healthz` calls it stuck.
const STAGE_STUCK_AFTER: Duration = Duration::from_secs(10);

/// How long statuses may wait without the sender taking any: longer than its longest backoff (30 s) plus
/// one delivery's timeout, so a sender that retries a refusing xymond is slow, not stuck.
const SENDER_STUCK_AFTER: Duration = Duration::from_secs(60);

/// The stages whose queues `/healthz` watches: the collector (the sample queue from ingest), the RRD
/// writer (its queue), the Xymon sender (the outbox). None holds a sender of a queue, so that the queues
/// still close at shutdown.
fn watched_stages(
    samples: &mpsc::Sender<Sample>,
    rrd: Option<RrdProbe>,
    shared: &Shared,
) -> Vec<web::Stage> {
    let queue = samples.downgrade();
    let metrics = shared.metrics.clone();
    let mut stages = vec![web::Stage {
        name: "the collector",
        what: "the queue of samples from MQTT ingest is full and it took none",
        after: STAGE_STUCK_AFTER,
        stuck_for: Box::new(move || {
            let full = queue.upgrade().is_some_and(|q| q.capacity() == 0);
            full.then(|| metrics.collector_beat.idle())
        }),
    }];
    if let Some(rrd) = rrd {
        stages.push(web::Stage {
            name: "the RRD writer",
            what: "its queue is full and it finished no update",
            after: STAGE_STUCK_AFTER,
            stuck_for: Box::new(move || rrd.full_for()),
        });
    }
    let outbox = shared.outbox.clone();
    stages.push(web::Stage {
        name: "the Xymon sender",
        what: "statuses are pending and it took none",
        after: SENDER_STUCK_AFTER,
        stuck_for: Box::new(move || outbox.stalled()),
    });
    stages
}

/// One ingest task per broker, each with its session and its subscriptions; `to_collector`: the
/// sample and refusal channels.
fn spawn_ingest(
    plan: &Plan,
    routing: &[crate::plan::BrokerRouting],
    connections: &[Connection],
    shared: &Shared,
    to_collector: (&mpsc::Sender<Sample>, &mpsc::Sender<Refusal>),
    stop: &CancellationToken,
) -> JoinSet<()> {
    let log_limit = Arc::new(LogLimiter::new(Duration::from_secs(60)));
    let mut ingest = JoinSet::new();
    for (id, ((b, routing), connection)) in plan
        .brokers
        .iter()
        .zip(routing)
        .zip(connections)
        .enumerate()
    {
        let keep = b.session_expiry.is_some();
        let (client, events) = mqtt::open(connection, connection.client_id.clone(), keep);
        let task = mqtt::BrokerTask {
            id,
            name: b.name.clone(),
            client,
            events,
            wanted: Arc::new(Wanted::new(routing)),
            reconnect_max: b.reconnect_max,
            keep_alive: b.keep_alive,
        };
        let ingest_shared = mqtt::Shared {
            store: shared.store.clone(),
            samples: to_collector.0.clone(),
            refusals: to_collector.1.clone(),
            metrics: shared.metrics.clone(),
            log_limit: log_limit.clone(),
        };
        ingest.spawn(mqtt::run(task, ingest_shared, stop.clone()));
    }
    ingest
}

/// One discovery session per `[[discovery]]` block, in the ingest set (it stops and fails with ingest).
fn spawn_discovery(
    plan: &mut Plan,
    (connections, rrd): (&[Connection], Option<&RrdWriter>),
    shared: &Shared,
    ingest: &mut JoinSet<()>,
    stop: &CancellationToken,
) {
    for (index, (broker, d)) in std::mem::take(&mut plan.discovery).into_iter().enumerate() {
        let (Some(connection), Some(b)) = (connections.get(broker), plan.brokers.get(broker))
        else {
            continue;
        };
        let rrd = rrd.filter(|_| d.rrd.any()).cloned();
        let task = mqtt::discovery::DiscoveryTask {
            index,
            connection: connection.clone(),
            plan: d,
            reconnect_max: b.reconnect_max,
            outbox: shared.outbox.clone(),
            metrics: shared.metrics.clone(),
            max_value_chars: plan.limits.max_value_chars,
            board: shared.devices.clone(),
            rrd,
        };
        ingest.spawn(mqtt::discovery::run(task, stop.clone()));
    }
}

/// The RRD writer and its thread, when the plan writes RRDs; without any, `rrd_dir` is not even checked.
fn start_rrd_writer(plan: &Plan) -> anyhow::Result<Option<(RrdWriter, JoinHandle<()>)>> {
    let Some(rrd) = &plan.rrd else {
        return Ok(None);
    };
    let mut defs = RrdDefs::load_with_overrides(rrd.defs.as_deref())?;
    for name in &rrd.rule_rrds {
        if !defs.alias(name, VALUE_RRD_DEF) {
            anyhow::bail!("the RRD layout {VALUE_RRD_DEF:?} is missing from rrd_defs");
        }
    }
    if rrd.discovery && !defs.fallback_to(VALUE_RRD_DEF) {
        anyhow::bail!("the RRD layout {VALUE_RRD_DEF:?} is missing from rrd_defs");
    }
    let (writer, thread) = RrdWriter::start(rrd.dir.clone(), defs, RRD_QUEUE_CAPACITY)?;
    Ok(Some((writer, thread)))
}
