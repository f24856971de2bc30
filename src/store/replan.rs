//! A reload's new plan, applied to the running store without losing values.
//!
//! Called by the supervisor (`bridge`) while ingest is held, before the collector takes the new plan:
//! every broker's table is built again with the new plan's exact topics registered in its routing order
//! (so that `RouteId`s are the new plan's, as `Store::for_plan` numbers them), then the values of the
//! broker of the same name move in: a topic still configured keeps its value under its new route, any
//! other becomes a seen topic (evicted first when the budget needs room). Brokers gone take their values
//! with them; new ones start empty.

use super::brokers::BrokerState;
use super::table::{self, Table};
use super::Store;
use crate::names::BrokerId;
use crate::plan::Plan;

impl Store {
    /// Re-registers the store for `plan`; `from[b]` is the running broker whose values and connection
    /// state new broker `b` takes (`plan::Diff::broker_from`). The limits stay those of the start.
    pub fn replan(&self, plan: &Plan, from: &[Option<BrokerId>]) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut old_tables: Vec<Option<Table>> = std::mem::take(&mut inner.topics)
            .into_iter()
            .map(Some)
            .collect();
        let mut old_states: Vec<Option<BrokerState>> = std::mem::take(&mut inner.brokers)
            .into_iter()
            .map(Some)
            .collect();
        let (mut topics, mut bytes) = (0, 0);
        for (b, broker) in plan.brokers.iter().enumerate() {
            let mut t = Table::default();
            for topic in plan.routing.get(b).map_or(&[][..], |r| &r.exact) {
                let _ = t.register(&self.hasher, topic.name.clone());
            }
            for test in plan
                .tests
                .iter()
                .filter(|t| t.broker == b && t.is_periodic())
            {
                for topic in test.topics.iter() {
                    t.pin(&self.hasher, topic.shared());
                }
            }
            let old = from.get(b).copied().flatten();
            if let Some(old_table) = old.and_then(|o| old_tables.get_mut(o)?.take()) {
                for named in old_table.into_entries() {
                    if !named.entry.has_value() {
                        continue;
                    }
                    let h = table::hash(&self.hasher, &named.name);
                    match t.find_mut(h, &named.name) {
                        // A refused topic that a test now wants starts over, with its payload kept.
                        Some((slot, _)) if !named.entry.refused() => slot.entry = named.entry,
                        Some(_) => continue,
                        None => {
                            if t.insert_seen(&self.hasher, h, named).is_none() {
                                continue;
                            }
                        }
                    }
                }
            }
            for n in t.all() {
                if n.entry.has_value() {
                    topics += 1;
                    bytes += n.cost();
                }
            }
            t.shrink_to_fit(&self.hasher);
            inner.topics.push(t);
            let state = old
                .and_then(|o| old_states.get_mut(o)?.take())
                .map(|mut s| {
                    s.url = broker.url.to_string();
                    s
                })
                .unwrap_or_else(|| BrokerState::new(&broker.name, &broker.url.to_string()));
            inner.brokers.push(state);
        }
        inner.usage.topics = topics;
        inner.usage.bytes = bytes;
        drop(guard);
        crate::heap::release_free_memory();
        for b in 0..plan.brokers.len() {
            self.notify(|| super::Change::Broker(b));
        }
    }
}
