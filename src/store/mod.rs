//! The topic store: the latest value of every topic seen, per broker, and each broker's connection state.
//!
//! Filled at start-up with the configured exact topics (`Store::for_plan`, in the plan's routing order),
//! which stay invisible until a message arrives on them; fed by the MQTT ingest tasks (`ingest`, `set_connected`),
//! whose one lookup per message also yields a configured topic's shared name and the collector's route;
//! read by the collector (last known values for periodic and broker-stats tests) and by the web layer.
//! One `std::sync::Mutex`, never held across an `.await`, so the lock is held only for a hash lookup and
//! a small copy (the hash is computed before taking it).
//!
//! Memory is bounded by `limits.store_bytes` (`inner`): a topic no test accepts keeps its name but not
//! its payload (`refuse`, told by the collector), and when the budget is reached the least recently
//! updated topics that no configured test waits for are evicted first.
//!
//! - `entry`: one topic's packed value and what it costs.
//! - `table`: one broker's topics: one hash lookup, registered and pinned topics, the update order.
//! - `inner`: the state under the mutex and the budget (`Usage`).
//! - `collector`: the budget's figures for `/metrics`.
//! - `replan`: a reload's new plan applied, values kept.

mod brokers;
mod collector;
mod entry;
mod inner;
mod replan;
mod table;

pub use collector::UsageCollector;
pub use entry::ENTRY_OVERHEAD;
pub use inner::{Limits, Usage};

use crate::plan::Plan;
use bytes::Bytes;
use entry::{Message, Stamp};
use inner::{Arrival, Inner};
use std::hash::RandomState;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use table::Table;

pub use crate::names::{BrokerId, RouteId};
pub use brokers::{BrokerState, Refused};

/// The latest message on one topic.
#[derive(Debug, Clone)]
pub struct TopicValue {
    /// The payload, cut to `max_payload_bytes`. Always our own copy, so a small value never pins a large
    /// network buffer.
    pub payload: Bytes,
    /// The payload's size as published (larger than `payload.len()` when it was cut).
    pub size: usize,
    pub received_at: SystemTime,
    /// When the payload last differed from the one before.
    pub changed_at: SystemTime,
    pub qos: u8,
    /// Set when the broker replayed a retained message (on subscribe) rather than forwarding a new one.
    pub retained: bool,
    /// Messages seen on this topic.
    pub count: u64,
}

/// Why `ingest` did not store a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A new topic (or a registered one's first value) while the store holds `max_topics` topics with a
    /// value already.
    Full,
    /// It does not fit in `limits.store_bytes` even after evicting every topic that may be evicted.
    Budget,
    /// No test accepts the topic (`Store::refuse`): its messages are counted, their payload not kept.
    Refused,
}

/// What `Store::ingest` did with a message.
#[derive(Debug)]
pub struct Ingested {
    /// Whether the payload changed, or why the message was not stored.
    pub stored: Result<bool, Rejected>,
    /// A registered topic's shared name and route, for the collector; there even when the value was
    /// rejected, as a message the collector wants is forwarded all the same.
    pub registered: Option<(Arc<str>, RouteId)>,
    /// The store's copy of the name of a topic that is not registered, when the store holds it: a rule
    /// filter's sample shares it instead of copying the name for every message.
    pub name: Option<Arc<str>>,
}

/// Cheap-to-clone handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    /// The tables' hash keys, outside the mutex so that a topic is hashed before the lock is taken.
    hasher: RandomState,
    limits: Limits,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Woken whenever a broker's connection state is set: the collector's cue to look (`link_changes`).
    links: Arc<tokio::sync::Notify>,
}

/// A change notification for watchers (the web layer's live updates). Only the key: a watcher reads the
/// value itself. Sent only while someone subscribes, so ingest pays one atomic load otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Topic { broker: BrokerId, topic: Arc<str> },
    Broker(BrokerId),
}

/// Notifications buffered per watcher; a watcher that falls further behind skips (and is told so).
const CHANGE_CAPACITY: usize = 1024;

/// One message as ingest hands it to the store.
pub struct Incoming<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retained: bool,
    pub at: SystemTime,
}

impl Store {
    /// A store for the plan's brokers, with every exact topic of the plan's routing registered in
    /// routing order, so that a topic's `RouteId` is its index there, and the topics of periodic tests
    /// pinned (kept whatever the budget).
    pub fn for_plan(plan: &Plan) -> Store {
        let brokers: Vec<(String, String)> = plan
            .brokers
            .iter()
            .map(|b| (b.name.clone(), b.url.to_string()))
            .collect();
        let store = Store::with_limits(
            &brokers,
            Limits {
                max_topics: plan.limits.max_topics,
                max_payload: plan.limits.max_payload_bytes,
                budget: plan.limits.store_bytes,
            },
        );
        for (broker, routing) in plan.routing.iter().enumerate() {
            for topic in &routing.exact {
                // A fresh store holds no values yet, so every name registers, in order.
                let _ = store.register(broker, topic.name.clone());
            }
        }
        // After registering, so that a topic both kinds of test read keeps its route.
        for t in plan.tests.iter().filter(|t| t.is_periodic()) {
            for topic in t.topics.iter() {
                store.pin(t.broker, topic.shared());
            }
        }
        store.shrink_to_fit();
        store
    }

    /// `brokers` are (name, url) in config order; their index is the `BrokerId`. No byte budget (tests).
    pub fn new(brokers: &[(String, String)], max_topics: usize, max_payload: usize) -> Self {
        Store::with_limits(
            brokers,
            Limits {
                max_topics,
                max_payload,
                budget: usize::MAX,
            },
        )
    }

