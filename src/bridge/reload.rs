//! A reload in the running bridge: a new plan applied stage by stage, without a restart.
//!
//! Fed by `Bridge::run_reloadable` with each plan the CLI compiled on SIGHUP (an invalid config never
//! gets here: the CLI logs it and the bridge runs on). The order keeps every sample counted once:
//! 1. the RRD writer for the new plan is started first when its settings changed (a failure refuses the
//!    reload, with nothing changed yet);
//! 2. every ingest session is held between two messages (`mqtt::steer`);
//! 3. the store renumbers its topics for the new plan, values kept (`Store::replan`);
//! 4. the collector takes the new plan in order with the samples, the state of unchanged tests kept
//!    (`collect::Reload`);
//! 5. sessions of unchanged brokers resume with their new id and subscriptions, the others stop, and
//!    new or changed brokers connect;
//!    The Home Assistant discovery sessions restart as a group if what they read changed;
//! 6. the Xymon sender restarts if `[xymon]` changed (the outbox, with pending statuses, stays); the
//!    bridge's own column and the web server restart with the new settings.

use super::{start_rrd_writer, start_sender, watched_stages, Shared, DRAIN_DEADLINE};
use crate::collect::{Control, Refusal, Reload, RouteTable, Sample, SnapshotRequest};
use crate::log_limit::LogLimiter;
use crate::mqtt::steer::{Hold, Retarget};
use crate::mqtt::{self, Connection, Wanted};
use crate::names::BrokerId;
use crate::plan::{fingerprint, BrokerPlan, Plan, Shape};
use crate::rrd::RrdWriter;
use crate::web;
use std::collections::HashSet;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// One broker's session task, as the supervisor steers it.
struct Session {
    steer: mpsc::Sender<Hold>,
    task: Id,
}

/// The ingest sessions, one per broker of the running plan (by `BrokerId`).
pub(super) struct Sessions {
    tasks: JoinSet<()>,
    by_broker: Vec<Session>,
    /// Tasks a reload stopped: their end is not a failure.
    retired: HashSet<Id>,
    shared: Shared,
    /// Until the stop: the collector ends once every sender of its queues is gone.
    samples: Option<mpsc::Sender<Sample>>,
    refusals: Option<mpsc::Sender<Refusal>>,
    /// The sample queue's byte budget (`mqtt::SAMPLE_QUEUE_BYTES`), shared by every session.
    sample_bytes: Arc<Semaphore>,
    log_limit: Arc<LogLimiter>,
    stop: CancellationToken,
}

impl Sessions {
    pub(super) fn new(
        shared: &Shared,
        samples: mpsc::Sender<Sample>,
        refusals: mpsc::Sender<Refusal>,
        stop: CancellationToken,
    ) -> Sessions {
        Sessions {
            tasks: JoinSet::new(),
            by_broker: Vec::new(),
            retired: HashSet::new(),
            shared: shared.clone(),
            samples: Some(samples),
            refusals: Some(refusals),
            sample_bytes: Arc::new(Semaphore::new(mqtt::SAMPLE_QUEUE_BYTES as usize)),
            log_limit: Arc::new(LogLimiter::new(Duration::from_secs(60))),
            stop,
        }
    }

    /// Starts broker `id`'s session (its task connects and subscribes); returns its steering end.
    pub(super) fn open(&mut self, id: BrokerId, b: &BrokerPlan, wanted: Arc<Wanted>) {
        let (Some(samples), Some(refusals)) = (self.samples.clone(), self.refusals.clone()) else {
            return;
        };
        let connection = Connection::new(b);
        let keep = b.session_expiry.is_some();
        let (client, events) = mqtt::open(&connection, connection.client_id.clone(), keep);
        let (steer, steer_rx) = mpsc::channel(1);
        let task = mqtt::BrokerTask {
            id,
            name: b.name.clone(),
            client,
            events,
            wanted,
            reconnect_max: b.reconnect_max,
            keep_alive: b.keep_alive,
            steer: steer_rx,
        };
        let shared = mqtt::Shared {
            store: self.shared.store.clone(),
            samples,
            sample_bytes: self.sample_bytes.clone(),
            refusals,
            metrics: self.shared.metrics.clone(),
            log_limit: self.log_limit.clone(),
        };
        let handle = self.tasks.spawn(mqtt::run(task, shared, self.stop.clone()));
        let session = Session {
            steer,
            task: handle.id(),
        };
        match self.by_broker.get_mut(id) {
            Some(s) => *s = session,
            None => self.by_broker.push(session),
        }
    }

