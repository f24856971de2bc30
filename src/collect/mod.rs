//! The collector: groups samples into rounds per test and turns each closed round into a status.
//!
//! Fed by the MQTT ingest tasks (`Sample`s over a bounded channel) and by its own timers (round windows,
//! periodic ticks aligned to the wall clock); writes statuses into the `Outbox` and broker counters to the
//! RRD writer. One task owns all test state, so there are no locks here; the pure parts are `round` and
//! `crate::status`.

pub mod graphs;
pub mod round;
mod schedule;

use crate::config::{Mode, TestConfig, TestKind};
use crate::metrics::{Metrics, ReasonLabel};
use crate::mqtt::Sample;
use crate::mqtt::{self, Connection, Fetched};
use crate::status::{self, Context, Counters};
use crate::store::{BrokerId, Store};
use crate::xymon::{Colour, Outbox, Status};
use round::{Offer, Reading, Round};
use rumqttc::QoS;
use schedule::{Timer, TimerKind, Timers};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Delay before the first periodic snapshot after start-up, so the broker connection is up; after it the
/// ticks are aligned to the wall clock like the seed's `Wait`.
const FIRST_TICK_DELAY: Duration = Duration::from_secs(2);

/// One test's runtime state.
struct Slot {
    cfg: TestConfig,
    topics: Vec<String>,
    broker: BrokerId,
    round: Option<Round>,
    /// Bumped whenever a round closes, so stale window timers are ignored.
    generation: u64,
    /// Broker-stats: the previous snapshot, for rates.
    counters: Option<Counters>,
}

pub struct Collector {
    slots: Vec<Slot>,
    /// Per broker: topic → (test, index of the topic in that test).
    routes: Vec<HashMap<String, Vec<(usize, usize)>>>,
    /// Per broker: how to open a snapshot session.
    connections: Vec<Connection>,
    /// Finished periodic snapshots come back here.
    snapshots_tx: mpsc::Sender<SnapshotDone>,
    snapshots_rx: mpsc::Receiver<SnapshotDone>,
    timers: Timers,
    store: Store,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    max_value_chars: usize,
    graphs: Option<graphs::BrokerGraphs>,
}

/// A periodic snapshot that has finished (or failed to reach its broker).
struct SnapshotDone {
    test: usize,
    generation: u64,
    result: Result<Vec<Fetched>, String>,
}

/// Topic subscriptions the MQTT tasks need, derived from the tests.
pub struct Subscriptions {
    /// Per broker: subscribed on every ConnAck (the topics of continuous tests, at the highest QoS any
    /// test asks for).
    pub permanent: Vec<Vec<(String, QoS)>>,
    /// Per broker: the topics to forward to the collector.
    pub wanted: Vec<HashSet<String>>,
}

/// Works out, per broker, what to subscribe to for good and which topics to forward to the collector.
/// Periodic tests are absent: they use short-lived snapshot sessions.
pub fn subscriptions(tests: &[(TestConfig, BrokerId)], brokers: usize) -> Subscriptions {
    let mut permanent: Vec<HashMap<String, QoS>> = vec![HashMap::new(); brokers];
    let mut wanted = vec![HashSet::new(); brokers];
    for (t, b) in tests.iter().filter(|(t, _)| t.mode() == Mode::Continuous) {
        for topic in t.topic_list() {
            let q = permanent[*b].entry(topic.clone()).or_insert(t.qos());
            if (t.qos() as u8) > (*q as u8) {
                *q = t.qos();
            }
            wanted[*b].insert(topic);
        }
    }
    let permanent = permanent
        .into_iter()
        .map(|m| {
            let mut v: Vec<_> = m.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        })
        .collect();
    Subscriptions { permanent, wanted }
}

