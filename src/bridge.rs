//! The supervisor: starts the stages of a `Plan`, watches them, and stops them in order.
//!
//! Fed by the CLI's `run` with a compiled plan, the one cancellation token (SIGINT, SIGTERM) and a
//! channel of reloaded plans (SIGHUP), each applied by `reload` without a restart. The wiring, in
//! data-flow order:
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
//! restarts it. Beside the stages, `own_status` sends the bridge's own column and checks for ghosts.

mod discovery;
mod own_status;
mod reload;

use crate::collect::{self, Collector, Control, Refusal, RouteTable, Sample, SnapshotRequest};
use crate::metrics::Metrics;
use crate::mqtt::{self, Connection, Wanted};
use crate::plan::{fingerprint, Plan, Shape, VALUE_RRD_DEF};
use crate::rrd::{RrdDefs, RrdProbe, RrdWriter};
use crate::store::{Store, UsageCollector};
use crate::web;
use crate::xymon::{self, Outbox};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinError;
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
    pub devices: crate::discovery::Board,
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
            devices: crate::discovery::Board::default(),
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
        self.run_reloadable(cancel, mpsc::channel(1).1).await
    }

    /// `run`, taking new plans from `reloads` (SIGHUP) and applying each without a restart
    /// (`reload`): what did not change keeps its state.
    ///
    /// # Errors
    /// As `run`.
    pub async fn run_reloadable(
        self,
        cancel: CancellationToken,
        mut reloads: mpsc::Receiver<Plan>,
    ) -> anyhow::Result<()> {
        let Bridge { mut plan, shared } = self;
        let shape = Shape::of(&plan);
        let test_count = plan.test_count();
        let rrd = start_rrd_writer(&plan)?;
        let routing = std::mem::take(&mut plan.routing);
        let connections: Vec<Connection> = plan.brokers.iter().map(Connection::new).collect();

        let (sample_tx, sample_rx) = mpsc::channel::<Sample>(SAMPLE_CAPACITY);
        let (snapshot_tx, snapshot_rx) =
            mpsc::channel::<SnapshotRequest>(SNAPSHOT_REQUEST_CAPACITY);
        let (refusal_tx, refusal_rx) = mpsc::channel::<Refusal>(REFUSAL_CAPACITY);
        let (control_tx, control_rx) = mpsc::channel::<Control>(1);
        let ingest_stop = cancel.child_token();
        let mut sessions =
            reload::Sessions::new(&shared, sample_tx.clone(), refusal_tx, ingest_stop.clone());
        for (id, (b, routing)) in plan.brokers.iter().zip(&routing).enumerate() {
            sessions.open(id, b, Arc::new(Wanted::new(routing)));
        }
        let discovery = discovery::DiscoverySessions::start(
            &mut plan,
            &shared,
            rrd.as_ref().map(|(w, _)| w),
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
        let mut rrd_threads: Vec<JoinHandle<()>> = Vec::new();
        let rrd_plan = fingerprint(&plan.rrd);
        let rrd = rrd.map(|(writer, thread)| {
            rrd_threads.push(thread);
            writer
        });
        // The collector stops when ingest has stopped and the channel is drained.
        let mut collector =
            tokio::spawn(collector.run_controlled(sample_rx, refusal_rx, control_rx));

        let (sender, sender_stop) = start_sender(&plan, &shared);
        let own_status = own_status::OwnStatusTask::start(
            &mut plan,
            &shared,
            rrd.as_ref().map(RrdWriter::probe),
            &cancel,
        );
        // A web problem never stops the bridge.
        let web_stop = cancel.child_token();
        let sources = web::Sources {
            stages: Arc::new(watched_stages(
                sample_tx_held.downgrade(),
                rrd_probe,
                &shared,
            )),
            ..shared.web_sources()
        };
        let web = web::start(&plan.web, sources, web_stop.clone()).await;

        info!(brokers = plan.brokers.len(), tests = test_count, xymond = %plan.xymon.server, "bridge running");
        let mut running = reload::Running {
            shape,
            xymon: fingerprint(&plan.xymon),
            limits: reload::store_limits(&plan),
            rrd_plan,
            rrd,
            rrd_threads,
            sessions,
            snapshots,
            control: control_tx,
            sender,
            sender_stop,
            retired_senders: Vec::new(),
            web,
            web_stop,
            samples: sample_tx_held.downgrade(),
            shared: shared.clone(),
            discovery,
            own_status,
            cancel: cancel.clone(),
        };
        // Every stage has what it needs; the rest of the plan (for 100k topics, megabytes) is not kept.
        drop(plan);

        // Until the stop signal, no stage ends: ingest retries its broker for ever, the collector runs
        // while ingest does, the sender until told to stop. One that ends anyway has panicked (a bug).
        // The bridge then stops with an error rather than run on half-working (web up, every test going
        // purple), so that systemd restarts it (`Restart=on-failure`). After the signal, ingest and then
        // the collector end by design, which is not a failure. A session a reload stopped is not one.
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
        let failed = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break None,
                Some(new) = reloads.recv() => running.reload(new).await,
                Some(r) = running.sessions.join_next() => {
                    if let Some(r) = r {
                        break ended("MQTT ingest", r);
                    }
                }
                r = running.discovery.join_next() => break ended("Home Assistant discovery", r),
                r = &mut collector => {
                    collector_done = true;
                    break ended("the collector", r);
                }
                r = &mut running.sender => {
                    sender_done = true;
                    break ended("the Xymon sender", r);
                }
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
        running.sessions.stop().await;
        running.discovery.stop().await;
        running.own_status.stop().await;
        if !collector_done {
            if let Err(e) = collector.await {
                warn!(error = %e, "collector ended abnormally");
            }
        }
        let reload::Running {
            snapshots,
            rrd,
            rrd_threads,
            sender,
            sender_stop,
            retired_senders,
            web,
            ..
        } = running;
        // The collector held the last snapshot request sender: the snapshot server ends; sessions still
        // running are abandoned (their values are in the broker).
        snapshots.abort();
        // The collector held the last RrdWriter handle (with ours): the worker now drains its queue and
        // exits.
        drop(rrd);
        for thread in rrd_threads {
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
        for old in retired_senders {
            let _ = old.await;
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

/// `run`, applying each plan that comes on `reloads` (see `Bridge::run_reloadable`).
pub async fn run_reloadable(
    plan: Plan,
    cancel: CancellationToken,
    reloads: mpsc::Receiver<Plan>,
) -> anyhow::Result<()> {
    Bridge::new(plan).run_reloadable(cancel, reloads).await
}

/// The Xymon sender for the plan's `[xymon]`, and its stop token.
fn start_sender(plan: &Plan, shared: &Shared) -> (tokio::task::JoinHandle<()>, CancellationToken) {
    let stop = CancellationToken::new();
    let sender = tokio::spawn(xymon::run(
        xymon::SenderConfig {
            addr: plan.xymon.server.clone(),
            timeout: plan.xymon.timeout,
            combo_max: plan.xymon.combo_max,
            drain_deadline: DRAIN_DEADLINE,
        },
        shared.outbox.clone(),
        shared.metrics.clone(),
        stop.clone(),
    ));
    (sender, stop)
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
    queue: mpsc::WeakSender<Sample>,
    rrd: Option<RrdProbe>,
    shared: &Shared,
) -> Vec<web::Stage> {
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