    /// The next session task that ended: `Some` for one that was not retired (a failure before the
    /// stop), `None` for a retired one.
    pub(super) async fn join_next(&mut self) -> Option<Option<Result<(), JoinError>>> {
        let r = self.tasks.join_next_with_id().await?;
        let id = match &r {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        if self.retired.remove(&id) {
            return Some(None);
        }
        Some(Some(r.map(|_| ())))
    }

    /// Stops every session (the stop token) and waits for them; then nothing here holds the collector's
    /// queues.
    pub(super) async fn stop(&mut self) {
        self.stop.cancel();
        self.samples = None;
        self.refusals = None;
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                warn!(error = %e, "MQTT ingest ended abnormally");
            }
        }
    }
}

/// What of the running bridge a reload replaces or steers.
pub(super) struct Running {
    pub(super) shape: Shape,
    /// Fingerprints of the running `[xymon]`, the store's limits (`store_limits`) and RRD plan.
    pub(super) xymon: u64,
    pub(super) limits: u64,
    pub(super) rrd_plan: u64,
    /// The running RRD writer (the collector holds a handle too).
    pub(super) rrd: Option<RrdWriter>,
    /// Every RRD writer thread started, joined at shutdown.
    pub(super) rrd_threads: Vec<JoinHandle<()>>,
    pub(super) sessions: Sessions,
    pub(super) snapshots: tokio::task::JoinHandle<()>,
    pub(super) control: mpsc::Sender<Control>,
    pub(super) sender: tokio::task::JoinHandle<()>,
    pub(super) sender_stop: CancellationToken,
    /// Senders a reload replaced, delivering what they had (bounded by the drain deadline).
    pub(super) retired_senders: Vec<tokio::task::JoinHandle<()>>,
    pub(super) web: Option<tokio::task::JoinHandle<()>>,
    pub(super) web_stop: CancellationToken,
    pub(super) samples: mpsc::WeakSender<Sample>,
    pub(super) shared: Shared,
    pub(super) cancel: CancellationToken,
    pub(super) discovery: super::discovery::DiscoverySessions,
    pub(super) own_status: super::own_status::OwnStatusTask,
}

/// The fingerprint of the limits the store was made with, which a reload does not change.
pub(super) fn store_limits(plan: &Plan) -> u64 {
    let l = &plan.limits;
    fingerprint(&(l.max_topics, l.max_payload_bytes, l.store_bytes))
}

