//! Rule tests in the collector: samples matched against each rule of their broker, instance statuses
//! sent on a colour change or when due, and a sweep that catches staleness and expected hosts.

use super::rrd_feed::unix_secs;
use super::Collector;
use super::Sample;
use crate::metrics::RuleLabel;
use crate::names::TestName;
use crate::plan::RulePlan;
use crate::rrd::RrdSample;
use crate::rules::{InstanceId, Numbers, RuleState};
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
}

impl RuleSlot {
    pub(super) fn new(plan: RulePlan, now: Instant) -> RuleSlot {
        RuleSlot {
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
            let Some(id) = self.rule_instance(r, s, now, wall) else {
                continue;
            };
            let numbers = self.rules[r]
                .state
                .update(id, &s.topic, &s.payload, s.retained, now, wall);
            self.record_rule_values(r, id, &numbers, wall);
            self.send_rule(r, id, now, wall);
        }
    }

    /// The instance of rule `r` that the sample's topic feeds: one lookup for a topic seen before; a new
    /// topic is matched against the filter and, when it matches, made an instance (or refused: counted
    /// and logged) by `RuleState::admit`. `None` when the rule does not take the sample.
    fn rule_instance(
        &mut self,
        r: usize,
        s: &Sample,
        now: Instant,
        wall: SystemTime,
    ) -> Option<InstanceId> {
        let slot = &mut self.rules[r];
        if let Some(id) = slot.state.instance_of(&s.topic) {
            return Some(id);
        }
        if !slot.state.rule.filter.matches(&s.topic) {
            return None;
        }
        let caps = slot.state.rule.filter.match_topic(&s.topic).ok()?;
        match slot.state.admit(s.topic.clone(), &caps, now, wall) {
            Ok((id, created)) => {
                if created {
                    if let Some(inst) = slot.state.instances.by_id(id) {
                        debug!(host = %inst.host, test = %inst.test, "rule instance created");
                    }
                }
                Some(id)
            }
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
                None
            }
        }
    }

    /// Queues the live values of `rrd = true` values for the RRD writer.
    fn record_rule_values(&self, r: usize, id: InstanceId, numbers: &Numbers, wall: SystemTime) {
        let Some(rrd) = &self.rrd else {
            return;
        };
        let state = &self.rules[r].state;
        let Some(inst) = state.instances.by_id(id) else {
            return;
        };
        for (j, v) in numbers {
            let value = &state.rule.values[*j];
            if !value.rrd {
                continue;
            }
            let sample = RrdSample {
                host: inst.host.to_string(),
                rrd: format!("{}.{}", inst.test, value.name),
                time: unix_secs(wall),
                values: vec![*v],
            };
            rrd.submit(sample, &self.metrics, &self.log_limit);
        }
    }

    /// Sends an instance's status when its colour changed since the last one, or `interval` has passed.
    /// The status is built only then: deciding takes no more than the colour.
    fn send_rule(&mut self, r: usize, id: InstanceId, now: Instant, wall: SystemTime) {
        let slot = &mut self.rules[r];
        let rule = &slot.state.rule;
        let Some(inst) = slot.state.instances.by_id_mut(id) else {
            return;
        };
        let colour = inst.colour_now(rule, now, wall);
        let due = inst.last_sent.is_none_or(|t| now >= t + rule.interval);
        if inst.sent_colour == Some(colour) && !due {
            return;
        }
        let lines = inst.evaluate(rule, now, wall);
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
        inst.last_sent = Some(now);
        inst.sent_colour = Some(colour);
        debug!(test = %status.key(), colour = %status.colour, "rule status built");
        self.outbox.put(status);
    }

    /// Re-evaluates every instance of rule `r` (staleness, due re-sends) and reports expected hosts that
    /// have not published.
    pub(super) fn sweep(&mut self, r: usize, now: Instant) {
        let wall = SystemTime::now();
        for id in 0..self.rules[r].state.instances.len() {
            let Ok(id) = InstanceId::try_from(id) else {
                break;
            };
            self.send_rule(r, id, now, wall);
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
