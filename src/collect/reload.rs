//! A reload in the collector: the new plan's tests take over, and those whose config did not change
//! keep their state (open rounds, hits and hysteresis, staleness clocks, outage state).
//!
//! Sent by the supervisor (`bridge`) as a `Control` on the collector's own channel, while every ingest
//! session is held, so it is processed after every sample of the old numbering and before any of the
//! new: no sample is lost or counted twice across the swap. Timers follow their test to its new index
//! (or are dropped with it); a periodic snapshot already asked for comes back under its old index and is
//! mapped through every reload since (`Collector::reloads`).

use super::outage::OUTAGE_GRACE_MAX;
use super::rrd_feed::RrdFeed;
use super::rule_tests::{configured_owners, RuleSlot};
use super::schedule::{Timer, TimerKind};
use super::topic_tests::Slot;
use super::{Collector, RouteTable, SnapshotRequest, FIRST_TICK_DELAY};
use crate::names::BrokerId;
use crate::plan::{RulePlan, TestPlan};
use crate::rrd::RrdWriter;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A new plan for the collector, with what carries over (`plan::Diff`).
pub struct Reload {
    pub tests: Vec<TestPlan>,
    pub rules: Vec<RulePlan>,
    /// One per new broker.
    pub routes: Vec<RouteTable>,
    /// Per new test: the running test whose state it keeps.
    pub test_from: Vec<Option<usize>>,
    /// Per new rule: the running rule whose state it keeps.
    pub rule_from: Vec<Option<usize>>,
    /// Per new broker: the running broker of the same name.
    pub broker_from: Vec<Option<BrokerId>>,
    /// `Some`: the RRD writer changed (to none, when the new plan writes no RRD).
    pub rrd: Option<Option<RrdWriter>>,
    /// The MQTT stage's snapshot server for the new brokers.
    pub snapshots: mpsc::Sender<SnapshotRequest>,
    pub max_value_chars: usize,
}

/// A message to the running collector, processed in order with the samples.
pub enum Control {
    /// Take a new plan; `done` is answered once it has.
    Reload(Box<Reload>, oneshot::Sender<()>),
}

/// `from[new] = old` turned into `to[old] = new` for `old_len` old entries.
fn invert(from: &[Option<usize>], old_len: usize) -> Vec<Option<usize>> {
    let mut to = vec![None; old_len];
    for (new, old) in from.iter().enumerate() {
        if let Some(slot) = old.and_then(|o| to.get_mut(o)) {
            *slot = Some(new);
        }
    }
    to
}

impl Collector {
    pub(super) fn on_control(&mut self, c: Control) {
        match c {
            Control::Reload(r, done) => {
                self.reload(*r, Instant::now());
                let _ = done.send(());
            }
        }
    }

