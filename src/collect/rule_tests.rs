//! Rule tests in the collector: samples matched against each rule of their broker, instance statuses
//! sent on a colour change or when due, and a sweep that catches staleness and expected hosts.

use super::rrd_feed::unix_secs;
use super::Collector;
use super::Sample;
use crate::metrics::RuleLabel;
use crate::names::{BrokerId, HostName, TestName};
use crate::plan::RulePlan;
use crate::rrd::RrdSample;
use crate::rules::{Instance, Offered, RuleState};
use crate::status;
use crate::text::short;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::{debug, warn};

/// One rule test's runtime state.
pub(super) struct RuleSlot {
    pub(super) state: RuleState,
    /// The config's test index, for log lines.
    index: usize,
    pub(super) broker: BrokerId,
    /// The rule's filter as subscribed (`sensors/+/env`), to match refusals.
    pub(super) subscription: String,
}

impl RuleSlot {
    pub(super) fn new(plan: RulePlan, now: Instant) -> RuleSlot {
        RuleSlot {
            subscription: plan.rule.filter.subscription(),
            broker: plan.broker,
            state: RuleState::new(plan.rule, now),
            index: plan.index,
        }
    }
}

impl Collector {
    /// Routes a sample to every rule of its broker whose filter matches.
    pub(super) fn on_rule_sample(&mut self, s: &Sample) {
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
                        .get_or_create(&RuleLabel {
                            rule: slot.state.rule.filter.to_string(),
                            reason: skip.reason().to_string(),
                        })
                        .inc();
                    let key = format!("rule{}:{}", slot.index, skip.reason());
                    if self.log_limit.allow(&key) {
                        warn!(test = slot.index, rule = %slot.state.rule.filter, topic = %short(&s.topic, 200), "{skip}; message skipped (logged once a minute per rule and reason)");
                    }
                }
                Ok(offered) => {
                    if offered.created {
                        debug!(host = %offered.key.0, test = %offered.key.1, "rule instance created");
                    }
                    self.record_rule_values(r, &offered, wall);
                    self.send_rule(r, &offered.key, now, wall);
                }
            }
        }
    }

    /// Queues the live values of `rrd = true` values for the RRD writer.
    fn record_rule_values(&self, r: usize, offered: &Offered, wall: SystemTime) {
        let Some(rrd) = &self.rrd else {
            return;
        };
        let rule = &self.rules[r].state.rule;
        for (j, v) in &offered.numbers {
            let value = &rule.values[*j];
            if !value.rrd {
                continue;
            }
            let sample = RrdSample {
                host: offered.key.0.to_string(),
                rrd: format!("{}.{}", offered.key.1, value.name),
                time: unix_secs(wall),
                values: vec![*v],
            };
            rrd.submit(sample, &self.metrics, &self.log_limit);
        }
    }

    /// Sends an instance's status when its colour changed since the last one, or `interval` has passed.
    pub(super) fn send_rule(
        &mut self,
        r: usize,
        key: &(HostName, TestName),
        now: Instant,
        wall: SystemTime,
    ) {
        let slot = &mut self.rules[r];
        let rule = &slot.state.rule;
        let Some(inst) = slot.state.instances.get_mut(key) else {
            return;
        };
        let lines = inst.evaluate(rule, now, wall);
        let colour = Instance::colour(&lines);
        let due = inst.last_sent.is_none_or(|t| now >= t + rule.interval);
        if inst.sent_colour == Some(colour) && !due {
            return;
        }
        let mut status = status::rule_status(rule, inst, &lines, wall, self.max_value_chars);
        if let Some(rrd) = &self.rrd {
            for v in rule.values.iter().filter(|v| v.rrd) {
                rrd.report(
                    inst.host.as_str(),
                    &format!("{}.{}", inst.test, v.name),
                    &mut status,
                );
            }
        }
        self.refused
            .note(slot.broker, [slot.subscription.as_str()], &mut status);
        inst.last_sent = Some(now);
        inst.sent_colour = Some(colour);
        debug!(test = %status.key(), colour = %status.colour, "rule status built");
        self.outbox.put(status);
    }

    /// Re-evaluates every instance of rule `r` (staleness, due re-sends) and reports expected hosts that
    /// have not published.
    pub(super) fn sweep(&mut self, r: usize, now: Instant) {
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
        let slot = &self.rules[r];
        let st = &slot.state;
        for host in st.missing_expected() {
            let mut status = status::expected_missing_status(&st.rule, host, &test, since, wall);
            self.refused
                .note(slot.broker, [slot.subscription.as_str()], &mut status);
            self.outbox.put(status);
        }
        let st = &mut self.rules[r].state;
        st.expect_sent = Some(now);
    }
}