    /// `brokers` are (name, url) in config order; their index is the `BrokerId`.
    pub fn with_limits(brokers: &[(String, String)], limits: Limits) -> Self {
        let states = brokers
            .iter()
            .map(|(name, url)| BrokerState::new(name, url))
            .collect();
        let tables = brokers.iter().map(|_| Table::default()).collect();
        Store {
            inner: Arc::new(Mutex::new(Inner::new(tables, states, limits.budget))),
            hasher: RandomState::new(),
            limits,
            changes: tokio::sync::broadcast::channel(CHANGE_CAPACITY).0,
            links: Arc::default(),
        }
    }

    /// Notified after a broker's connection state was set (connected, or a failed attempt); one waiter
    /// (the collector) reads `brokers` then. A notification while nobody waits is kept for the next.
    pub fn link_changes(&self) -> Arc<tokio::sync::Notify> {
        self.links.clone()
    }

    /// Watches topic updates and broker state changes (sent after the store has the new value).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn notify(&self, change: impl FnOnce() -> Change) {
        if self.changes.receiver_count() > 0 {
            let _ = self.changes.send(change());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing in this file panics while holding the lock; if something did, the data is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers one of `broker`'s configured exact topics, keyed by the shared copy of its name: a slot
    /// without a value, which no reader sees until a message arrives. Returns its route id (the same one
    /// when the name is registered already); `None` for an unknown broker, or a topic that came in a
    /// message before it was registered, which cannot happen when registering is done before ingest
    /// starts, as `Store::for_plan` does.
    pub fn register(&self, broker: BrokerId, name: Arc<str>) -> Option<RouteId> {
        self.lock()
            .topics
            .get_mut(broker)?
            .register(&self.hasher, name)
    }

    /// Pins one of `broker`'s topics that a periodic test reads: kept like a registered topic (never
    /// evicted), but without a route. Nothing to do for a registered topic.
    pub fn pin(&self, broker: BrokerId, name: Arc<str>) {
        if let Some(t) = self.lock().topics.get_mut(broker) {
            t.pin(&self.hasher, name);
        }
    }

    /// Frees the spare room registering left; for after start-up.
    pub fn shrink_to_fit(&self) {
        for t in &mut self.lock().topics {
            t.shrink_to_fit(&self.hasher);
        }
    }

    /// The names of `broker`'s registered topics `start..start + max`, in route order (for the
    /// SUBSCRIBE packets).
    pub fn registered_names(&self, broker: BrokerId, start: usize, max: usize) -> Vec<Arc<str>> {
        self.lock()
            .topics
            .get(broker)
            .map(|t| t.registered_names(start, max))
            .unwrap_or_default()
    }

    /// Records a message. Returns whether the payload changed.
    pub fn update(&self, broker: BrokerId, msg: &Incoming<'_>) -> Result<bool, Rejected> {
        self.ingest(broker, msg, None).stored
    }

    /// Records a message, and says whether its topic is registered. `name` is a shared copy of the
    /// topic's name if the caller has one (a periodic snapshot does), used as the key when the topic is
    /// new and not registered.
    pub fn ingest(
        &self,
        broker: BrokerId,
        msg: &Incoming<'_>,
        name: Option<&Arc<str>>,
    ) -> Ingested {
        let arrival = Arrival {
            broker,
            hash: table::hash(&self.hasher, msg.topic),
            topic: msg.topic,
            message: Message {
                kept: &msg.payload[..msg.payload.len().min(self.limits.max_payload)],
                size: u32::try_from(msg.payload.len()).unwrap_or(u32::MAX),
                qos: msg.qos,
                retained: msg.retained,
                at: Stamp::from(msg.at),
            },
            name,
            watched: self.changes.receiver_count() > 0,
        };
        let outcome = self.lock().ingest(&self.limits, &self.hasher, &arrival);
        if outcome.trim {
            crate::heap::release_free_memory();
        }
        if let Some(key) = outcome.key {
            self.notify(|| Change::Topic { broker, topic: key });
        }
        outcome.ingested
    }

    /// No test accepts `topic` (the collector found no rule that takes it): from now on only its name and
    /// its message count are kept, not its payload, and readers no longer see it. Registered and pinned
    /// topics stay as they are.
    pub fn refuse(&self, broker: BrokerId, topic: &str) {
        let hash = table::hash(&self.hasher, topic);
        if self.lock().refuse(broker, hash, topic) {
            crate::heap::release_free_memory();
        }
    }

    /// What the store holds against its budget, and what the budget has done so far.
    pub fn usage(&self) -> Usage {
        self.lock().usage
    }

    /// The topic's latest value; `None` if nothing was published on it (registered or not).
    pub fn get(&self, broker: BrokerId, topic: &str) -> Option<TopicValue> {
        let hash = table::hash(&self.hasher, topic);
        self.lock()
            .topics
            .get(broker)?
            .find(hash, topic)?
            .0
            .entry
            .value()
    }

    /// Every (broker id, topic, value) for which `keep` says yes, sorted by broker then topic.
    pub fn select(
        &self,
        mut keep: impl FnMut(BrokerId, &str) -> bool,
    ) -> Vec<(BrokerId, String, TopicValue)> {
        let guard = self.lock();
        let mut out: Vec<_> = guard
            .topics
            .iter()
            .enumerate()
            .flat_map(|(b, table)| table.values().map(move |n| (b, n)))
            .filter(|(b, n)| keep(*b, &n.name))
            .filter_map(|(b, n)| Some((b, n.name.to_string(), n.entry.value()?)))
            .collect();
        drop(guard);
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }

    /// Payload bytes kept per topic (`limits.max_payload_bytes`).
    pub fn max_payload(&self) -> usize {
        self.limits.max_payload
    }

    /// Topics with a value (registered topics count from their first message).
    pub fn topic_count(&self) -> usize {
        self.lock().usage.topics
    }
}

#[cfg(test)]
mod tests;
