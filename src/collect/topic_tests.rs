//! `topics` and `broker-stats` tests: a round per test, opened by the first topic (continuous) or by
//! the clock (periodic), closed when every topic has arrived or its window ends, then built into a
//! status.

use super::round::{Offer, Reading, Round};
use super::schedule::{Timer, TimerKind};
use super::{Collector, Sample};
use crate::colour::Colour;
use crate::config::{Mode, TestConfig, TestKind};
use crate::metrics::ReasonLabel;
use crate::names::{BrokerId, TopicName};
use crate::plan::TestPlan;
use crate::status::{self, Context, Counters};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::debug;

/// One test's runtime state.
pub(super) struct Slot {
    pub(super) cfg: TestConfig,
    /// The test's topics, shared with the web layer.
    pub(super) topics: Arc<[TopicName]>,
    pub(super) broker: BrokerId,
    pub(super) round: Option<Round>,
    /// Bumped whenever a round closes, so stale window timers and snapshot results are ignored.
    pub(super) generation: u64,
    /// Broker-stats: the previous snapshot, for rates.
    counters: Option<Counters>,
    /// A continuous test's colour while its broker is disconnected.
    pub(super) outage_colour: Colour,
    /// When its outage status was last sent (during the current outage).
    pub(super) outage_sent: Option<Instant>,
}

impl Slot {
    pub(super) fn new(plan: TestPlan) -> Slot {
        Slot {
            cfg: plan.config,
            topics: plan.topics,
            broker: plan.broker,
            round: None,
            generation: 0,
            counters: None,
            outage_colour: plan.outage_colour,
            outage_sent: None,
        }
    }

    pub(super) fn is_periodic(&self) -> bool {
        self.cfg.mode() == Mode::Periodic
    }
}

impl Collector {
    /// Offers an exact topic's sample to every round its route feeds, opening continuous rounds.
    pub(super) fn on_topic_sample(&mut self, s: &Sample) {
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

    /// A round's window timer fired; it closes the round unless that round closed already.
    pub(super) fn on_window(&mut self, test: usize, generation: u64, now: Instant) {
        let slot = &self.slots[test];
        if slot.generation == generation && slot.round.is_some() {
            self.close_round(test, now);
        }
    }

    /// At shutdown: only continuous rounds hold values that exist nowhere else. A periodic snapshot still
    /// in flight is simply abandoned: its values are in the broker (retained) and in the store, and
    /// closing it now would report its topics as missing.
    pub(super) fn close_continuous_rounds(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            if self.slots[i].round.is_some() && !self.slots[i].is_periodic() {
                self.close_round(i, now);
            }
        }
    }

    pub(super) fn close_round(&mut self, test: usize, now: Instant) {
        let slot = &mut self.slots[test];
        let Some(round) = slot.round.take() else {
            return;
        };
        slot.generation += 1;
        let broker = slot.broker;
        if !slot.is_periodic() && self.outage_of(broker).is_some() {
            // The broker is down: what the round holds came before the outage, or was still queued.
            self.send_outage(test, now, SystemTime::now());
            return;
        }
        let slot = &mut self.slots[test];
        let closed = round.close(now);
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
            // Rule tests have no rounds (see `rule_tests`).
            TestKind::Rule => return,
            TestKind::BrokerStats => {
                let (mut status, counters) =
                    status::broker_stats_status(&slot.cfg, &closed, slot.counters.as_ref(), &ctx);
                if let Some(rrd) = &self.rrd {
                    rrd.record_broker_stats(&slot.cfg, &counters, &self.metrics, &self.log_limit);
                    // Health of earlier updates (the writer works asynchronously).
                    rrd.report_broker_stats(&slot.cfg, &mut status);
                }
                slot.counters = Some(counters);
                status
            }
        };
        let mut status = status;
        self.refused
            .note(broker, slot.topics.iter().map(|t| &**t), &mut status);
        debug!(test = %status.key(), colour = %status.colour, "status built");
        self.outbox.put(status);
    }
}
