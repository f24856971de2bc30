//! The collector: groups samples into rounds per test, feeds rule tests, and turns what it gathered into
//! statuses.
//!
//! Fed by the MQTT ingest tasks (`Sample`s over a bounded channel), by the snapshot sessions it asks the
//! MQTT stage for (`SnapshotRequest`), and by its own timers (round windows, periodic ticks aligned to
//! the wall clock, rule sweeps). Writes statuses into the `Outbox` (built by `status`) and values into
//! the RRD writer. One task owns all test state, so there are no locks here.
//!
//! - `topic_tests`: rounds of `topics` and `broker-stats` tests, routed by `RouteTable`.
//! - `rule_tests`: rule instances, their re-sends and sweeps.
//! - `snapshots`: periodic tests' snapshot requests and results.
//! - `outage`: what a broker outage does to its continuous tests and rule instances.
//! - `refusals`: subscriptions the broker refuses, in the statuses of the tests that read them.
//! - `reload`: a reload's new plan taken over, the state of unchanged tests kept.
//! - `round`, `schedule`, `route_table`: the pure parts (a round, the timers, the routes).
//! - `rrd_feed`: what goes to the RRD writer, and its health back into statuses.

mod outage;
mod refusals;
mod reload;
pub mod round;
mod route_table;
mod rrd_feed;
mod rule_tests;
mod schedule;
mod snapshots;
mod topic_tests;

pub use refusals::Refusal;
pub use reload::{Control, Reload};
pub use route_table::{Route, RouteTable};
pub use rrd_feed::BROKER_RRDS;
pub use snapshots::{Fetched, Snapshot, SnapshotError, SnapshotRequest, SnapshotResult};

use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::names::{BrokerId, HostName, RouteId, TestName};
use crate::plan::{RulePlan, TestPlan};
use crate::rrd::RrdWriter;
use crate::store::Store;
use crate::xymon::Outbox;
use bytes::Bytes;
use refusals::Refused;
use rrd_feed::RrdFeed;
use rule_tests::{Owner, RuleSlot};
use schedule::{Timer, TimerKind, Timers};
use snapshots::SnapshotDone;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use topic_tests::Slot;

/// Delay before the first periodic snapshot after start-up, so the broker connection is up; after it the
/// ticks are aligned to the wall clock like submqttm.py's `Wait`.
const FIRST_TICK_DELAY: Duration = Duration::from_secs(2);

/// Snapshot results waiting for the collector; one per periodic test at most is in flight.
const SNAPSHOT_DONE_CAPACITY: usize = 64;

/// Samples taken from the channel in one go before the timers and snapshots get a turn again.
const SAMPLE_BATCH: usize = 1024;

/// How long the rate must stay low after a burst before free memory goes back to the system
/// (`crate::heap::AfterBurst`).
const TRIM_QUIET: Duration = Duration::from_secs(1);

/// A message a test is interested in, on its way from ingest to the collector.
#[derive(Debug)]
pub struct Sample {
    pub broker: BrokerId,
    /// A shared copy of the name, never one per message: the config's for exact topics, the store's for
    /// topics a rule filter matched.
    pub topic: Arc<str>,
    /// The collector's route for an exact (registered) topic; `None` for a topic only a rule filter
    /// matched.
    pub route: Option<RouteId>,
    pub payload: Bytes,
    pub retained: bool,
    pub at: SystemTime,
    /// The payload's share of the byte budget of the queue between ingest and the collector, given
    /// back when the collector has done with the sample (`None` where no budget applies: tests).
    pub queued: Option<OwnedSemaphorePermit>,
}

/// Where the collector's results go.
pub struct Sinks {
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    /// The RRD writer, when the plan writes RRDs (broker-stats tests, rule values with `rrd = true`).
    pub rrd: Option<RrdWriter>,
    /// The MQTT stage opens a snapshot session for each request.
    pub snapshots: mpsc::Sender<SnapshotRequest>,
}

pub struct Collector {
    /// The `topics` and `broker-stats` tests, by slot (the plan's `tests` order).
    slots: Vec<Slot>,
    /// Per broker, by `RouteId`: the (slot, topic index) pairs an exact topic feeds.
    routes: Vec<RouteTable>,
    /// Rule tests, indexed by the `test` field of their sweep timers.
    rules: Vec<RuleSlot>,
    /// Per broker: indices into `rules`.
    rule_routes: Vec<Vec<usize>>,
    /// The host.test pairs known from the config, and who writes each.
    owners: HashMap<(HostName, TestName), Owner>,
    /// Per broker: its outage, while it is disconnected.
    links: Vec<Option<outage::Down>>,
    /// Per broker: how long a disconnect lasts before its tests show it.
    outage_grace: Vec<Duration>,
    /// Numbers outages, for their timers.
    outage_epoch: u64,
    /// Finished periodic snapshots come back here.
    snapshots_tx: mpsc::Sender<SnapshotDone>,
    snapshots_rx: mpsc::Receiver<SnapshotDone>,
    snapshot_requests: mpsc::Sender<SnapshotRequest>,
    timers: Timers,
    store: Store,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    rrd: Option<RrdFeed>,
    /// Subscription filters the brokers refuse.
    refused: Refused,
    max_value_chars: usize,
    log_limit: LogLimiter,
    /// Per reload so far: each test's new index by its old one (`reload`), for snapshot answers.
    reloads: Vec<Vec<Option<usize>>>,
    /// Hands back what a burst of samples left free in malloc, once it has passed.
    trim: crate::heap::AfterBurst,
}

