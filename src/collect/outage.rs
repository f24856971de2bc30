//! Broker outages in the collector: while a broker is disconnected, its continuous tests and rule
//! instances show the outage (`status::outage_status`, in their `outage_colour`) instead of their last
//! values, which would otherwise stay green in xymond until their lifetime ran out.
//!
//! The collector is told, not polling: ingest records every connect and failed attempt in the store
//! (`Store::set_connected`), which wakes the collector (`Store::link_changes`); it then compares the
//! store's broker states with its own view (`on_link_change`). A broker is down when it is not connected
//! and its last attempt failed with an error (a disconnect the bridge made itself at shutdown has none).
//! After a grace of one window (at most 1 s, so a blip shows nothing) the outage is announced: every
//! continuous test of the broker gets its outage status, every rule instance too (`send_rule` builds it
//! while the outage lasts), and a timer repeats them while it lasts, so they do not expire. At reconnect
//! the rule instances are evaluated at once; a continuous test's next round reports its own colour.

use super::schedule::{Timer, TimerKind};
use super::Collector;
use crate::names::BrokerId;
use crate::status::{outage_status, Outage};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::info;

/// Longest grace between a disconnect and the first outage statuses (shorter when a continuous test of
/// the broker has a shorter window).
pub(super) const OUTAGE_GRACE_MAX: Duration = Duration::from_secs(1);

/// How often the outage timer checks which outage statuses are due again.
const OUTAGE_TICK: Duration = Duration::from_secs(30);

/// A broker outage as the collector knows it.
pub(super) struct Down {
    /// Tells this outage's timers from an earlier one's.
    epoch: u64,
    name: String,
    since: SystemTime,
    error: Option<String>,
    /// The grace has passed: the broker's tests show the outage.
    announced: bool,
}

impl Down {
    pub(super) fn outage(&self, colour: crate::colour::Colour) -> Outage<'_> {
        Outage {
            broker: &self.name,
            error: self.error.as_deref(),
            since: self.since,
            colour,
        }
    }
}

/// The announced outage of `broker` in `links` (the collector's field, for callers that borrow others).
pub(super) fn announced(links: &[Option<Down>], broker: BrokerId) -> Option<&Down> {
    links.get(broker)?.as_ref().filter(|d| d.announced)
}

impl Collector {
    /// A broker's connection state was set: compares the store's broker states with the collector's.
    pub(super) fn on_link_change(&mut self, now: Instant) {
        for (b, st) in self.store.brokers().into_iter().enumerate() {
            let down = !st.connected && st.last_error.is_some();
            let Some(link) = self.links.get_mut(b) else {
                continue;
            };
            match (link.as_mut(), down) {
                (None, true) => {
                    self.outage_epoch += 1;
                    let epoch = self.outage_epoch;
                    let grace = self
                        .outage_grace
                        .get(b)
                        .copied()
                        .unwrap_or(OUTAGE_GRACE_MAX);
                    *link = Some(Down {
                        epoch,
                        since: st.since.unwrap_or_else(SystemTime::now),
                        error: st.last_error,
                        name: st.name,
                        announced: false,
                    });
                    self.timers.push(Timer {
                        at: now + grace,
                        test: b,
                        kind: TimerKind::Outage(epoch),
                    });
                }
                (Some(d), true) => d.error = st.last_error,
                (Some(d), false) => {
                    let announced = d.announced;
                    *link = None;
                    if announced {
                        info!(broker = %st.name, "MQTT broker back; its tests report their own colour again");
                        self.after_outage(b, now);
                    }
                }
                (None, false) => {}
            }
        }
    }

    /// The announced outage of `broker`, if there is one.
    pub(super) fn outage_of(&self, broker: BrokerId) -> Option<&Down> {
        announced(&self.links, broker)
    }

    /// The outage timer of `broker`: announces the outage (first time) and sends what is due.
    pub(super) fn on_outage_timer(&mut self, broker: BrokerId, epoch: u64, now: Instant) {
        let Some(d) = self
            .links
            .get_mut(broker)
            .and_then(Option::as_mut)
            .filter(|d| d.epoch == epoch)
        else {
            return;
        };
        let first = !d.announced;
        if first {
            d.announced = true;
            info!(broker = %d.name, "MQTT broker not connected; its continuous tests and rule instances show the outage");
        }
        let wall = SystemTime::now();
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.broker != broker || slot.is_periodic() {
                continue;
            }
            let every = slot.cfg.interval().min(slot.cfg.lifetime() / 2);
            if slot.outage_sent.is_some_and(|t| now < t + every) {
                continue;
            }
            // An open round would close into an outage status anyway: it is dropped.
            if self.slots[i].round.take().is_some() {
                self.slots[i].generation += 1;
            }
            self.send_outage(i, now, wall);
        }
        let rules: Vec<usize> = self.rule_routes.get(broker).cloned().unwrap_or_default();
        for r in rules {
            self.resend_rule(r, now, wall, first);
        }
        self.timers.push(Timer {
            at: now + OUTAGE_TICK,
            test: broker,
            kind: TimerKind::Outage(epoch),
        });
    }

    /// Sends slot `i`'s outage status (its broker's outage is announced).
    pub(super) fn send_outage(&mut self, i: usize, now: Instant, wall: SystemTime) {
        let slot = &self.slots[i];
        let Some(d) = self.outage_of(slot.broker) else {
            return;
        };
        let status = outage_status(
            &slot.cfg.host,
            &slot.cfg.test,
            slot.cfg.lifetime(),
            &d.outage(slot.outage_colour),
            wall,
        );
        self.outbox.put(status);
        self.slots[i].outage_sent = Some(now);
    }

    /// The broker is back: its rule instances are evaluated now; its continuous tests wait for their next
    /// round.
    fn after_outage(&mut self, broker: BrokerId, now: Instant) {
        for slot in self.slots.iter_mut().filter(|s| s.broker == broker) {
            slot.outage_sent = None;
        }
        let wall = SystemTime::now();
        let rules: Vec<usize> = self.rule_routes.get(broker).cloned().unwrap_or_default();
        for r in rules {
            self.resend_rule(r, now, wall, true);
        }
    }
}
