//! What the store keeps per topic (`Entry`, packed), a topic with its entry (`Named`), what one topic
//! costs against the budget (`cost`), and the 8-byte time stamps they use.
//!
//! Made and updated by the table (`table`) and the budget logic (`inner`) under the store's mutex;
//! unpacked into a `TopicValue` for readers.

use super::TopicValue;
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;

/// What one topic costs the store besides its name and its payload: its slot in the table's `Vec` (64
/// bytes, up to twice that while the `Vec` has just grown), its LRU links (8, up to 16), its index slot
/// (5 bytes at a load of at least 7/16), and the allocator's headers and rounding for the name and the
/// payload (up to 39 and 23 bytes). The sum of the worst cases, so that the budget is an upper bound of the
/// memory the store's topics take, not an estimate.
pub const ENTRY_OVERHEAD: usize = 224;

/// A `SystemTime` in 8 bytes: nanoseconds since the Unix epoch (until the year 2554; earlier clocks, which
/// a sane host never has, read as the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// What the store keeps per topic: `TopicValue` packed for 100k-topic sites (48 bytes plus the payload,
/// against 88 plus the payload for `TopicValue` itself; `value` unpacks).
pub(super) struct Entry {
    payload: Box<[u8]>,
    /// As published; u32 is plenty, MQTT's own limit is 256 MiB.
    size: u32,
    qos: u8,
    retained: bool,
    /// Set when no test accepts the topic: its messages are counted, their payload is not kept, and no
    /// reader sees it (in the byte that would otherwise be padding).
    refused: bool,
    /// Messages seen on this topic; 0 for a registered topic nothing was published on yet.
    count: u64,
    received_at: Stamp,
    changed_at: Stamp,
}

impl Entry {
    /// A registered (or pinned) topic's entry before its first message.
    pub fn empty() -> Entry {
        Entry {
            payload: Box::default(),
            size: 0,
            qos: 0,
            retained: false,
            refused: false,
            count: 0,
            received_at: Stamp(0),
            changed_at: Stamp(0),
        }
    }

    /// Whether a message has been recorded (only registered and pinned topics are ever without one).
    pub fn has_value(&self) -> bool {
        self.count > 0
    }

    /// Whether readers see it: it has a value that is kept (not refused).
    pub fn visible(&self) -> bool {
        self.has_value() && !self.refused
    }

    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Payload bytes held.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// Records a message. Returns whether the payload changed, which the first message always does. A
    /// refused topic records only that a message came.
    pub fn record(&mut self, m: &Message<'_>) -> bool {
        let changed = !self.has_value() || *self.payload != *m.kept;
        if changed && !self.refused {
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

    /// Drops the payload and keeps only that messages come (no test accepts the topic).
    pub fn refuse(&mut self) {
        self.refused = true;
        self.payload = Box::default();
    }

    pub fn received_at(&self) -> Stamp {
        self.received_at
    }

    /// The value as readers see it; `None` while nothing has been published on the topic, or when the
    /// topic is refused.
    pub fn value(&self) -> Option<TopicValue> {
        self.visible().then(|| TopicValue {
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

impl Named {
    /// What this topic counts against the budget: the fixed overhead, its name and its payload.
    pub fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.name.len() + self.entry.payload_len()
    }
}
