//! Rule tests in the collector: samples matched against each rule of their broker, instance statuses
//! sent on a colour change or when due, and a sweep that catches staleness and expected hosts. A new
//! instance's host.test must be free: not a configured test's, not another rule's (`Owner`).

use super::outage::announced;
use super::rrd_feed::unix_secs;
use super::Collector;
use super::Sample;
use crate::colour::Colour;
use crate::metrics::RuleLabel;
use crate::names::{BrokerId, HostName, TestName};
use crate::plan::{RulePlan, TestPlan};
use crate::rrd::RrdSample;
use crate::rules::{InstanceId, Numbers, RuleState, Skip};
use crate::status::{self, outage_status};
use crate::text::short;
use std::collections::HashMap;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Who writes a host.test that is known before any message: a `topics` or `broker-stats` test, or a rule
/// whose host and test are both literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Test,
    Rule(usize),
}

/// The configured columns: every `topics` and `broker-stats` test's host.test, and the literal host.test
/// of rules without captures in their names (indexed by rule). A rule may make an instance of none of
/// them but its own (`Collector::on_rule_sample`), nor of another rule's instance.
pub(super) fn configured_owners(
    tests: &[TestPlan],
    rules: &[RulePlan],
) -> HashMap<(HostName, TestName), Owner> {
    let mut owners = HashMap::new();
    for t in tests {
        owners.insert((t.config.host.clone(), t.config.test.clone()), Owner::Test);
    }
    for (r, plan) in rules.iter().enumerate() {
        let rule = &plan.rule;
        if !(rule.host.is_literal() && rule.test.is_literal()) {
            continue;
        }
        let host = HostName::try_from(rule.host.as_str().to_string());
        let test = TestName::try_from(rule.test.as_str().to_string());
        if let (Ok(h), Ok(t)) = (host, test) {
            owners.entry((h, t)).or_insert(Owner::Rule(r));
        }
    }
    owners
}

/// Whether a rule takes a sample: into an instance, refused (its filter matched), or not matched.
enum Taken {
    Yes(InstanceId),
    Refused,
    NotMatched,
}

fn column(key: &(HostName, TestName)) -> String {
    format!("{}.{}", key.0, key.1)
}

/// One rule test's runtime state.
pub(super) struct RuleSlot {
    pub(super) state: RuleState,
    /// The config's test index, for log lines.
    index: usize,
    pub(super) broker: BrokerId,
    /// Its instances' colour while the broker is disconnected.
    outage_colour: Colour,
    /// The rule's filter as subscribed (`sensors/+/env`), to match refusals.
    pub(super) subscription: String,
}

impl RuleSlot {
    pub(super) fn new(plan: RulePlan, now: Instant) -> RuleSlot {
        RuleSlot {
            subscription: plan.rule.filter.subscription(),
            state: RuleState::new(plan.rule, now),
            index: plan.index,
            broker: plan.broker,
            outage_colour: plan.outage_colour,
        }
    }
}

