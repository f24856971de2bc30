//! The store's state under its mutex, and the memory budget: what each message costs, what is evicted
//! to make room, what is refused.
//!
//! Driven by `Store` (in `mod.rs`), which hashes outside the lock and calls in here with the lock held.
//! The budget (`limits.store_bytes`) counts every topic that holds a value at `entry::Named::cost` (the
//! fixed `ENTRY_OVERHEAD`, the name, the payload kept). When a message would take the store past it, the
//! least recently updated *seen* topics (the ones no configured test waits for) are evicted, oldest first,
//! across all brokers (the oldest of each broker's table is compared: O(brokers) per eviction, no scan of
//! the topics). Registered and pinned topics are always kept: their number is fixed by the config, so the
//! store never holds more than the budget or what the configured topics alone hold, whichever is more.

use super::entry::{Message, Named};
use super::table::{Kind, Table};
use super::{BrokerState, Ingested, Rejected};
use crate::heap::TRIM_AFTER_BYTES;
use crate::names::BrokerId;
use std::hash::RandomState;
use std::sync::Arc;

/// The store's limits, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Topics with a value, all brokers together.
    pub max_topics: usize,
    /// Payload bytes kept per topic.
    pub max_payload: usize,
    /// Bytes the topics may take (`limits.store_bytes`), counted as `ENTRY_OVERHEAD + name + payload`.
    pub budget: usize,
}

/// What the store holds and what its budget has done, for `/metrics`, the API and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Topics with a value (refused ones included: they are kept by name, without their payload).
    pub topics: usize,
    /// Bytes counted against the budget.
    pub bytes: usize,
    pub budget: usize,
    /// Topics evicted to make room, and the bytes they held.
    pub evicted_topics: u64,
    pub evicted_bytes: u64,
    /// Messages on new topics that did not fit even after evicting every topic that may be evicted.
    pub over_budget: u64,
    /// Topics no test accepts (their payload is dropped), and the messages that came on them since.
    pub refused_topics: u64,
    pub refused_messages: u64,
}

pub(super) struct Inner {
    /// Per broker.
    pub topics: Vec<Table>,
    pub brokers: Vec<BrokerState>,
    pub usage: Usage,
    /// Bytes freed since malloc was last asked to trim.
    freed: usize,
}

/// One message, located: its broker, the hash of its topic, and a shared copy of the name if the caller
/// has one.
pub(super) struct Arrival<'a> {
    pub broker: BrokerId,
    pub hash: u64,
    pub topic: &'a str,
    pub message: Message<'a>,
    pub name: Option<&'a Arc<str>>,
    /// Someone watches changes: return the key to notify them with.
    pub watched: bool,
}

/// What `Inner::ingest` did: the answer for the caller, the key to notify watchers with, and whether it is
/// time to hand freed memory back.
pub(super) struct Outcome {
    pub ingested: Ingested,
    pub key: Option<Arc<str>>,
    pub trim: bool,
}

impl Outcome {
    fn of(ingested: Ingested) -> Outcome {
        Outcome {
            ingested,
            key: None,
            trim: false,
        }
    }
}

fn rejected(
    why: Rejected,
    registered: Option<(Arc<str>, u32)>,
    name: Option<Arc<str>>,
) -> Ingested {
    Ingested {
        stored: Err(why),
        registered,
        name,
    }
}

impl Inner {
    pub fn new(topics: Vec<Table>, brokers: Vec<BrokerState>, budget: usize) -> Inner {
        Inner {
            topics,
            brokers,
            usage: Usage {
                budget,
                ..Usage::default()
            },
            freed: 0,
        }
    }

    /// Records a message: updates a topic the table has, or adds a new seen one, within the limits.
    pub fn ingest(&mut self, lim: &Limits, hasher: &RandomState, a: &Arrival<'_>) -> Outcome {
        if let Some(b) = self.brokers.get_mut(a.broker) {
            b.messages += 1;
            b.last_message = Some(a.message.at.into());
        }
        let Some(table) = self.topics.get_mut(a.broker) else {
            return Outcome::of(Ingested {
                stored: Ok(false),
                registered: None,
                name: None,
            });
        };
        let Some((named, kind)) = table.find_mut(a.hash, a.topic) else {
            return self.insert_new(lim, hasher, a);
        };
        let registered = match kind {
            Kind::Registered(r) => Some((named.name.clone(), r)),
            Kind::Pinned | Kind::Seen(_) => None,
        };
        let name = registered.is_none().then(|| named.name.clone());
        if named.entry.refused() {
            named.entry.record(&a.message);
            self.usage.refused_messages += 1;
            if let Kind::Seen(i) = kind {
                table.touch(i);
            }
            return Outcome::of(rejected(Rejected::Refused, registered, name));
        }
        let before = if named.entry.has_value() {
            named.cost()
        } else {
            // A registered or pinned topic's first value: it counts from now on.
            if self.usage.topics >= lim.max_topics {
                return Outcome::of(rejected(Rejected::Full, registered, name));
            }
            self.usage.topics += 1;
            0
        };
        let changed = named.entry.record(&a.message);
        let after = named.cost();
        let key = a.watched.then(|| named.name.clone());
        if let Kind::Seen(i) = kind {
            table.touch(i);
        }
        self.account(before, after);
        if self.usage.bytes > lim.budget {
            self.make_room(hasher, lim.budget, 0, Some((a.broker, a.hash, a.topic)));
            if self.usage.bytes > lim.budget && matches!(kind, Kind::Seen(_)) {
                // Even alone it does not fit (a budget smaller than one payload): it goes.
                self.remove(hasher, a.broker, a.hash, a.topic);
                self.usage.over_budget += 1;
                let trim = self.trim_due();
                return Outcome {
                    ingested: rejected(Rejected::Budget, registered, None),
                    key: None,
                    trim,
                };
            }
        }
        Outcome {
            ingested: Ingested {
                stored: Ok(changed),
                registered,
                name,
            },
            key,
            trim: self.trim_due(),
        }
    }

