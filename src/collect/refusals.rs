//! Subscriptions the broker refuses, in the tests' statuses.
//!
//! Fed by the MQTT stage: the permanent session tells every change (`Refusal`: a filter refused, or
//! granted again), and a periodic test's snapshot brings its own refusals. The collector keeps them per
//! broker and adds a line to the status of every test that reads a refused filter; a continuous
//! `topics` test and a rule with fixed names also get a status at once, as they might otherwise never
//! send one.

use super::Collector;
use crate::config::Mode;
use crate::names::{BrokerId, HostName, TestName};
use crate::rules::InstanceId;
use crate::status;
use crate::xymon::Status;
use std::collections::HashMap;
use std::time::SystemTime;
use tokio::time::Instant;

/// A change in whether a broker grants one of the permanent session's subscription filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub broker: BrokerId,
    pub filter: String,
    /// Why the broker refuses it (its words: untrusted text); `None`: it grants it again.
    pub reason: Option<String>,
}

/// The refused filters of every broker, with their reasons.
#[derive(Debug, Default)]
pub(super) struct Refused(Vec<HashMap<String, String>>);

impl Refused {
    pub(super) fn new(brokers: usize) -> Refused {
        Refused(vec![HashMap::new(); brokers])
    }

    pub(super) fn get(&self, broker: BrokerId, filter: &str) -> Option<&str> {
        self.0.get(broker)?.get(filter).map(String::as_str)
    }

    pub(super) fn set(&mut self, broker: BrokerId, filter: &str, reason: Option<String>) {
        let Some(map) = self.0.get_mut(broker) else {
            return;
        };
        match reason {
            Some(r) => {
                map.insert(filter.to_string(), r);
            }
            None => {
                map.remove(filter);
            }
        }
    }

    /// Adds a line to `status` for every refused filter of `filters`.
    pub(super) fn note<'a>(
        &self,
        broker: BrokerId,
        filters: impl IntoIterator<Item = &'a str>,
        status: &mut Status,
    ) {
        let Some(map) = self.0.get(broker).filter(|m| !m.is_empty()) else {
            return;
        };
        for f in filters {
            if let Some(reason) = map.get(f) {
                status::add_refused(status, f, reason);
            }
        }
    }
}

impl Collector {
    /// A filter of a broker's permanent session was refused or granted again.
    pub(super) fn on_refusal(&mut self, r: Refusal) {
        self.refused.set(r.broker, &r.filter, r.reason.clone());
        if r.reason.is_none() {
            // The next status of each test shows it again as it is.
            return;
        }
        let now = SystemTime::now();
        for slot in &self.slots {
            if slot.broker != r.broker
                || slot.cfg.mode() != Mode::Continuous
                || !slot.topics.iter().any(|t| **t == *r.filter)
            {
                continue;
            }
            let refused: Vec<(&str, &str)> = slot
                .topics
                .iter()
                .filter_map(|t| Some((&**t, self.refused.get(r.broker, t)?)))
                .collect();
            self.outbox.put(status::refused_status(
                &slot.cfg,
                &refused,
                slot.topics.len(),
                now,
            ));
        }
        let instant = Instant::now();
        for k in 0..self.rules.len() {
            let slot = &mut self.rules[k];
            if slot.broker != r.broker || slot.subscription != r.filter {
                continue;
            }
            let count = slot.state.instances.len();
            if count == 0 {
                self.rule_refused_without_instances(k, now);
            }
            for id in (0..count).filter_map(|i| InstanceId::try_from(i).ok()) {
                if let Some(inst) = self.rules[k].state.instances.by_id_mut(id) {
                    // Due now: its status goes out with the refusal in it.
                    inst.last_sent = None;
                }
                self.send_rule(k, id, instant, now);
            }
        }
    }

    /// A rule whose filter is refused before any message arrived: with fixed host and test names there
    /// is a status to say so in; with captures there is none until a message names one (the log, the
    /// API and /metrics say it then).
    fn rule_refused_without_instances(&self, k: usize, now: SystemTime) {
        let slot = &self.rules[k];
        let rule = &slot.state.rule;
        if !rule.host.is_literal() || !rule.test.is_literal() {
            return;
        }
        let (Ok(host), Ok(test)) = (
            HostName::try_from(rule.host.as_str().to_string()),
            TestName::try_from(rule.test.as_str().to_string()),
        ) else {
            return;
        };
        let mut status = Status {
            summary: format!(
                "{} {test}: the broker refuses the subscription",
                status::timestamp(now)
            ),
            host,
            test,
            colour: crate::colour::Colour::Yellow,
            lifetime: rule.lifetime,
            body: String::from("\n"),
        };
        self.refused
            .note(slot.broker, [slot.subscription.as_str()], &mut status);
        self.outbox.put(status);
    }
}
