//! One broker's topic table: every topic of that broker, its latest value, found with one hash lookup.
//!
//! Owned by `Store`, under its mutex. Two kinds of topic live here:
//! - *registered* ones: the exact topics the config's tests want on this broker, added at start-up by
//!   `collect::routing` (through `Store::register`) before any message, with no value yet. A registered
//!   topic's position is its `RouteId`, the index of its route in the collector's `RouteTable`, so the
//!   one lookup ingest does per message finds the value to update, the shared name and the route at once.
//! - *seen* ones: any other topic a message arrived on (what a rule filter or a periodic snapshot brought).
//!
//! Layout (sized for memory): the entries sit in two `Vec`s; the hash table keeps only a 4-byte position
//! per slot (hashbrown's `HashTable`, 0.65 MB at 100,000 topics). Until this table took over its job,
//! ingest kept its own map of the exact topics beside the store's: a second table of 24-byte slots
//! (3.3 MB at 100,000 topics) and a second lookup per message.
//!
//! Design: a registered topic without a value (`Entry::count == 0`) is invisible to every reader: `find`
//! answers with it only so that ingest can fill it in, `Entry::value` and `values` skip it.

use super::{RouteId, TopicValue};
use bytes::Bytes;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::SystemTime;

/// The hash of a topic name. Always of the `str`, whether it is held as `&str` or `Arc<str>`, so a
/// lookup by the text finds an entry keyed by the shared name.
pub(super) fn hash(hasher: &RandomState, topic: &str) -> u64 {
    hasher.hash_one(topic)
}

/// What the store keeps per topic: `TopicValue` packed for 100k-topic sites (48 bytes plus the payload,
/// against 88 plus the payload for `TopicValue` itself; `value` unpacks).
pub(super) struct Entry {
    payload: Box<[u8]>,
    /// As published; u32 is plenty, MQTT's own limit is 256 MiB.
    size: u32,
    qos: u8,
    retained: bool,
    /// Messages seen on this topic; 0 for a registered topic nothing was published on yet.
    count: u64,
    received_at: Stamp,
    changed_at: Stamp,
}

/// A `SystemTime` in 8 bytes: nanoseconds since the Unix epoch (until the year 2554; earlier clocks, which
/// a sane host never has, read as the epoch).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp(u64);

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

/// One message as the table records it: the payload already cut to `max_payload_bytes`.
pub(super) struct Message<'a> {
    pub kept: &'a [u8],
    pub size: u32,
    pub qos: u8,
    pub retained: bool,
    pub at: Stamp,
}

impl Entry {
    /// A registered topic's entry before its first message.
    pub fn empty() -> Entry {
        Entry {
            payload: Box::default(),
            size: 0,
            qos: 0,
            retained: false,
            count: 0,
            received_at: Stamp(0),
            changed_at: Stamp(0),
        }
    }

    /// Whether a message has been recorded (only registered topics are ever without one).
    pub fn has_value(&self) -> bool {
        self.count > 0
    }

    /// Records a message. Returns whether the payload changed, which the first message always does.
    pub fn record(&mut self, m: &Message<'_>) -> bool {
        let changed = !self.has_value() || *self.payload != *m.kept;
        if changed {
            self.payload = m.kept.into();
            self.changed_at = m.at;
        }
        self.size = m.size;
        self.received_at = m.at;
        self.qos = m.qos;
        self.retained = m.retained;
        self.count += 1;
        changed
    }

    /// The value as readers see it; `None` while nothing has been published on the topic.
    pub fn value(&self) -> Option<TopicValue> {
        self.has_value().then(|| TopicValue {
            payload: Bytes::copy_from_slice(&self.payload),
            size: self.size as usize,
            received_at: self.received_at.into(),
            changed_at: self.changed_at.into(),
            qos: self.qos,
            retained: self.retained,
            count: self.count,
        })
    }
}

/// A topic and its entry: 64 bytes (a test checks it).
pub(super) struct Named {
    /// For a configured topic, the config's shared copy (`config::TopicName::shared`).
    pub name: Arc<str>,
    pub entry: Entry,
}

