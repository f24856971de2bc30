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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures;
    use crate::plan::Shape;
    use crate::store::Incoming;
    use std::time::SystemTime;

    fn plan(text: &str) -> Plan {
        Plan::compile(&fixtures::config(text)).expect("plan")
    }

    fn broker(name: &str) -> String {
        format!("[[broker]]\nname = \"{name}\"\nurl = \"mqtt://127.0.0.1:1883\"\n")
    }

    fn topics(host: &str, broker: &str, topics: &str) -> String {
        format!("[[test]]\nhost = \"{host}\"\ntest = \"env\"\nbroker = \"{broker}\"\ntopics = [{topics}]\n")
    }

    fn put(store: &Store, broker: BrokerId, topic: &str, payload: &str) {
        let msg = Incoming {
            topic,
            payload: payload.as_bytes(),
            qos: 0,
            retained: false,
            at: SystemTime::now(),
        };
        store.update(broker, &msg).expect("stored");
    }

    /// Values follow their broker by name and their topic to its new route; a broker gone takes its
    /// values along; a topic no longer configured stays as a seen topic; the budget's figures add up.
    #[test]
    fn values_follow_broker_names_and_topics_are_renumbered() {
        let old = plan(
            &(broker("a")
                + &broker("b")
                + &topics("h1", "a", "\"x\", \"y\"")
                + &topics("h2", "b", "\"q\"")),
        );
        let store = Store::for_plan(&old);
        put(&store, 0, "x", "1");
        put(&store, 0, "y", "2");
        put(&store, 0, "seen", "3");
        put(&store, 1, "q", "4");
        store.set_connected(0, true, None);
        let usage = store.usage();

        // b removed, c added before a; a's test now reads y and a new z, and no longer x.
        let new = plan(&(broker("c") + &broker("a") + &topics("h1", "a", "\"z\", \"y\"")));
        let diff = Shape::of(&old).diff(&Shape::of(&new));
        store.replan(&new, &diff.broker_from);

        assert_eq!(store.get(1, "y").unwrap().payload.as_ref(), b"2");
        assert_eq!(
            store.get(1, "x").unwrap().payload.as_ref(),
            b"1",
            "kept as a seen topic"
        );
        assert_eq!(store.get(1, "seen").unwrap().payload.as_ref(), b"3");
        assert!(store.get(0, "q").is_none() && store.get(1, "q").is_none());
        assert_eq!(
            store
                .registered_names(1, 0, 10)
                .iter()
                .map(|n| &**n)
                .collect::<Vec<_>>(),
            ["z", "y"]
        );
        let states = store.brokers();
        assert_eq!((states[0].name.as_str(), states[0].connected), ("c", false));
        assert_eq!((states[1].name.as_str(), states[1].connected), ("a", true));
        let after = store.usage();
        assert_eq!(after.topics, usage.topics - 1);
        assert!(after.bytes < usage.bytes);
        // y is registered under its new route: ingest finds it with the route.
        let msg = Incoming {
            topic: "y",
            payload: b"5",
            qos: 0,
            retained: false,
            at: SystemTime::now(),
        };
        let ingested = store.ingest(1, &msg, None);
        assert_eq!(ingested.registered.map(|(_, r)| r), Some(1));
    }
}
