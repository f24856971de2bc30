//! The topic store: the latest value of every topic seen, per broker, and each broker's connection state.
//!
//! Filled at start-up with the configured exact topics (`Store::for_plan`, in the plan's routing order),
//! which stay invisible until a message arrives on them; fed by the MQTT ingest tasks (`ingest`, `set_connected`),
//! whose one lookup per message also yields a configured topic's shared name and the collector's route;
//! read by the collector (last known values for periodic and broker-stats tests) and by the web layer.
//! One `std::sync::Mutex`, never held across an `.await`, so the lock is held only for a hash lookup and
//! a small copy (the hash is computed before taking it). The per-broker table is in `table`.

mod table;

use crate::plan::Plan;
use bytes::Bytes;
use std::hash::RandomState;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use table::{Message, Named, Stamp, Table};

pub use crate::names::{BrokerId, RouteId};

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

/// A broker as the web layer shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerState {
    pub name: String,
    pub url: String,
    pub connected: bool,
    /// The permanent subscriptions are acknowledged (SubAck) on the current connection.
    pub subscribed: bool,
    /// When `connected` last changed.
    pub since: Option<SystemTime>,
    pub last_message: Option<SystemTime>,
    pub messages: u64,
    pub last_error: Option<String>,
}

/// Why `ingest` did not store a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A new topic (or a registered one's first value) while the store holds `max_topics` topics with a
    /// value already.
    Full,
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

struct Inner {
    /// Per broker.
    topics: Vec<Table>,
    /// Topics with a value, all brokers together (what `max_topics` bounds).
    total: usize,
    brokers: Vec<BrokerState>,
}

