//! The collector: groups samples into rounds per test and turns each closed round into a status.
//!
//! Fed by the MQTT ingest tasks (`Sample`s over a bounded channel) and by its own timers (round windows,
//! periodic ticks aligned to the wall clock); writes statuses into the `Outbox` and broker counters to the
//! RRD writer. One task owns all test state, so there are no locks here; the pure parts are `round` and
//! `crate::status`.

pub mod graphs;
pub mod round;
mod route_table;
mod schedule;

use crate::config::{HostName, Mode, TestConfig, TestKind, TestName, TopicName};
use crate::metrics::{Metrics, ReasonLabel};
use crate::mqtt::Sample;
use crate::mqtt::{self, Connection, Fetched};
use crate::rules::RuleState;
use crate::status::{self, Context, Counters};
use crate::store::{BrokerId, RouteId, Store};
use crate::xymon::{Colour, Outbox};
use round::{Offer, Reading, Round};
pub use route_table::{Route, RouteTable};
use rumqttc::QoS;
use schedule::{Timer, TimerKind, Timers};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Delay before the first periodic snapshot after start-up, so the broker connection is up; after it the
/// ticks are aligned to the wall clock like the seed's `Wait`.
const FIRST_TICK_DELAY: Duration = Duration::from_secs(2);

/// One test's runtime state.
struct Slot {
    cfg: TestConfig,
    /// The config's list, shared with the web layer.
    topics: Arc<[TopicName]>,
    broker: BrokerId,
    round: Option<Round>,
    /// Bumped whenever a round closes, so stale window timers are ignored.
    generation: u64,
    /// Broker-stats: the previous snapshot, for rates.
    counters: Option<Counters>,
}

pub struct Collector {
    slots: Vec<Slot>,
    /// Per broker, by `RouteId`: the (slot, topic index) pairs an exact topic feeds (`Routing`).
    routes: Vec<RouteTable>,
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
    /// Rule tests (issue 5), indexed by the `test` field of their sweep timers.
    rules: Vec<RuleSlot>,
    /// Per broker: indices into `rules`.
    rule_routes: Vec<Vec<usize>>,
    rule_rrd: Option<crate::rrd::RrdWriter>,
    log_limit: crate::log_limit::LogLimiter,
}

/// One rule test's runtime state.
struct RuleSlot {
    state: RuleState,
    /// The config's test index, for log lines.
    index: usize,
}

/// A periodic snapshot that has finished (or failed to reach its broker).
struct SnapshotDone {
    test: usize,
    generation: u64,
    result: Result<Vec<Fetched>, String>,
}

/// Where each wanted topic goes: built once at start-up from the tests, shared by ingest (`wanted`, and
/// the exact topics registered in the store) and the collector (`routes`).
pub struct Routing {
    /// Per broker: the rule filters to forward, and the subscriptions (filters and exact topics).
    pub wanted: Vec<mqtt::Wanted>,
    /// Per broker, by `RouteId`: the (slot, index of the topic in that slot's test) pairs an exact topic
    /// feeds.
    pub routes: Vec<RouteTable>,
}

/// Works out, per broker, what to subscribe to for good and which topics go to which test, and registers
/// every exact topic in `store` (which numbers their routes: see `Store::register`). Periodic tests are
/// absent: they use short-lived snapshot sessions. Slots are numbered as `Collector::new` numbers them:
/// the non-rule tests, in config order. Call it once, before ingest starts.
pub fn routing(tests: &[(TestConfig, BrokerId)], brokers: usize, store: &Store) -> Routing {
    let mut wanted = vec![mqtt::Wanted::default(); brokers];
    let mut routes = vec![RouteTable::default(); brokers];
    /// The route of `topic` on broker `b`, registered on first use; the subscription takes the highest
    /// QoS.
    fn want(
        store: &Store,
        b: BrokerId,
        wanted: &mut mqtt::Wanted,
        topic: Arc<str>,
        qos: QoS,
    ) -> Option<RouteId> {
        let Some(route) = store.register(b, topic.clone()) else {
            // Only a topic the store already had from a message; routing runs before ingest.
            warn!(topic = %topic, "topic not registered; it will not be subscribed");
            return None;
        };
        wanted.want_exact(route, qos);
        Some(route)
    }
    let mut filters: Vec<Vec<(crate::rules::filter::TopicFilter, QoS)>> = vec![Vec::new(); brokers];
    let mut slot = 0u32;
    for (t, b) in tests {
        if t.kind == TestKind::Rule {
            // Validated at load time, so compile cannot fail here; a failure would only drop the rule.
            if let Ok(rule) = crate::rules::Rule::compile(t) {
                if rule.filter.is_exact() {
                    want(
                        store,
                        *b,
                        &mut wanted[*b],
                        Arc::from(rule.filter.as_str()),
                        t.qos(),
                    );
                } else {
                    filters[*b].push((rule.filter, t.qos()));
                }
            }
            continue;
        }
        if t.mode() == Mode::Continuous {
            for (j, topic) in t.topic_list().iter().enumerate() {
                if let Some(r) = want(store, *b, &mut wanted[*b], topic.shared(), t.qos()) {
                    routes[*b].push(r, (slot, j as u32));
                }
            }
        }
        slot += 1;
    }
    for (b, list) in filters.into_iter().enumerate() {
        for (filter, qos) in list {
            let sub = filter.subscription();
            match wanted[b]
                .filter_subscriptions
                .iter_mut()
                .find(|(s, _)| *s == sub)
            {
                Some((_, q)) if (qos as u8) > (*q as u8) => *q = qos,
                Some(_) => {}
                None => wanted[b].filter_subscriptions.push((sub, qos)),
            }
            wanted[b].filters.push(filter);
        }
    }
    for r in &mut routes {
        r.shrink_to_fit();
    }
    for w in &mut wanted {
        w.exact_qos.shrink_to_fit();
    }
    store.shrink_to_fit();
    Routing { wanted, routes }
}