    /// A topic the table does not have yet: stored as a seen topic if it fits, evicting older ones.
    fn insert_new(&mut self, lim: &Limits, hasher: &RandomState, a: &Arrival<'_>) -> Outcome {
        if self.usage.topics >= lim.max_topics {
            return Outcome::of(rejected(Rejected::Full, None, None));
        }
        let mut named = Named {
            name: a.name.cloned().unwrap_or_else(|| Arc::from(a.topic)),
            entry: super::entry::Entry::empty(),
        };
        named.entry.record(&a.message);
        let need = named.cost();
        // One that could never fit evicts nothing.
        if need <= lim.budget {
            self.make_room(hasher, lim.budget, need, None);
        }
        if self.usage.bytes + need > lim.budget {
            self.usage.over_budget += 1;
            let trim = self.trim_due();
            return Outcome {
                ingested: rejected(Rejected::Budget, None, None),
                key: None,
                trim,
            };
        }
        let key = a.watched.then(|| named.name.clone());
        let name = Some(named.name.clone());
        let Some(table) = self.topics.get_mut(a.broker) else {
            return Outcome::of(rejected(Rejected::Full, None, None));
        };
        if table.insert_seen(hasher, a.hash, named).is_none() {
            return Outcome::of(rejected(Rejected::Full, None, None));
        }
        self.usage.topics += 1;
        self.usage.bytes += need;
        Outcome {
            ingested: Ingested {
                stored: Ok(true),
                registered: None,
                name,
            },
            key,
            trim: self.trim_due(),
        }
    }

    /// Evicts the least recently updated seen topics (of all brokers) until `need` more bytes fit in
    /// `budget`, or none is left that may go; never `keep` (broker, hash, topic), the topic being updated.
    fn make_room(
        &mut self,
        hasher: &RandomState,
        budget: usize,
        need: usize,
        keep: Option<(BrokerId, u64, &str)>,
    ) {
        while self.usage.bytes + need > budget {
            // The topic being updated was just made the newest of its table; when it is also the oldest,
            // it is the only one left there, and it is not evicted to make room for itself.
            let Some(b) = self.oldest_table(keep) else {
                return;
            };
            let Some(table) = self.topics.get_mut(b) else {
                return;
            };
            let Some(gone) = table.evict_oldest(hasher) else {
                return;
            };
            let cost = gone.cost();
            self.usage.bytes = self.usage.bytes.saturating_sub(cost);
            self.usage.topics = self.usage.topics.saturating_sub(1);
            self.usage.evicted_topics += 1;
            self.usage.evicted_bytes += cost as u64;
            self.freed += cost;
        }
    }

    /// The broker whose least recently updated seen topic is the oldest of all, leaving out a table whose
    /// only one is `keep`.
    fn oldest_table(&self, keep: Option<(BrokerId, u64, &str)>) -> Option<BrokerId> {
        self.topics
            .iter()
            .enumerate()
            .filter(|(b, t)| !keep.is_some_and(|(kb, kh, kt)| kb == *b && t.is_oldest(kh, kt)))
            .filter_map(|(b, t)| Some((t.oldest_update()?, b)))
            .min()
            .map(|(_, b)| b)
    }

    /// Removes a seen topic (a no-op for registered and pinned ones), accounting for it.
    fn remove(&mut self, hasher: &RandomState, broker: BrokerId, hash: u64, topic: &str) {
        let Some(table) = self.topics.get_mut(broker) else {
            return;
        };
        let Some((_, Kind::Seen(i))) = table.find_mut(hash, topic) else {
            return;
        };
        if let Some(gone) = table.remove_seen(hasher, i) {
            let cost = gone.cost();
            self.usage.bytes = self.usage.bytes.saturating_sub(cost);
            self.usage.topics = self.usage.topics.saturating_sub(1);
            self.freed += cost;
        }
    }

    /// No test accepts `topic`: a seen topic drops its payload and keeps only its name and counts from
    /// now on. Registered and pinned topics are wanted by definition and stay as they are.
    pub fn refuse(&mut self, broker: BrokerId, hash: u64, topic: &str) -> bool {
        let Some(table) = self.topics.get_mut(broker) else {
            return false;
        };
        let Some((named, Kind::Seen(_))) = table.find_mut(hash, topic) else {
            return false;
        };
        if named.entry.refused() {
            return false;
        }
        let before = named.cost();
        named.entry.refuse();
        let after = named.cost();
        self.account(before, after);
        self.usage.refused_topics += 1;
        self.trim_due()
    }

    fn account(&mut self, before: usize, after: usize) {
        self.usage.bytes = (self.usage.bytes + after).saturating_sub(before);
        self.freed += before.saturating_sub(after);
    }

    /// Whether enough memory has been freed since the last trim to trim again now (the caller does it once
    /// the lock is released).
    fn trim_due(&mut self) -> bool {
        if self.freed < TRIM_AFTER_BYTES {
            return false;
        }
        self.freed = 0;
        true
    }
}