impl Running {
    /// Applies `plan` (see the module's header). Nothing here fails the bridge: a reload that cannot be
    /// applied is logged and the running configuration stays.
    pub(super) async fn reload(&mut self, mut plan: Plan) {
        let shape = Shape::of(&plan);
        let diff = self.shape.diff(&shape);
        let rrd_plan = fingerprint(&plan.rrd);
        let new_rrd = if rrd_plan == self.rrd_plan {
            None
        } else {
            match start_rrd_writer(&plan) {
                Ok(w) => Some(w),
                Err(e) => {
                    error!(config = %plan.path.display(), error = format!("{e:#}"),
                        "configuration not reloaded: the RRD writer cannot start; running on with the previous configuration");
                    return;
                }
            }
        };
        if store_limits(&plan) != self.limits {
            warn!("limits.max_topics, max_payload_bytes or store_bytes changed: the store keeps its limits until the next restart");
        }

        // 2. Hold every session: from here no sample is on its way.
        let mut resumes = Vec::new();
        for s in &self.sessions.by_broker {
            let (held, held_rx) = oneshot::channel();
            let (resume, resume_rx) = oneshot::channel();
            let hold = Hold {
                held,
                resume: resume_rx,
            };
            if s.steer.send(hold).await.is_ok() {
                let _ = held_rx.await;
            }
            resumes.push(Some(resume));
        }

        // 3. The store, renumbered.
        self.shared.store.replan(&plan, &diff.broker_from);
        let routing = std::mem::take(&mut plan.routing);
        let wanted: Vec<Arc<Wanted>> = routing.iter().map(|r| Arc::new(Wanted::new(r))).collect();
        let routes: Vec<RouteTable> = routing.iter().map(|r| RouteTable::new(&r.exact)).collect();
        drop(routing);

        // 4. The collector, with a snapshot server for the new brokers (the old one ends when the
        // collector drops its end; snapshots it started still answer).
        let (snapshot_tx, snapshot_rx) =
            mpsc::channel::<SnapshotRequest>(super::SNAPSHOT_REQUEST_CAPACITY);
        let snapshots = tokio::spawn(mqtt::snapshot::serve(
            snapshot_rx,
            plan.brokers.iter().map(Connection::new).collect(),
            self.shared.store.clone(),
            self.shared.metrics.clone(),
        ));
        let old_snapshots = std::mem::replace(&mut self.snapshots, snapshots);
        drop(old_snapshots);
        let rrd_changed = new_rrd.as_ref().map(|w| w.as_ref().map(|(w, _)| w.clone()));
        let reload = Reload {
            tests: std::mem::take(&mut plan.tests),
            rules: std::mem::take(&mut plan.rules),
            routes,
            test_from: diff.test_from.clone(),
            rule_from: diff.rule_from.clone(),
            broker_from: diff.broker_from.clone(),
            rrd: rrd_changed,
            snapshots: snapshot_tx,
            max_value_chars: plan.limits.max_value_chars,
        };
        let (done, done_rx) = oneshot::channel();
        if self
            .control
            .send(Control::Reload(Box::new(reload), done))
            .await
            .is_ok()
        {
            let _ = done_rx.await;
        }
        if let Some(w) = new_rrd {
            self.rrd = w.map(|(writer, thread)| {
                self.rrd_threads.push(thread);
                writer
            });
            self.rrd_plan = rrd_plan;
        }

        // 5. Sessions: unchanged brokers resume renumbered, the rest stop; new and changed ones open.
        let old = std::mem::take(&mut self.sessions.by_broker);
        let mut kept: Vec<Option<Session>> = old.into_iter().map(Some).collect();
        let mut new_sessions = Vec::with_capacity(plan.brokers.len());
        for (b, broker) in plan.brokers.iter().enumerate() {
            let from = diff.broker_from[b].filter(|_| diff.session_kept[b]);
            let resumed = from.and_then(|o| {
                let session = kept.get_mut(o)?.take()?;
                let resume = resumes.get_mut(o)?.take()?;
                let retarget = Retarget {
                    id: b,
                    wanted: wanted[b].clone(),
                };
                resume.send(retarget).ok().map(|()| session)
            });
            new_sessions.push((b, broker, resumed));
        }
        // The rest of the held sessions: their `resume` is dropped, so they disconnect and end.
        for s in kept.into_iter().flatten() {
            self.sessions.retired.insert(s.task);
        }
        drop(resumes);
        for (b, broker, resumed) in new_sessions {
            match resumed {
                Some(s) => self.sessions.by_broker.push(s),
                None => self.sessions.open(b, broker, wanted[b].clone()),
            }
        }

        self.discovery
            .reload(&mut plan, &self.shared, self.rrd.as_ref())
            .await;

        // 6. The sender, if `[xymon]` changed; the web server, always (its pages list the tests).
        let xymon = fingerprint(&plan.xymon);
        if xymon != self.xymon {
            let (sender, stop) = start_sender(&plan, &self.shared);
            let old = std::mem::replace(&mut self.sender, sender);
            std::mem::replace(&mut self.sender_stop, stop).cancel();
            self.retired_senders.push(old);
            self.xymon = xymon;
        }
        let rrd = self.rrd.as_ref().map(RrdWriter::probe);
        self.own_status
            .restart(&mut plan, &self.shared, rrd, &self.cancel)
            .await;
        self.web_stop.cancel();
        if let Some(web) = self.web.take() {
            if tokio::time::timeout(DRAIN_DEADLINE, web).await.is_err() {
                warn!("the web server did not stop in time for the reload");
            }
        }
        self.web_stop = self.cancel.child_token();
        let sources = web::Sources {
            stages: Arc::new(watched_stages(
                self.samples.clone(),
                self.rrd.as_ref().map(RrdWriter::probe),
                &self.shared,
            )),
            ..self.shared.web_sources()
        };
        self.web = web::start(&plan.web, sources, self.web_stop.clone()).await;
        self.shape = shape;
        info!(config = %plan.path.display(), "configuration reloaded: {diff}");
    }
}
