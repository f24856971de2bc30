//! What one broker's session subscribes to for good, and which messages it forwards to the collector.
//!
//! Built once from the plan's routing (`Wanted::new`); read by the session on every ConnAck (the
//! subscriptions, in chunks) and for every message (the rule filters).

use crate::filter::TopicFilter;
use crate::names::{BrokerId, RouteId};
use crate::plan::BrokerRouting;
use crate::store::Store;
use rumqttc::QoS;

/// Filters per SUBSCRIBE packet. Sites with 100k topics would otherwise send one packet of megabytes,
/// which brokers with a packet size limit refuse, and which costs that much memory at every connect.
/// The next packet goes out when the previous one is acknowledged.
pub const SUBSCRIBE_CHUNK: usize = 500;

/// The forward decision of one broker beyond its exact topics, and what to subscribe to.
///
/// The exact topics of `topics` tests (and of exact rules) are registered in the store, whose one lookup
/// per message finds them; only when it does not are the rule filters tried in turn. Rules are few (one
/// per `[[test]]`), and a filter match walks the topic's levels once without allocating, so a message no
/// test wants costs a lookup plus a few comparisons.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub filters: Vec<TopicFilter>,
    /// The rule filters' subscriptions.
    pub filter_subscriptions: Vec<(String, QoS)>,
    /// The subscription QoS of each registered exact topic, by `RouteId` (the highest any test asks for);
    /// the names are the store's (`Store::registered_names`).
    pub exact_qos: Vec<QoS>,
}

impl Wanted {
    /// The permanent subscriptions and forward decisions of one broker's routing. The exact topics'
    /// names stay in the store (registered in the same order), so only their QoS is kept here.
    pub fn new(routing: &BrokerRouting) -> Wanted {
        Wanted {
            filters: routing.filters.clone(),
            filter_subscriptions: routing.filter_subscriptions.clone(),
            exact_qos: routing.exact.iter().map(|t| t.qos).collect(),
        }
    }

    /// Whether a rule filter matches a topic that is not registered.
    pub fn matches_filter(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| f.matches(topic))
    }

    /// Subscribes to the registered exact topic `route` at `qos` at least.
    pub fn want_exact(&mut self, route: RouteId, qos: QoS) {
        let i = route as usize;
        if self.exact_qos.len() <= i {
            // Routes are numbered densely by the store, so this adds exactly `route`.
            self.exact_qos.resize(i + 1, qos);
        }
        if let Some(q) = self.exact_qos.get_mut(i) {
            if (qos as u8) > (*q as u8) {
                *q = qos;
            }
        }
    }

    /// Number of permanent subscriptions: rule filters and exact topics.
    pub fn subscription_count(&self) -> usize {
        self.filter_subscriptions.len() + self.exact_qos.len()
    }

    /// Permanent subscriptions `start..start + max`: rule filters first, then the exact topics in route
    /// order (the store's registration order, fixed at start-up).
    pub fn subscriptions(
        &self,
        store: &Store,
        broker: BrokerId,
        start: usize,
        max: usize,
    ) -> Vec<(String, QoS)> {
        let mut out: Vec<_> = self
            .filter_subscriptions
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect();
        let from = start.saturating_sub(self.filter_subscriptions.len());
        let room = max - out.len();
        if room > 0 && from < self.exact_qos.len() {
            let names = store.registered_names(broker, from, room);
            out.extend(
                names
                    .iter()
                    .zip(&self.exact_qos[from..])
                    .map(|(t, q)| (t.to_string(), *q)),
            );
        }
        out
    }
}