/// Where a topic's entry is: `registered[i]` (`i` is its `RouteId`), or `seen[i]` when `SEEN` is set.
#[derive(Clone, Copy)]
struct Pos(u32);

const SEEN: u32 = 1 << 31;

/// Entries either `Vec` can index with the bit left by `SEEN`; a broker reaching it would have used
/// hundreds of GB first, `limits.max_topics` stops it long before.
const MAX_ENTRIES: usize = SEEN as usize;

#[derive(Default)]
pub(super) struct Table {
    index: HashTable<Pos>,
    /// Registered topics, by `RouteId`.
    registered: Vec<Named>,
    /// Topics that came without being registered, in the order they first came.
    seen: Vec<Named>,
}

/// The entry at `pos`; only `None` if the index and the `Vec`s disagree, which nothing here lets happen.
fn at<'a>(registered: &'a [Named], seen: &'a [Named], pos: Pos) -> Option<&'a Named> {
    if pos.0 & SEEN == 0 {
        registered.get(pos.0 as usize)
    } else {
        seen.get((pos.0 & !SEEN) as usize)
    }
}

/// The rehash function the index needs when it grows or shrinks.
fn rehash<'a>(
    hasher: &'a RandomState,
    registered: &'a [Named],
    seen: &'a [Named],
) -> impl Fn(&Pos) -> u64 + 'a {
    move |p| at(registered, seen, *p).map_or(0, |n| hash(hasher, &n.name))
}

impl Table {
    fn position(&self, hash: u64, topic: &str) -> Option<Pos> {
        let (registered, seen) = (&self.registered, &self.seen);
        self.index
            .find(hash, |p| {
                at(registered, seen, *p).is_some_and(|n| *n.name == *topic)
            })
            .copied()
    }

    /// The topic's entry (with or without a value), and its route when it is registered.
    pub fn find(&self, hash: u64, topic: &str) -> Option<(&Named, Option<RouteId>)> {
        let pos = self.position(hash, topic)?;
        let route = (pos.0 & SEEN == 0).then_some(pos.0);
        Some((at(&self.registered, &self.seen, pos)?, route))
    }

    /// `find`, for updating the entry.
    pub fn find_mut(&mut self, hash: u64, topic: &str) -> Option<(&mut Named, Option<RouteId>)> {
        let pos = self.position(hash, topic)?;
        if pos.0 & SEEN == 0 {
            Some((self.registered.get_mut(pos.0 as usize)?, Some(pos.0)))
        } else {
            Some((self.seen.get_mut((pos.0 & !SEEN) as usize)?, None))
        }
    }

    /// Registers `name` (without a value) and returns its route, or the route it already has. `None` when
    /// it came as a seen topic already (registering happens before ingest starts, so it cannot) or the
    /// table is full.
    pub fn register(&mut self, hasher: &RandomState, name: Arc<str>) -> Option<RouteId> {
        let h = hash(hasher, &name);
        if let Some(pos) = self.position(h, &name) {
            return (pos.0 & SEEN == 0).then_some(pos.0);
        }
        if self.registered.len() >= MAX_ENTRIES {
            return None;
        }
        let route = RouteId::try_from(self.registered.len()).ok()?;
        self.registered.push(Named {
            name,
            entry: Entry::empty(),
        });
        let Table {
            index,
            registered,
            seen,
        } = self;
        index.insert_unique(h, Pos(route), rehash(hasher, registered, seen));
        Some(route)
    }

    /// Adds a topic that is not registered; `false` (and nothing added) when the table is full.
    pub fn insert_seen(&mut self, hasher: &RandomState, h: u64, named: Named) -> bool {
        let Some(i) = u32::try_from(self.seen.len())
            .ok()
            .filter(|&i| (i as usize) < MAX_ENTRIES)
        else {
            return false;
        };
        self.seen.push(named);
        let Table {
            index,
            registered,
            seen,
        } = self;
        index.insert_unique(h, Pos(i | SEEN), rehash(hasher, registered, seen));
        true
    }

