//! The collector: groups samples into rounds per test and turns each closed round into a status.
//!
//! Fed by the MQTT ingest tasks (`Sample`s over a bounded channel) and by its own timers (round windows,
//! periodic ticks aligned to the wall clock); writes statuses into the `Outbox` and broker counters to the
//! RRD writer. One task owns all test state, so there are no locks here; the pure parts are `round` and
//! `crate::status`.

pub mod round;
mod schedule;

use crate::config::{Mode, TestConfig, TestKind};
use crate::metrics::{Metrics, ReasonLabel};
use crate::mqtt::Sample;
use crate::status::{self, Context, Counters};
use crate::store::{BrokerId, Store};
use crate::xymon::{Colour, Outbox, Status};
use round::{Offer, Reading, Round};
use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use schedule::{Timer, TimerKind, Timers};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Delay before the first periodic snapshot after start-up, so the broker connection is up; after it the
/// ticks are aligned to the wall clock like the seed's `Wait`.
const FIRST_TICK_DELAY: Duration = Duration::from_secs(2);

/// Receives the broker counters of each broker-stats snapshot (the RRD writer, in production).
pub type CountersSink = Box<dyn FnMut(&TestConfig, &Counters) + Send>;

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
    /// Per broker: topics subscribed for good (continuous tests); never unsubscribed by periodic rounds.
    permanent: Vec<HashSet<String>>,
    /// Per broker: topics subscribed for open periodic rounds, with the number of rounds using them.
    temporary: Vec<HashMap<String, usize>>,
    clients: Vec<AsyncClient>,
    timers: Timers,
    store: Store,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    max_value_chars: usize,
    counters_sink: Option<CountersSink>,
}

/// Topic subscriptions the MQTT tasks need, derived from the tests.
pub struct Subscriptions {
    /// Per broker: subscribed on every ConnAck.
    pub permanent: Vec<Vec<(String, QoS)>>,
    /// Per broker: every topic some test reads (continuous or periodic).
    pub wanted: Vec<HashSet<String>>,
}

/// Works out, per broker, what to subscribe to for good and which topics to forward to the collector.
pub fn subscriptions(tests: &[(TestConfig, BrokerId)], brokers: usize) -> Subscriptions {
    let mut permanent: Vec<HashMap<String, QoS>> = vec![HashMap::new(); brokers];
    let mut wanted = vec![HashSet::new(); brokers];
    for (t, b) in tests {
        for topic in t.topic_list() {
            if t.mode() == Mode::Continuous {
                let q = permanent[*b].entry(topic.clone()).or_insert(t.qos());
                if (t.qos() as u8) > (*q as u8) {
                    *q = t.qos();
                }
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
        clients: Vec<AsyncClient>,
        store: Store,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
        max_value_chars: usize,
        counters_sink: Option<CountersSink>,
    ) -> Collector {
        let brokers = clients.len();
        let subs = subscriptions(&tests, brokers);
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
        Collector {
            slots,
            routes,
            permanent: subs
                .permanent
                .iter()
                .map(|v| v.iter().map(|(t, _)| t.clone()).collect())
                .collect(),
            temporary: vec![HashMap::new(); brokers],
            clients,
            timers: Timers::default(),
            store,
            outbox,
            metrics,
            max_value_chars,
            counters_sink,
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

    /// Periodic tick: subscribe to the test's topics so the broker replays their retained values, and open
    /// a round that closes when all have arrived or the window ends (then we unsubscribe again, so the
    /// broker's $SYS counters see no more traffic from us than from the seed's short-lived sessions).
    fn start_snapshot(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        if slot.round.is_some() {
            return;
        }
        let broker = slot.broker;
        let connected = self
            .store
            .brokers()
            .get(broker)
            .map(|b| (b.connected, b.last_error.clone()));
        if let Some((false, error)) = connected {
            let status = broker_down_status(&slot.cfg, error.as_deref());
            self.outbox.put(status);
            return;
        }
        let qos = slot.cfg.qos();
        let mut new = Vec::new();
        for topic in &slot.topics {
            let n = self.temporary[broker].entry(topic.clone()).or_insert(0);
            *n += 1;
            new.push(SubscribeFilter::new(topic.clone(), qos));
        }
        if let Err(e) = self.clients[broker].try_subscribe_many(new) {
            warn!(test = %slot.cfg.test, error = %e, "cannot subscribe for the periodic snapshot");
        }
        let r = Round::open(slot.topics.len(), now, SystemTime::now(), slot.cfg.window);
        self.timers.push(Timer {
            at: r.deadline,
            test,
            kind: TimerKind::Window(slot.generation),
        });
        slot.round = Some(r);
    }

    fn close_round(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        let Some(round) = slot.round.take() else {
            return;
        };
        slot.generation += 1;
        let closed = round.close(now);
        let broker = slot.broker;
        if slot.cfg.mode() == Mode::Periodic {
            for topic in &slot.topics {
                if let Some(n) = self.temporary[broker].get_mut(topic) {
                    *n -= 1;
                    if *n == 0 {
                        self.temporary[broker].remove(topic);
                        if !self.permanent[broker].contains(topic) {
                            let _ = self.clients[broker].try_unsubscribe(topic.clone());
                        }
                    }
                }
            }
        }
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
                let (status, counters) =
                    status::broker_stats_status(&slot.cfg, &closed, slot.counters.as_ref(), &ctx);
                if let Some(sink) = self.counters_sink.as_mut() {
                    sink(&slot.cfg, &counters);
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