impl Collector {
    /// Routes a sample to every rule of its broker whose filter matches. When some rule matched its
    /// topic and none took it (and it is not a configured topic), the store is told to keep no payload for
    /// it: nothing will ever show it.
    pub(super) fn on_rule_sample(&mut self, s: &Sample) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let (mut matched, mut taken) = (false, false);
        for k in 0..self.rule_routes[s.broker].len() {
            let r = self.rule_routes[s.broker][k];
            let id = match self.rule_instance(r, s, now, wall) {
                Taken::Yes(id) => id,
                Taken::Refused => {
                    matched = true;
                    continue;
                }
                Taken::NotMatched => continue,
            };
            (matched, taken) = (true, true);
            let numbers = self.rules[r]
                .state
                .update(id, &s.topic, &s.payload, s.retained, now, wall);
            self.record_rule_values(r, id, &numbers, wall);
            self.send_rule(r, id, now, wall);
        }
        if matched && !taken && s.route.is_none() {
            self.store.refuse(s.broker, &s.topic);
        }
    }

    /// The instance of rule `r` that the sample's topic feeds: one lookup for a topic seen before; a new
    /// topic is matched against the filter and, when it matches, made an instance by `RuleState::admit`,
    /// or refused (counted and logged): for a name the rule cannot make, or a host.test that is not free
    /// for it (a configured test's, another rule's).
    fn rule_instance(&mut self, r: usize, s: &Sample, now: Instant, wall: SystemTime) -> Taken {
        if let Some(id) = self.rules[r].state.instance_of(&s.topic) {
            return Taken::Yes(id);
        }
        let (before, rest) = self.rules.split_at_mut(r);
        let Some((slot, after)) = rest.split_first_mut() else {
            return Taken::NotMatched;
        };
        if !slot.state.rule.filter.matches(&s.topic) {
            return Taken::NotMatched;
        }
        let Ok(caps) = slot.state.rule.filter.match_topic(&s.topic) else {
            return Taken::NotMatched;
        };
        let owners = &self.owners;
        let others = || before.iter().chain(after.iter());
        let mut claim = |key: &(HostName, TestName)| match owners.get(key) {
            Some(Owner::Test) => Err(Skip::ConfiguredColumn(column(key))),
            Some(Owner::Rule(o)) if *o != r => Err(Skip::OtherRuleColumn(column(key))),
            _ if others().any(|o| o.state.instances.contains_key(key)) => {
                Err(Skip::OtherRuleColumn(column(key)))
            }
            _ => Ok(()),
        };
        match slot
            .state
            .admit(s.topic.clone(), &caps, (now, wall), &mut claim)
        {
            Ok((id, created)) => {
                if created {
                    if let Some(inst) = slot.state.instances.by_id(id) {
                        debug!(host = %inst.host, test = %inst.test, "rule instance created");
                    }
                }
                Taken::Yes(id)
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
                Taken::Refused
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
    pub(super) fn send_rule(&mut self, r: usize, id: InstanceId, now: Instant, wall: SystemTime) {
        self.send_rule_if(r, id, now, wall, false);
    }

    /// Every instance of rule `r`: `send_rule`, or with `force` sent whether due or not (an outage begins
    /// or ends).
    pub(super) fn resend_rule(&mut self, r: usize, now: Instant, wall: SystemTime, force: bool) {
        for id in 0..self.rules[r].state.instances.len() {
            let Ok(id) = InstanceId::try_from(id) else {
                break;
            };
            self.send_rule_if(r, id, now, wall, force);
        }
    }

    /// `send_rule`, or with `force` whether due or not. While the rule's broker is down (announced), the
    /// status is the outage's, in the rule's outage colour; a filter the broker refused is named in it.
    fn send_rule_if(
        &mut self,
        r: usize,
        id: InstanceId,
        now: Instant,
        wall: SystemTime,
        force: bool,
    ) {
        let slot = &mut self.rules[r];
        let down = announced(&self.links, slot.broker);
        let rule = &slot.state.rule;
        let Some(inst) = slot.state.instances.by_id_mut(id) else {
            return;
        };
        let colour = match down {
            Some(_) => slot.outage_colour,
            None => inst.colour_now(rule, now, wall),
        };
        let due = inst.last_sent.is_none_or(|t| now >= t + rule.interval);
        if inst.sent_colour == Some(colour) && !due && !force {
            return;
        }
        let mut status = match down {
            Some(d) => outage_status(
                &inst.host,
                &inst.test,
                rule.lifetime,
                &d.outage(slot.outage_colour),
                wall,
            ),
            None => {
                let lines = inst.evaluate(rule, now, wall);
                let mut status =
                    status::rule_status(rule, inst, &lines, wall, self.max_value_chars);
                if let Some(rrd) = &self.rrd {
                    for v in rule.values.iter().filter(|v| v.rrd) {
                        rrd.report(
                            inst.host.as_str(),
                            &format!("{}.{}", inst.test, v.name),
                            &mut status,
                        );
                    }
                }
                status
            }
        };
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
        self.resend_rule(r, now, wall, false);
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