/// Cheap-to-clone handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    /// The tables' hash keys, outside the mutex so that a topic is hashed before the lock is taken.
    hasher: RandomState,
    max_topics: usize,
    max_payload: usize,
    changes: tokio::sync::broadcast::Sender<Change>,
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
    /// routing order, so that a topic's `RouteId` is its index there.
    pub fn for_plan(plan: &Plan) -> Store {
        let brokers: Vec<(String, String)> = plan
            .brokers
            .iter()
            .map(|b| (b.name.clone(), b.url.to_string()))
            .collect();
        let store = Store::new(
            &brokers,
            plan.limits.max_topics,
            plan.limits.max_payload_bytes,
        );
        for (broker, routing) in plan.routing.iter().enumerate() {
            for topic in &routing.exact {
                // A fresh store holds no values yet, so every name registers, in order.
                let _ = store.register(broker, topic.name.clone());
            }
        }
        store.shrink_to_fit();
        store
    }

    /// `brokers` are (name, url) in config order; their index is the `BrokerId`.
    pub fn new(brokers: &[(String, String)], max_topics: usize, max_payload: usize) -> Self {
        let inner = Inner {
            topics: brokers.iter().map(|_| Table::default()).collect(),
            total: 0,
            brokers: brokers
                .iter()
                .map(|(name, url)| BrokerState {
                    name: name.clone(),
                    url: url.clone(),
                    connected: false,
                    subscribed: false,
                    since: None,
                    last_message: None,
                    messages: 0,
                    last_error: None,
                })
                .collect(),
        };
        Store {
            inner: Arc::new(Mutex::new(inner)),
            hasher: RandomState::new(),
            max_topics,
            max_payload,
            changes: tokio::sync::broadcast::channel(CHANGE_CAPACITY).0,
        }
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
        let (ingested, key) = self.ingest_locked(broker, msg, name);
        if let Some(key) = key {
            self.notify(|| Change::Topic { broker, topic: key });
        }
        ingested
    }

    /// `ingest` under the lock. Also returns the key to send watchers, when the value was stored and
    /// someone watches.
    fn ingest_locked(
        &self,
        broker: BrokerId,
        msg: &Incoming<'_>,
        name: Option<&Arc<str>>,
    ) -> (Ingested, Option<Arc<str>>) {
        let m = Message {
            kept: &msg.payload[..msg.payload.len().min(self.max_payload)],
            size: u32::try_from(msg.payload.len()).unwrap_or(u32::MAX),
            qos: msg.qos,
            retained: msg.retained,
            at: Stamp::from(msg.at),
        };
        let hash = table::hash(&self.hasher, msg.topic);
        let watched = self.changes.receiver_count() > 0;
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(b) = inner.brokers.get_mut(broker) {
            b.messages += 1;
            b.last_message = Some(msg.at);
        }
        let rejected = |registered| Ingested {
            stored: Err(Rejected::Full),
            registered,
            name: None,
        };
        let Some(table) = inner.topics.get_mut(broker) else {
            return (
                Ingested {
                    stored: Ok(false),
                    registered: None,
                    name: None,
                },
                None,
            );
        };
        if let Some((named, route)) = table.find_mut(hash, msg.topic) {
            let registered = route.map(|r| (named.name.clone(), r));
            if !named.entry.has_value() {
                // A registered topic's first value: it counts from now on.
                if inner.total >= self.max_topics {
                    return (rejected(registered), None);
                }
                inner.total += 1;
            }
            let changed = named.entry.record(&m);
            let key = watched.then(|| named.name.clone());
            let name = route.is_none().then(|| named.name.clone());
            let stored = Ok(changed);
            return (
                Ingested {
                    stored,
                    registered,
                    name,
                },
                key,
            );
        }
        if inner.total >= self.max_topics {
            return (rejected(None), None);
        }
        let key = name.cloned().unwrap_or_else(|| Arc::from(msg.topic));
        let mut named = Named {
            name: key,
            entry: table::Entry::empty(),
        };
        named.entry.record(&m);
        let key = watched.then(|| named.name.clone());
        let name = Some(named.name.clone());
        if !table.insert_seen(&self.hasher, hash, named) {
            return (rejected(None), None);
        }
        inner.total += 1;
        let stored = Ok(true);
        (
            Ingested {
                stored,
                registered: None,
                name,
            },
            key,
        )
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
        self.max_payload
    }

    /// Topics with a value (registered topics count from their first message).
    pub fn topic_count(&self) -> usize {
        self.lock().total
    }

    pub fn set_connected(&self, broker: BrokerId, connected: bool, error: Option<String>) {
        let mut guard = self.lock();
        if let Some(b) = guard.brokers.get_mut(broker) {
            if b.connected != connected || b.since.is_none() {
                b.since = Some(SystemTime::now());
            }
            b.connected = connected;
            if !connected {
                b.subscribed = false;
            }
            if error.is_some() || connected {
                b.last_error = error;
            }
        }
        drop(guard);
        self.notify(|| Change::Broker(broker));
    }

    pub fn set_subscribed(&self, broker: BrokerId) {
        if let Some(b) = self.lock().brokers.get_mut(broker) {
            b.subscribed = true;
        }
        self.notify(|| Change::Broker(broker));
    }

    pub fn brokers(&self) -> Vec<BrokerState> {
        self.lock().brokers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_topics: usize, max_payload: usize) -> Store {
        Store::new(
            &[
                ("a".into(), "mqtt://a".into()),
                ("b".into(), "mqtt://b".into()),
            ],
            max_topics,
            max_payload,
        )
    }

    fn msg<'a>(topic: &'a str, payload: &'a [u8]) -> Incoming<'a> {
        Incoming {
            topic,
            payload,
            qos: 0,
            retained: false,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn keeps_latest_per_broker_and_topic() {
        let s = store(10, 100);
        assert_eq!(s.update(0, &msg("t", b"1")), Ok(true));
        assert_eq!(s.update(0, &msg("t", b"1")), Ok(false));
        assert_eq!(s.update(0, &msg("t", b"2")), Ok(true));
        s.update(1, &msg("t", b"other")).unwrap();
        let v = s.get(0, "t").unwrap();
        assert_eq!(v.payload.as_ref(), b"2");
        assert_eq!(v.count, 3);
        assert_eq!(s.get(1, "t").unwrap().payload.as_ref(), b"other");
        assert_eq!(s.topic_count(), 2);
        assert_eq!(s.brokers()[0].messages, 3);
    }

    #[test]
    fn payload_is_cut_and_size_remembered() {
        let s = store(10, 4);
        s.update(0, &msg("t", &[b'x'; 1 << 20])).unwrap();
        let v = s.get(0, "t").unwrap();
        assert_eq!(v.payload.len(), 4);
        assert_eq!(v.size, 1 << 20);
    }

    #[test]
    fn topic_cap_rejects_new_topics_only() {
        let s = store(2, 10);
        s.update(0, &msg("a", b"1")).unwrap();
        s.update(1, &msg("b", b"1")).unwrap();
        assert_eq!(s.update(0, &msg("c", b"1")), Err(Rejected::Full));
        assert_eq!(s.update(0, &msg("a", b"2")), Ok(true));
        assert!(s.get(0, "c").is_none());
    }

    #[test]
    fn watchers_get_keys_after_the_value_is_stored() {
        let s = store(1, 10);
        s.update(0, &msg("unwatched", b"1")).unwrap();
        let mut rx = s.subscribe();
        s.update(0, &msg("unwatched", b"2")).unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            Change::Topic {
                broker: 0,
                topic: "unwatched".into()
            }
        );
        assert!(s.update(1, &msg("rejected", b"1")).is_err());
        s.set_connected(1, true, None);
        assert_eq!(rx.try_recv().unwrap(), Change::Broker(1));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_new_topic_is_keyed_by_the_shared_name_and_times_survive_packing() {
        let s = store(10, 10);
        let mut rx = s.subscribe();
        let name: Arc<str> = Arc::from("room/t");
        let mut m = msg("room/t", b"1");
        m.at = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_790_000_000, 123_456_789);
        s.ingest(0, &m, Some(&name)).stored.unwrap();
        let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
            panic!("no change");
        };
        assert!(Arc::ptr_eq(&topic, &name), "the key is the caller's copy");
        let v = s.get(0, "room/t").unwrap();
        assert_eq!((v.received_at, v.changed_at), (m.at, m.at));
        // Later updates find it by its text, whoever sends them.
        s.update(0, &msg("room/t", b"2")).unwrap();
        let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
            panic!("no change");
        };
        assert!(Arc::ptr_eq(&topic, &name));
        assert_eq!(s.get(0, "room/t").unwrap().count, 2);
    }

    /// An unregistered topic's ingest hands back the store's own copy of its name, the same one every
    /// time (a rule filter's samples share it); a new topic the store refuses has none.
    #[test]
    fn an_unregistered_topic_hands_back_the_stores_name() {
        let s = store(1, 10);
        let first = s.ingest(0, &msg("a/b", b"1"), None);
        assert!(first.registered.is_none());
        let name = first.name.expect("the store's copy");
        assert_eq!(&*name, "a/b");
        let again = s.ingest(0, &msg("a/b", b"2"), None).name.expect("again");
        assert!(Arc::ptr_eq(&name, &again));
        let refused = s.ingest(0, &msg("c/d", b"1"), None);
        assert_eq!(refused.stored, Err(Rejected::Full));
        assert!(refused.name.is_none());
    }

    /// A configured topic registered at start-up is nowhere until its first message: not in `get`,
    /// `select` or `topic_count`, and no watcher hears of it.
    #[test]
    fn a_registered_topic_is_invisible_until_published() {
        let s = store(10, 10);
        let mut rx = s.subscribe();
        let name: Arc<str> = Arc::from("room/t");
        assert_eq!(s.register(0, name.clone()), Some(0));
        assert!(s.get(0, "room/t").is_none());
        assert!(s.select(|_, _| true).is_empty());
        assert_eq!(s.topic_count(), 0);
        assert!(rx.try_recv().is_err());

        let got = s.ingest(0, &msg("room/t", b"1"), None);
        assert_eq!(got.stored, Ok(true));
        assert!(
            got.name.is_none(),
            "a registered topic's name is in `registered`"
        );
        let (shared, route) = got.registered.expect("registered");
        assert!(
            Arc::ptr_eq(&shared, &name),
            "the registered copy, not a new one"
        );
        assert_eq!(route, 0);
        let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
            panic!("no change");
        };
        assert!(Arc::ptr_eq(&topic, &name));
        let v = s.get(0, "room/t").expect("visible once published");
        assert_eq!((v.payload.as_ref(), v.count), (&b"1"[..], 1));
        assert_eq!(s.select(|_, _| true).len(), 1);
        assert_eq!(s.topic_count(), 1);
        assert_eq!(s.ingest(0, &msg("room/t", b"1"), None).stored, Ok(false));
    }

    /// Each broker has its own registered topics and route ids; the same name on another broker is a
    /// topic of its own.
    #[test]
    fn registered_topics_are_per_broker() {
        let s = store(10, 10);
        assert_eq!(s.register(0, Arc::from("a")), Some(0));
        assert_eq!(s.register(0, Arc::from("b")), Some(1));
        assert_eq!(s.register(0, Arc::from("a")), Some(0), "once per name");
        assert_eq!(s.register(1, Arc::from("b")), Some(0));
        assert_eq!(s.register(2, Arc::from("b")), None, "no such broker");
        s.shrink_to_fit();

        let route = |b, t| s.ingest(b, &msg(t, b"1"), None).registered.map(|r| r.1);
        assert_eq!(route(0, "b"), Some(1));
        assert_eq!(route(1, "b"), Some(0));
        assert_eq!(route(1, "a"), None, "registered on broker 0 only");
        assert!(s.get(1, "a").is_some(), "but stored like any topic");
        assert!(s.get(0, "a").is_none());

        let names = |b| -> Vec<String> {
            s.registered_names(b, 0, 10)
                .iter()
                .map(|n| n.to_string())
                .collect()
        };
        assert_eq!(names(0), ["a", "b"]);
        assert_eq!(names(1), ["b"]);
        assert_eq!(s.registered_names(0, 1, 10).len(), 1);
    }

    /// `max_topics` counts topics with a value: registered topics count from their first message, and
    /// topics only a filter brought are bounded as before. A registered topic over the bound still
    /// reports its route, so the collector gets the message.
    #[test]
    fn max_topics_counts_values_not_registrations() {
        let s = store(2, 10);
        for t in ["r1", "r2", "r3"] {
            s.register(0, Arc::from(t));
        }
        assert_eq!(s.update(0, &msg("f1", b"1")), Ok(true));
        assert_eq!(s.update(0, &msg("r1", b"1")), Ok(true));
        assert_eq!(s.topic_count(), 2);
        let got = s.ingest(0, &msg("r2", b"1"), None);
        assert_eq!(got.stored, Err(Rejected::Full));
        assert_eq!(got.registered.map(|r| r.1), Some(1));
        assert!(s.get(0, "r2").is_none());
        assert_eq!(s.update(0, &msg("f2", b"1")), Err(Rejected::Full));
        assert_eq!(
            s.update(0, &msg("r1", b"2")),
            Ok(true),
            "known topics update"
        );
        assert_eq!(s.topic_count(), 2);
    }

    #[test]
    fn select_filters_and_sorts() {
        let s = store(10, 10);
        for t in ["z", "a", "m"] {
            s.update(0, &msg(t, b"1")).unwrap();
        }
        let topics: Vec<_> = s
            .select(|_, t| t != "m")
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(topics, ["a", "z"]);
    }
}