impl Collector {
    /// `routes` is `Routing::routes` for the same `tests`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tests: Vec<(TestConfig, BrokerId)>,
        routes: Vec<RouteTable>,
        connections: Vec<Connection>,
        store: Store,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
        max_value_chars: usize,
        graphs: Option<graphs::BrokerGraphs>,
    ) -> Collector {
        let brokers = connections.len();
        let mut slots = Vec::with_capacity(tests.len());
        let mut rules = Vec::new();
        let mut rule_routes = vec![Vec::new(); brokers];
        let start = Instant::now();
        for (i, (cfg, broker)) in tests.into_iter().enumerate() {
            if cfg.kind == TestKind::Rule {
                // Validated at load time; a rule that does not compile is left out (and logged).
                match crate::rules::Rule::compile(&cfg) {
                    Ok(rule) => {
                        rule_routes[broker].push(rules.len());
                        rules.push(RuleSlot {
                            state: RuleState::new(rule, start),
                            index: i,
                        });
                    }
                    Err((key, msg)) => warn!(test = i, key, msg, "rule left out"),
                }
                continue;
            }
            let topics = cfg.topic_list();
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
            rules,
            rule_routes,
            rule_rrd: None,
            log_limit: crate::log_limit::LogLimiter::new(Duration::from_secs(60)),
        }
    }

    /// Gives rule tests with `rrd = true` values the RRD writer (whose defs have their `<test>.<value>`
    /// layouts, see `rule_rrd_names`).
    pub fn with_rule_rrd(mut self, writer: crate::rrd::RrdWriter) -> Collector {
        self.rule_rrd = Some(writer);
        self
    }

    /// Runs until the sample channel closes (every ingest task has stopped) or `cancel` fires, then closes
    /// the open rounds so nothing already received is lost.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Sample>, cancel: CancellationToken) {
        let start = Instant::now();
        for (r, slot) in self.rules.iter().enumerate() {
            self.timers.push(Timer {
                at: start + slot.state.rule.sweep_period(),
                test: r,
                kind: TimerKind::Sweep,
            });
        }
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
        // Only continuous rounds hold values that exist nowhere else. A periodic snapshot still in flight
        // is simply abandoned: its values are in the broker (retained) and in the store, and closing it
        // now would report its topics as missing.
        for i in 0..self.slots.len() {
            if self.slots[i].round.is_some() && self.slots[i].cfg.mode() == Mode::Continuous {
                self.close_round(i, now);
            }
        }
    }

    fn on_sample(&mut self, s: Sample) {
        if self
            .rule_routes
            .get(s.broker)
            .is_some_and(|r| !r.is_empty())
        {
            self.on_rule_sample(&s);
        }
        // A copy of the (slot, index) pairs frees the borrow of self.routes; it is inline (no allocation)
        // for a topic that feeds one test.
        let Some(route) = s.route.and_then(|r| self.routes.get(s.broker)?.get(r)) else {
            return;
        };
        let now = Instant::now();
        for (test, idx) in route {
            let (test, idx) = (test as usize, idx as usize);
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
            TimerKind::Sweep => {
                self.sweep(t.test, now);
                let period = self.rules[t.test].state.rule.sweep_period();
                self.timers.push(Timer {
                    at: now + period,
                    test: t.test,
                    kind: TimerKind::Sweep,
                });
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
        let topics = slot.topics.iter().map(TopicName::shared).collect();
        let (qos, window) = (slot.cfg.qos(), slot.cfg.window);
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
                        if let Some(idx) = slot.topics.iter().position(|t| **t == *f.topic) {
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
                self.outbox.put(status::broker_down_status(
                    &slot.cfg,
                    Some(&reason),
                    SystemTime::now(),
                ));
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
            // Rule tests have no rounds (see `on_rule_sample`).
            TestKind::Rule => return,
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

impl Collector {
    /// Routes a sample to every rule of its broker whose filter matches.
    fn on_rule_sample(&mut self, s: &Sample) {
        let now = Instant::now();
        let wall = SystemTime::now();
        for k in 0..self.rule_routes[s.broker].len() {
            let r = self.rule_routes[s.broker][k];
            let slot = &mut self.rules[r];
            let Ok(caps) = slot.state.rule.filter.match_topic(&s.topic) else {
                continue;
            };
            match slot
                .state
                .offer(&s.topic, caps, &s.payload, s.retained, now, wall)
            {
                Err(skip) => {
                    self.metrics.count_drop(skip.reason());
                    self.metrics
                        .rule_refused
                        .get_or_create(&crate::metrics::RuleLabel {
                            rule: slot.state.rule.filter.to_string(),
                            reason: skip.reason().to_string(),
                        })
                        .inc();
                    let key = format!("rule{}:{}", slot.index, skip.reason());
                    if self.log_limit.allow(&key) {
                        warn!(test = slot.index, rule = %slot.state.rule.filter, topic = %crate::rules::short(&s.topic, 200), "{skip}; message skipped (logged once a minute per rule and reason)");
                    }
                }
                Ok(offered) => {
                    if offered.created {
                        debug!(host = %offered.key.0, test = %offered.key.1, "rule instance created");
                    }
                    if let Some(w) = &self.rule_rrd {
                        for (j, v) in &offered.numbers {
                            let value = &slot.state.rule.values[*j];
                            if !value.rrd {
                                continue;
                            }
                            let sample = crate::rrd::RrdSample {
                                host: offered.key.0.to_string(),
                                rrd: format!("{}.{}", offered.key.1, value.name),
                                time: wall
                                    .duration_since(SystemTime::UNIX_EPOCH)
                                    .map(|d| d.as_secs() as i64)
                                    .unwrap_or(0),
                                values: vec![*v],
                            };
                            if !w.submit(sample) {
                                self.metrics.count_drop("rrd_queue_full");
                            }
                        }
                    }
                    self.send_rule(r, &offered.key, now, wall);
                }
            }
        }
    }

    /// Sends an instance's status when its colour changed since the last one, or `interval` has passed.
    fn send_rule(&mut self, r: usize, key: &(HostName, TestName), now: Instant, wall: SystemTime) {
        let slot = &mut self.rules[r];
        let rule = &slot.state.rule;
        let Some(inst) = slot.state.instances.get_mut(key) else {
            return;
        };
        let lines = inst.evaluate(rule, now, wall);
        let colour = crate::rules::Instance::colour(&lines);
        let due = inst.last_sent.is_none_or(|t| now >= t + rule.interval);
        if inst.sent_colour == Some(colour) && !due {
            return;
        }
        let mut status = status::rule_status(rule, inst, &lines, wall, self.max_value_chars);
        if let Some(w) = &self.rule_rrd {
            for v in rule.values.iter().filter(|v| v.rrd) {
                let rrd = format!("{}.{}", inst.test, v.name);
                if let Some(e) = w.health(inst.host.as_str(), &rrd) {
                    status.colour = status.colour.worst(Colour::Yellow);
                    status.body.push_str(&format!(
                        "&yellow RRD {rrd}.rrd: {}\n",
                        crate::xymon::sanitize::untrusted(&e, 500, "    ")
                    ));
                }
            }
        }
        inst.last_sent = Some(now);
        inst.sent_colour = Some(colour);
        debug!(test = %status.key(), colour = %status.colour, "rule status built");
        self.outbox.put(status);
    }

    /// Re-evaluates every instance of rule `r` (staleness, due re-sends) and reports expected hosts that
    /// have not published.
    fn sweep(&mut self, r: usize, now: Instant) {
        let wall = SystemTime::now();
        let keys: Vec<(HostName, TestName)> =
            self.rules[r].state.instances.keys().cloned().collect();
        for key in keys {
            self.send_rule(r, &key, now, wall);
        }
        let st = &mut self.rules[r].state;
        let grace = st.rule.min_expire.unwrap_or(st.rule.interval);
        let due = st.expect_sent.is_none_or(|t| now >= t + st.rule.interval);
        if st.rule.expect.is_empty() || now < st.started + grace || !due {
            return;
        }
        let Ok(test) = TestName::try_from(st.rule.test.as_str().to_string()) else {
            return;
        };
        let since = now.saturating_duration_since(st.started);
        for host in st.missing_expected() {
            self.outbox.put(status::expected_missing_status(
                &st.rule, host, &test, since, wall,
            ));
        }
        st.expect_sent = Some(now);
    }
}

#[cfg(test)]
mod tests;
