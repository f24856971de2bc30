//! The topic store: the latest value of every topic seen, per broker, and each broker's connection state.
//!
//! Fed by the MQTT ingest tasks (`update`, `set_connected`); read by the collector (last known values for
//! periodic and broker-stats tests) and by the web layer. One `std::sync::Mutex`, never held across an
//! `.await`, so the lock is held only for a hash lookup and a small copy.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

/// Index of a broker in the config's `[[broker]]` list.
pub type BrokerId = usize;

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

/// Why `update` did not store a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A new topic while the store holds `max_topics` already.
    Full,
}

/// What the store keeps per topic: `TopicValue` packed for 100k-topic sites (48 bytes plus the payload,
/// against 88 plus the payload for `TopicValue` itself; `get` unpacks).
struct Entry {
    payload: Box<[u8]>,
    /// As published; u32 is plenty, MQTT's own limit is 256 MiB.
    size: u32,
    qos: u8,
    retained: bool,
    count: u64,
    received_at: Stamp,
    changed_at: Stamp,
}

/// A `SystemTime` in 8 bytes: nanoseconds since the Unix epoch (until the year 2554; earlier clocks, which
/// a sane host never has, read as the epoch).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp(u64);

impl From<SystemTime> for Stamp {
    fn from(t: SystemTime) -> Stamp {
        let nanos = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Stamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl From<Stamp> for SystemTime {
    fn from(s: Stamp) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(s.0)
    }
}

impl Entry {
    fn value(&self) -> TopicValue {
        TopicValue {
            payload: Bytes::copy_from_slice(&self.payload),
            size: self.size as usize,
            received_at: self.received_at.into(),
            changed_at: self.changed_at.into(),
            qos: self.qos,
            retained: self.retained,
            count: self.count,
        }
    }
}

struct Inner {
    /// Keyed by the shared topic name when ingest has one (`update_named`), so a configured topic's name
    /// is not held twice.
    topics: Vec<HashMap<Arc<str>, Entry>>,
    total: usize,
    brokers: Vec<BrokerState>,
}

/// Cheap-to-clone handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
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
    /// `brokers` are (name, url) in config order; their index is the `BrokerId`.
    pub fn new(brokers: &[(String, String)], max_topics: usize, max_payload: usize) -> Self {
        let inner = Inner {
            topics: brokers.iter().map(|_| HashMap::new()).collect(),
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

    /// Records a message. Returns whether the payload changed.
    pub fn update(&self, broker: BrokerId, msg: &Incoming<'_>) -> Result<bool, Rejected> {
        self.update_named(broker, msg, None)
    }

    /// `update`, with the shared copy of the topic's name when the caller has one (ingest does for every
    /// configured topic), used as the key of a new topic.
    pub fn update_named(
        &self,
        broker: BrokerId,
        msg: &Incoming<'_>,
        name: Option<&Arc<str>>,
    ) -> Result<bool, Rejected> {
        let result = self.update_locked(broker, msg, name);
        if let Ok((_, key)) = &result {
            self.notify(|| Change::Topic {
                broker,
                topic: key.clone().unwrap_or_else(|| Arc::from(msg.topic)),
            });
        }
        result.map(|(changed, _)| changed)
    }

    /// Returns whether the payload changed, and the key when watchers want it.
    fn update_locked(
        &self,
        broker: BrokerId,
        msg: &Incoming<'_>,
        name: Option<&Arc<str>>,
    ) -> Result<(bool, Option<Arc<str>>), Rejected> {
        let kept = &msg.payload[..msg.payload.len().min(self.max_payload)];
        let size = u32::try_from(msg.payload.len()).unwrap_or(u32::MAX);
        let at = Stamp::from(msg.at);
        let watched = self.changes.receiver_count() > 0;
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(b) = inner.brokers.get_mut(broker) {
            b.messages += 1;
            b.last_message = Some(msg.at);
        }
        let Some(map) = inner.topics.get_mut(broker) else {
            return Ok((false, None));
        };
        if let Some(v) = map.get_mut(msg.topic) {
            let changed = *v.payload != *kept;
            if changed {
                v.payload = kept.into();
                v.changed_at = at;
            }
            v.size = size;
            v.received_at = at;
            v.qos = msg.qos;
            v.retained = msg.retained;
            v.count += 1;
            // Only while someone watches (the web's live view): a second lookup for the shared key.
            let key = watched
                .then(|| map.get_key_value(msg.topic).map(|(k, _)| k.clone()))
                .flatten();
            return Ok((changed, key));
        }
        if inner.total >= self.max_topics {
            return Err(Rejected::Full);
        }
        inner.total += 1;
        let key = name.cloned().unwrap_or_else(|| Arc::from(msg.topic));
        map.insert(
            key.clone(),
            Entry {
                payload: kept.into(),
                size,
                qos: msg.qos,
                retained: msg.retained,
                count: 1,
                received_at: at,
                changed_at: at,
            },
        );
        Ok((true, Some(key)))
    }

    pub fn get(&self, broker: BrokerId, topic: &str) -> Option<TopicValue> {
        self.lock().topics.get(broker)?.get(topic).map(Entry::value)
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
            .flat_map(|(b, map)| map.iter().map(move |(t, v)| (b, t, v)))
            .filter(|(b, t, _)| keep(*b, t))
            .map(|(b, t, v)| (b, t.to_string(), v.value()))
            .collect();
        drop(guard);
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }

    /// Payload bytes kept per topic (`limits.max_payload_bytes`).
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

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
        s.update_named(0, &m, Some(&name)).unwrap();
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