impl Collector {
    /// A collector for the plan's `tests` and `rules`; `routes` has one table per broker, built from the
    /// plan's routing for the same tests.
    pub fn new(
        tests: Vec<TestPlan>,
        rules: Vec<RulePlan>,
        routes: Vec<RouteTable>,
        store: Store,
        sinks: Sinks,
        max_value_chars: usize,
    ) -> Collector {
        let start = Instant::now();
        let owners = rule_tests::configured_owners(&tests, &rules);
        let mut rule_routes = vec![Vec::new(); routes.len()];
        let rules: Vec<RuleSlot> = rules
            .into_iter()
            .enumerate()
            .map(|(r, plan)| {
                if let Some(list) = rule_routes.get_mut(plan.broker) {
                    list.push(r);
                }
                RuleSlot::new(plan, start)
            })
            .collect();
        let (snapshots_tx, snapshots_rx) = mpsc::channel(SNAPSHOT_DONE_CAPACITY);
        let mut outage_grace = vec![outage::OUTAGE_GRACE_MAX; routes.len()];
        for t in tests.iter().filter(|t| !t.is_periodic()) {
            if let Some(g) = outage_grace.get_mut(t.broker) {
                *g = (*g).min(t.config.window);
            }
        }
        let refused = Refused::new(routes.len());
        Collector {
            links: routes.iter().map(|_| None).collect(),
            outage_grace,
            outage_epoch: 0,
            slots: tests.into_iter().map(Slot::new).collect(),
            routes,
            rules,
            rule_routes,
            owners,
            snapshots_tx,
            snapshots_rx,
            snapshot_requests: sinks.snapshots,
            timers: Timers::default(),
            store,
            outbox: sinks.outbox,
            metrics: sinks.metrics,
            rrd: sinks.rrd.map(RrdFeed::new),
            refused,
            max_value_chars,
            log_limit: LogLimiter::new(Duration::from_secs(60)),
            reloads: Vec::new(),
            trim: crate::heap::AfterBurst::default(),
        }
    }

    /// Runs until the sample channel closes (every ingest task has stopped), then processes what is
    /// still queued and closes the open rounds, so nothing already received is lost. `refusals`: the
    /// permanent sessions' refused (and granted again) filters.
    pub async fn run(self, samples: mpsc::Receiver<Sample>, refusals: mpsc::Receiver<Refusal>) {
        self.run_controlled(samples, refusals, mpsc::channel(1).1)
            .await;
    }

    /// `run`, with reloads (`Control`) taken in order with the samples: the supervisor holds ingest
    /// while it sends one, so every sample before it is in the queue already, and it goes after them.
    pub async fn run_controlled(
        mut self,
        mut samples: mpsc::Receiver<Sample>,
        mut refusals: mpsc::Receiver<Refusal>,
        mut control: mpsc::Receiver<Control>,
    ) {
        self.arm_first_timers(Instant::now());
        let sleep = tokio::time::sleep_until(Instant::now() + Duration::from_secs(86_400 * 365));
        tokio::pin!(sleep);
        // One `Notified` at a time, made again only after it fired (not one per turn of the loop); a
        // notification sent while none waits is kept for the next.
        let link_changes = self.store.link_changes();
        let link_changed = link_changes.notified();
        tokio::pin!(link_changed);
        let mut armed: Option<Instant> = None;
        // Looks again `TRIM_QUIET` after a burst was handled, and every `TRIM_QUIET` while it goes on.
        let quiet = tokio::time::sleep(TRIM_QUIET);
        tokio::pin!(quiet);
        let mut quiet_armed = false;
        loop {
            if !quiet_armed && self.trim.due() {
                quiet.as_mut().reset(Instant::now() + TRIM_QUIET);
                quiet_armed = true;
            }
            let next = self.timers.next_at();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                }
                armed = next;
            }
            tokio::select! {
                biased;
                s = samples.recv() => match s {
                    Some(s) => {
                        self.metrics.collector_beat.beat();
                        self.on_sample(s);
                        // Take what is already queued without going back through select!.
                        let mut n = 0;
                        while let Ok(s) = samples.try_recv() {
                            self.on_sample(s);
                            n += 1;
                            if n == SAMPLE_BATCH { break; }
                        }
                        self.metrics.collector_beat.beat();
                    }
                    None => break,
                },
                Some(done) = self.snapshots_rx.recv() => self.on_snapshot(done),
                _ = &mut link_changed => {
                    link_changed.set(link_changes.notified());
                    self.on_link_change(Instant::now());
                }
                Some(r) = refusals.recv() => self.on_refusal(r),
                Some(c) = control.recv() => self.on_control(c),
                _ = &mut quiet, if quiet_armed => {
                    quiet_armed = false;
                    self.trim.look();
                }
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
        self.close_continuous_rounds(Instant::now());
    }

    fn arm_first_timers(&mut self, start: Instant) {
        for (r, slot) in self.rules.iter().enumerate() {
            self.timers.push(Timer {
                at: start + slot.state.rule.sweep_period(),
                test: r,
                kind: TimerKind::Sweep,
            });
        }
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.is_periodic() {
                self.timers.push(Timer {
                    at: start + FIRST_TICK_DELAY,
                    test: i,
                    kind: TimerKind::Tick,
                });
            }
        }
    }

    fn on_sample(&mut self, s: Sample) {
        self.trim.handled(s.payload.len() + s.topic.len());
        if self
            .rule_routes
            .get(s.broker)
            .is_some_and(|r| !r.is_empty())
        {
            self.on_rule_sample(&s);
        }
        self.on_topic_sample(&s);
    }

    fn on_timer(&mut self, t: Timer, now: Instant) {
        match t.kind {
            TimerKind::Window(generation) => self.on_window(t.test, generation, now),
            TimerKind::Outage(epoch) => self.on_outage_timer(t.test, epoch, now),
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
}

#[cfg(test)]
mod outage_tests;
#[cfg(test)]
mod ownership_tests;
#[cfg(test)]
mod tests;