    fn reload(&mut self, r: Reload, now: Instant) {
        let Reload {
            tests,
            rules,
            routes,
            test_from,
            rule_from,
            broker_from,
            rrd,
            snapshots,
            max_value_chars,
        } = r;
        let slot_to = invert(&test_from, self.slots.len());
        let rule_to = invert(&rule_from, self.rules.len());
        let broker_to = invert(&broker_from, self.links.len());
        self.owners = configured_owners(&tests, &rules);

        let mut outage_grace = vec![OUTAGE_GRACE_MAX; routes.len()];
        for t in tests.iter().filter(|t| !t.is_periodic()) {
            if let Some(g) = outage_grace.get_mut(t.broker) {
                *g = (*g).min(t.config.window);
            }
        }
        self.outage_grace = outage_grace;

        let mut old_slots: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut fresh_ticks = Vec::new();
        for (i, (plan, from)) in tests.into_iter().zip(&test_from).enumerate() {
            let kept = from.and_then(|o| old_slots.get_mut(o)?.take());
            let slot = match kept {
                Some(mut s) => {
                    s.broker = plan.broker;
                    s.topics = plan.topics;
                    s
                }
                None => {
                    let s = Slot::new(plan);
                    if s.is_periodic() {
                        fresh_ticks.push(i);
                    }
                    s
                }
            };
            self.slots.push(slot);
        }

        let mut old_rules: Vec<Option<RuleSlot>> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(Some)
            .collect();
        let mut fresh_sweeps = Vec::new();
        self.rule_routes = vec![Vec::new(); routes.len()];
        for (i, (plan, from)) in rules.into_iter().zip(&rule_from).enumerate() {
            let broker = plan.broker;
            let slot = match from.and_then(|o| old_rules.get_mut(o)?.take()) {
                Some(mut s) => {
                    s.broker = broker;
                    s.index = plan.index;
                    s
                }
                None => {
                    fresh_sweeps.push(i);
                    RuleSlot::new(plan, now)
                }
            };
            if let Some(list) = self.rule_routes.get_mut(broker) {
                list.push(i);
            }
            self.rules.push(slot);
        }

        let mut old_links: Vec<_> = std::mem::take(&mut self.links);
        self.links = broker_from
            .iter()
            .map(|o| o.and_then(|o| old_links.get_mut(o)?.take()))
            .collect();
        let refused = std::mem::take(&mut self.refused);
        self.refused = refused.remap(&broker_from);
        self.routes = routes;

        for t in self.timers.take_all() {
            let to = match t.kind {
                TimerKind::Window(_) | TimerKind::Tick => &slot_to,
                TimerKind::Sweep => &rule_to,
                TimerKind::Outage(_) => &broker_to,
            };
            if let Some(test) = to.get(t.test).copied().flatten() {
                self.timers.push(Timer { test, ..t });
            }
        }
        for test in fresh_ticks {
            self.timers.push(Timer {
                at: now + FIRST_TICK_DELAY,
                test,
                kind: TimerKind::Tick,
            });
        }
        for test in fresh_sweeps {
            self.timers.push(Timer {
                at: now + self.rules[test].state.rule.sweep_period(),
                test,
                kind: TimerKind::Sweep,
            });
        }
        self.reloads.push(slot_to);
        self.snapshot_requests = snapshots;
        if let Some(rrd) = rrd {
            self.rrd = rrd.map(RrdFeed::new);
        }
        self.max_value_chars = max_value_chars;
    }

    /// The current index of the test a snapshot was asked for under reload `epoch`; `None` when a
    /// reload removed or replaced it.
    pub(super) fn snapshot_slot(&self, test: usize, epoch: usize) -> Option<usize> {
        follow(&self.reloads, test, epoch).filter(|&t| t < self.slots.len())
    }
}

/// Test index `test` of the time after `epoch` reloads, through each reload since.
fn follow(reloads: &[Vec<Option<usize>>], test: usize, epoch: usize) -> Option<usize> {
    let mut t = test;
    for map in reloads.get(epoch..)? {
        t = map.get(t).copied().flatten()?;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::{follow, invert};

    /// A snapshot asked for before two reloads comes back to its test's current index, or to none when a
    /// reload dropped the test.
    #[test]
    fn a_snapshot_answer_follows_its_test_through_reloads() {
        let reloads = vec![vec![Some(1), Some(0)], vec![None, Some(2)]];
        assert_eq!(follow(&reloads, 0, 0), Some(2));
        assert_eq!(follow(&reloads, 1, 0), None);
        assert_eq!(follow(&reloads, 1, 1), Some(2));
        assert_eq!(
            follow(&reloads, 3, 2),
            Some(3),
            "asked after the last reload"
        );
        assert_eq!(follow(&reloads, 0, 3), None, "an epoch that never was");
    }

    #[test]
    fn invert_maps_old_to_new() {
        assert_eq!(
            invert(&[Some(2), None, Some(0)], 4),
            [Some(2), None, Some(0), None]
        );
    }
}