impl Collector {
    pub fn new(
        tests: Vec<(TestConfig, BrokerId)>,
        connections: Vec<Connection>,
        store: Store,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
        max_value_chars: usize,
        graphs: Option<graphs::BrokerGraphs>,
    ) -> Collector {
        let brokers = connections.len();
        let mut routes: Vec<HashMap<String, Vec<(usize, usize)>>> = vec![HashMap::new(); brokers];
        let mut slots = Vec::with_capacity(tests.len());
        for (i, (cfg, broker)) in tests.into_iter().enumerate() {
            let topics = cfg.topic_list();
            for (j, topic) in topics.iter().enumerate() {
                routes[broker]
                    .entry(topic.clone())
                    .or_default()
                    .push((i, j));
            }
            slots.push(Slot {
                cfg,
                topics,
                broker,
                round: None,
                generation: 0,
                counters: None,
            });
        }
        // One snapshot per periodic test can be in flight.
        let (snapshots_tx, snapshots_rx) = mpsc::channel(slots.len().max(1));
        Collector {
            slots,
            routes,
            connections,
            snapshots_tx,
            snapshots_rx,
            timers: Timers::default(),
            store,
            outbox,
            metrics,
            max_value_chars,
            graphs,
        }
    }

    /// Runs until the sample channel closes (every ingest task has stopped) or `cancel` fires, then closes
    /// the open rounds so nothing already received is lost.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Sample>, cancel: CancellationToken) {
        let start = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].cfg.mode() == Mode::Periodic {
                self.timers.push(Timer {
                    at: start + FIRST_TICK_DELAY,
                    test: i,
                    kind: TimerKind::Tick,
                });
            }
        }
        let sleep = tokio::time::sleep_until(start + Duration::from_secs(86_400 * 365));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let next = self.timers.next_at();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                armed = next;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                s = samples.recv() => match s {
                    Some(s) => {
                        self.on_sample(s);
                        // Take what is already queued without going back through select!.
                        let mut n = 0;
                        while let Ok(s) = samples.try_recv() {
                            self.on_sample(s);
                            n += 1;
                            if n == 1024 { break; }
                        }
                    }
                    None => break,
                },
                Some(done) = self.snapshots_rx.recv() => self.on_snapshot(done),
                _ = &mut sleep, if armed.is_some() => {
                    armed = None;
                    let now = Instant::now();
                    while let Some(t) = self.timers.pop_due(now) {
                        self.on_timer(t, now);
                    }
                }
            }
        }
        // Whatever is still queued was accepted from the broker: process it, then close open rounds.
        samples.close();
        while let Some(s) = samples.recv().await {
            self.on_sample(s);
        }
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].round.is_some() {
                self.close_round(i, now);
            }
        }
    }

    fn on_sample(&mut self, s: Sample) {
        let Some(route) = self.routes.get(s.broker).and_then(|r| r.get(&s.topic)) else {
            return;
        };
        let now = Instant::now();
        // Cloning the (test, index) list is cheaper than fighting the borrow of self.routes.
        for (test, idx) in route.clone() {
            let slot = &mut self.slots[test];
            let reading = Reading {
                payload: s.payload.clone(),
                retained: s.retained,
                at: s.at,
            };
            if slot.round.is_none() {
                match slot.cfg.mode() {
                    // A retained message on a continuous test is the broker replaying an old value on
                    // (re)subscribe: it is in the store, but it must not pass for a fresh round.
                    Mode::Continuous if s.retained => continue,
                    Mode::Continuous => {
                        let r =
                            Round::open(slot.topics.len(), now, SystemTime::now(), slot.cfg.window);
                        self.timers.push(Timer {
                            at: r.deadline,
                            test,
                            kind: TimerKind::Window(slot.generation),
                        });
                        slot.round = Some(r);
                        debug!(test = %slot.cfg.test, host = %slot.cfg.host, "round opened");
                    }
                    // Outside a snapshot, periodic tests only need the store.
                    Mode::Periodic => continue,
                }
            }
            let Some(round) = slot.round.as_mut() else {
                continue;
            };
            if round.offer(idx, reading) == Offer::Complete {
                self.close_round(test, now);
            }
        }
    }

    fn on_timer(&mut self, t: Timer, now: Instant) {
        match t.kind {
            TimerKind::Window(generation) => {
                if self.slots[t.test].generation == generation && self.slots[t.test].round.is_some()
                {
                    self.close_round(t.test, now);
                }
            }
            TimerKind::Tick => {
                self.start_snapshot(t.test, now);
                let interval = self.slots[t.test].cfg.interval();
                let at = now + schedule::until_next_aligned(SystemTime::now(), interval);
                self.timers.push(Timer {
                    at,
                    test: t.test,
                    kind: TimerKind::Tick,
                });
            }
        }
    }

    /// Periodic tick: fetch the retained values in a short-lived session (see `mqtt::snapshot`) on a task
    /// of its own; the result comes back as a `SnapshotDone`.
    fn start_snapshot(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        if slot.round.is_some() {
            return;
        }
        let r = Round::open(slot.topics.len(), now, SystemTime::now(), slot.cfg.window);
        slot.round = Some(r);
        let conn = self.connections[slot.broker].clone();
        let done = self.snapshots_tx.clone();
        let (topics, qos, window) = (slot.topics.clone(), slot.cfg.qos(), slot.cfg.window);
        let (broker, store, generation) = (slot.broker, self.store.clone(), slot.generation);
        tokio::spawn(async move {
            let result = mqtt::snapshot(conn, topics, qos, window, broker, store).await;
            let _ = done
                .send(SnapshotDone {
                    test,
                    generation,
                    result,
                })
                .await;
        });
    }

    fn on_snapshot(&mut self, done: SnapshotDone) {
        let now = Instant::now();
        let slot = &mut self.slots[done.test];
        if slot.generation != done.generation {
            return;
        }
        match done.result {
            Ok(values) => {
                if let Some(round) = slot.round.as_mut() {
                    for f in values {
                        if let Some(idx) = slot.topics.iter().position(|t| *t == f.topic) {
                            round.offer(
                                idx,
                                Reading {
                                    payload: f.payload,
                                    retained: f.retained,
                                    at: f.at,
                                },
                            );
                        }
                    }
                }
                self.close_round(done.test, now);
            }
            Err(reason) => {
                slot.round = None;
                slot.generation += 1;
                debug!(test = %slot.cfg.test, %reason, "snapshot failed");
                self.outbox
                    .put(broker_down_status(&slot.cfg, Some(&reason)));
            }
        }
    }

    fn close_round(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        let Some(round) = slot.round.take() else {
            return;
        };
        slot.generation += 1;
        let closed = round.close(now);
        let broker = slot.broker;
        let outcome = if closed.is_complete() {
            "complete"
        } else {
            "incomplete"
        };
        self.metrics
            .rounds
            .get_or_create(&ReasonLabel {
                reason: outcome.into(),
            })
            .inc();
        let store = &self.store;
        let topics = &slot.topics;
        let last_known = |i: usize| store.get(broker, &topics[i]);
        let ctx = Context {
            now: SystemTime::now(),
            max_value_chars: self.max_value_chars,
            last_known: &last_known,
        };
        let status = match slot.cfg.kind {
            TestKind::Topics => status::topics_status(&slot.cfg, topics, &closed, &ctx),
            TestKind::BrokerStats => {
                let (mut status, counters) =
                    status::broker_stats_status(&slot.cfg, &closed, slot.counters.as_ref(), &ctx);
                if let Some(g) = &self.graphs {
                    g.record(&slot.cfg, &counters);
                    // Health of earlier updates (the writer works asynchronously): a bad RRD file makes
                    // this status yellow, every other test is unaffected.
                    for problem in g.problems(&slot.cfg) {
                        status.colour = status.colour.worst(Colour::Yellow);
                        status.body.push_str(&format!(
                            "&yellow RRD {}\n",
                            crate::xymon::sanitize::untrusted(&problem, 500, "    ")
                        ));
                    }
                }
                slot.counters = Some(counters);
                status
            }
        };
        debug!(test = %status.key(), colour = %status.colour, "status built");
        self.outbox.put(status);
    }
}

/// A periodic test whose broker is not connected at snapshot time. For broker-stats that is the news
/// itself (red); for a topics test the values are simply unknown (yellow).
fn broker_down_status(cfg: &TestConfig, error: Option<&str>) -> Status {
    let colour = match cfg.kind {
        TestKind::BrokerStats => Colour::Red,
        TestKind::Topics => Colour::Yellow,
    };
    let reason = error
        .map(|e| format!(": {}", crate::xymon::sanitize::untrusted(e, 300, "    ")))
        .unwrap_or_default();
    Status {
        host: cfg.host.clone(),
        test: cfg.test.clone(),
        colour,
        lifetime: cfg.lifetime(),
        summary: format!(
            "{} broker {} is not connected",
            status::timestamp(SystemTime::now()),
            cfg.broker
        ),
        body: format!(
            "\n&{colour} Cannot reach MQTT broker {}{reason}\n",
            cfg.broker
        ),
    }
}