    /// Every topic with a value: the registered ones in route order, then the seen ones.
    pub fn values(&self) -> impl Iterator<Item = &Named> {
        self.registered
            .iter()
            .chain(&self.seen)
            .filter(|n| n.entry.has_value())
    }

    /// The names of the registered topics `start..start + max`, in route order.
    pub fn registered_names(&self, start: usize, max: usize) -> Vec<Arc<str>> {
        self.registered
            .iter()
            .skip(start)
            .take(max)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Frees the spare room left by registering (the `Vec` and the index grow by doubling).
    pub fn shrink_to_fit(&mut self, hasher: &RandomState) {
        self.registered.shrink_to_fit();
        let Table {
            index,
            registered,
            seen,
        } = self;
        index.shrink_to_fit(rehash(hasher, registered, seen));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Message<'_> {
        Message {
            kept: payload,
            size: payload.len() as u32,
            qos: 1,
            retained: false,
            at: Stamp::from(SystemTime::now()),
        }
    }

    fn named(name: &str) -> Named {
        Named {
            name: Arc::from(name),
            entry: Entry::empty(),
        }
    }

    /// The memory figures of BENCHMARKS.md count on these sizes.
    #[test]
    fn entries_stay_packed() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
        assert_eq!(std::mem::size_of::<Named>(), 64);
        assert_eq!(std::mem::size_of::<Pos>(), 4);
    }

    #[test]
    fn registered_topics_are_numbered_in_order_and_once() {
        let h = RandomState::new();
        let mut t = Table::default();
        assert_eq!(t.register(&h, Arc::from("a")), Some(0));
        assert_eq!(t.register(&h, Arc::from("b")), Some(1));
        assert_eq!(
            t.register(&h, Arc::from("a")),
            Some(0),
            "already registered"
        );
        assert!(t.insert_seen(&h, hash(&h, "s"), named("s")));
        assert_eq!(t.register(&h, Arc::from("s")), None, "came as a seen topic");
        assert_eq!(t.register(&h, Arc::from("c")), Some(2));
        let names: Vec<String> = t
            .registered_names(1, 5)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["b", "c"]);
        t.shrink_to_fit(&h);
        for (topic, route) in [("a", Some(0)), ("b", Some(1)), ("c", Some(2)), ("s", None)] {
            let (n, r) = t.find(hash(&h, topic), topic).unwrap();
            assert_eq!((&*n.name, r), (topic, route));
        }
        assert!(t.find(hash(&h, "x"), "x").is_none());
    }

    #[test]
    fn a_registered_topic_has_no_value_until_its_first_message() {
        let h = RandomState::new();
        let mut t = Table::default();
        t.register(&h, Arc::from("a"));
        assert_eq!(t.values().count(), 0);
        let (n, _) = t.find(hash(&h, "a"), "a").unwrap();
        assert!(n.entry.value().is_none());
        let (n, _) = t.find_mut(hash(&h, "a"), "a").unwrap();
        assert!(
            n.entry.record(&message(b"")),
            "the first message is a change"
        );
        assert!(!n.entry.record(&message(b"")));
        let v = n.entry.value().unwrap();
        assert_eq!((v.count, v.qos, v.payload.len()), (2, 1, 0));
        assert_eq!(t.values().count(), 1);
    }

    /// Seen topics that outgrow the index many times over are all still found by their text.
    #[test]
    fn lookups_survive_growth() {
        let h = RandomState::new();
        let mut t = Table::default();
        for i in 0..1000 {
            t.register(&h, Arc::from(format!("r/{i}")));
            let s = format!("s/{i}");
            assert!(t.insert_seen(&h, hash(&h, &s), named(&s)));
        }
        for i in 0..1000 {
            let r = format!("r/{i}");
            assert_eq!(t.find(hash(&h, &r), &r).unwrap().1, Some(i));
            let s = format!("s/{i}");
            assert_eq!(t.find(hash(&h, &s), &s).unwrap().1, None);
        }
    }
}
