//! Routing: per broker, what to subscribe to for good, and which tests each exact topic feeds.
//!
//! Built once by `Plan::compile` from the tests and rules. The store registers the exact topics in this
//! order, so a topic's index here is its `RouteId` everywhere (the store's table, the collector's route
//! table, ingest's subscription list). Periodic tests are absent: they use short-lived snapshot
//! sessions.

use super::{RulePlan, TestPlan};
use crate::config::Mode;
use crate::filter::TopicFilter;
use rumqttc::QoS;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

/// (collector slot, index of the topic in that slot's test). Slots are the plan's `tests`, in order.
pub type Dest = (u32, u32);

/// One broker's routing.
#[derive(Debug, Clone, Default)]
pub struct BrokerRouting {
    /// The exact topics, by `RouteId`: continuous tests' topics and exact rule filters.
    pub exact: Vec<ExactTopic>,
    /// The rule filters that are not exact topics, each with its rule's QoS.
    pub filters: Vec<TopicFilter>,
    /// The rule filters' subscriptions (captures as `+`), each once, at the highest QoS asked for.
    pub filter_subscriptions: Vec<(String, QoS)>,
}

/// An exact topic some test wants.
#[derive(Debug, Clone)]
pub struct ExactTopic {
    /// The shared copy of the name (the config's, for a listed topic).
    pub name: Arc<str>,
    /// The highest QoS any test asks for.
    pub qos: QoS,
    /// The tests it feeds; empty for a topic only an exact rule wants (rules match by filter).
    pub feeds: SmallVec<[Dest; 1]>,
}

/// Routes `tests` and `rules` over `brokers` brokers.
pub(super) fn route(brokers: usize, tests: &[TestPlan], rules: &[RulePlan]) -> Vec<BrokerRouting> {
    let mut out = vec![BrokerRouting::default(); brokers];
    let mut index: Vec<HashMap<Arc<str>, usize>> = vec![HashMap::new(); brokers];
    // The index of `name` in broker `b`'s exact topics, added on first use; the highest QoS wins.
    let mut want = |out: &mut [BrokerRouting], b: usize, name: Arc<str>, qos: QoS| -> usize {
        let r = &mut out[b];
        let i = *index[b].entry(name.clone()).or_insert_with(|| {
            r.exact.push(ExactTopic {
                name,
                qos,
                feeds: SmallVec::new(),
            });
            r.exact.len() - 1
        });
        if (qos as u8) > (r.exact[i].qos as u8) {
            r.exact[i].qos = qos;
        }
        i
    };
    // In config order: exact rules and continuous tests' topics, numbered as they first appear.
    let mut exact_rules = rules.iter().filter(|r| r.rule.filter.is_exact()).peekable();
    for (slot, t) in tests.iter().enumerate() {
        while let Some(r) = exact_rules.next_if(|r| r.index < t.index) {
            want(
                &mut out,
                r.broker,
                Arc::from(r.rule.filter.as_str()),
                r.rule.qos,
            );
        }
        if t.config.mode() != Mode::Continuous {
            continue;
        }
        for (j, topic) in t.topics.iter().enumerate() {
            let i = want(&mut out, t.broker, topic.shared(), t.config.qos());
            out[t.broker].exact[i].feeds.push((slot as u32, j as u32));
        }
    }
    for r in exact_rules {
        want(
            &mut out,
            r.broker,
            Arc::from(r.rule.filter.as_str()),
            r.rule.qos,
        );
    }
    for r in rules.iter().filter(|r| !r.rule.filter.is_exact()) {
        let b = &mut out[r.broker];
        let sub = r.rule.filter.subscription();
        let qos = r.rule.qos;
        match b.filter_subscriptions.iter_mut().find(|(s, _)| *s == sub) {
            Some((_, q)) if (qos as u8) > (*q as u8) => *q = qos,
            Some(_) => {}
            None => b.filter_subscriptions.push((sub, qos)),
        }
        b.filters.push(r.rule.filter.clone());
    }
    for b in &mut out {
        b.exact.shrink_to_fit();
    }
    out
}
