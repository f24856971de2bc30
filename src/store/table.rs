//! One broker's topic table: every topic of that broker, its latest value, found with one hash lookup.
//!
//! Owned by `Store`, under its mutex. Two kinds of topic live here:
//! - *registered* ones: the exact topics the config's tests want on this broker, added at start-up by
//!   `collect::routing` (through `Store::register`) before any message, with no value yet. A registered
//!   topic's position is its `RouteId`, the index of its route in the collector's `RouteTable`, so the
//!   one lookup ingest does per message finds the value to update, the shared name and the route at once.
//! - *pinned* ones: the topics periodic tests read (their snapshots bring them), added at start-up too,
//!   kept like registered ones but without a route.
//! - *seen* ones: any other topic a message arrived on (what a rule filter brought). Only these are ever
//!   evicted, least recently updated first: they are linked in update order (`Link`, in a `Vec` beside
//!   theirs, so registered topics pay nothing for it), and an update moves a topic to the end in O(1).
//!
//! Layout (sized for memory): the entries sit in two `Vec`s (registered; pinned and seen); the hash table
//! keeps only a 4-byte position per slot (hashbrown's `HashTable`, 0.65 MB at 100,000 topics). Removing a
//! seen topic moves the last one into its place (its position in the index and its links follow). Until this table took over its job,
//! ingest kept its own map of the exact topics beside the store's: a second table of 24-byte slots
//! (3.3 MB at 100,000 topics) and a second lookup per message.
//!
//! Design: a registered topic without a value (`Entry::count == 0`) is invisible to every reader: `find`
//! answers with it only so that ingest can fill it in, `Entry::value` and `values` skip it.

use super::entry::{Entry, Named, Stamp};
use super::RouteId;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// The hash of a topic name. Always of the `str`, whether it is held as `&str` or `Arc<str>`, so a
/// lookup by the text finds an entry keyed by the shared name.
pub(super) fn hash(hasher: &RandomState, topic: &str) -> u64 {
    hasher.hash_one(topic)
}

/// Where a topic's entry is: `registered[i]` (`i` is its `RouteId`), or `seen[i]` when `SEEN` is set.
#[derive(Clone, Copy)]
struct Pos(u32);

const SEEN: u32 = 1 << 31;

/// Entries either `Vec` can index with the bit left by `SEEN`; a broker reaching it would have used
/// hundreds of GB first, `limits.max_topics` stops it long before.
const MAX_ENTRIES: usize = SEEN as usize;

/// No neighbour (the ends of the update order).
const NIL: u32 = u32::MAX;
/// A pinned topic's links: not in the update order.
const PIN: u32 = u32::MAX - 1;

/// A seen topic's neighbours in update order: `prev` was updated before it, `next` after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    prev: u32,
    next: u32,
}

const PINNED: Link = Link {
    prev: PIN,
    next: PIN,
};

/// What kind of topic `find_mut` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A configured exact topic; its position is its route.
    Registered(RouteId),
    /// A topic a periodic test reads: never evicted.
    Pinned,
    /// Any other topic, at `seen[i]`: evicted when the budget needs room.
    Seen(u32),
}

pub(super) struct Table {
    index: HashTable<Pos>,
    /// Registered topics, by `RouteId`.
    registered: Vec<Named>,
    /// Pinned topics and the topics that came without being registered.
    seen: Vec<Named>,
    /// `seen[i]`'s links; `PINNED` for a pinned topic.
    links: Vec<Link>,
    /// The least and the most recently updated seen topic (`NIL` when there is none).
    oldest: u32,
    newest: u32,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            index: HashTable::new(),
            registered: Vec::new(),
            seen: Vec::new(),
            links: Vec::new(),
            oldest: NIL,
            newest: NIL,
        }
    }
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

    /// `find`, for updating the entry, with what kind of topic it is.
    pub fn find_mut(&mut self, hash: u64, topic: &str) -> Option<(&mut Named, Kind)> {
        let pos = self.position(hash, topic)?;
        if pos.0 & SEEN == 0 {
            return Some((
                self.registered.get_mut(pos.0 as usize)?,
                Kind::Registered(pos.0),
            ));
        }
        let i = pos.0 & !SEEN;
        let kind = match self.links.get(i as usize) {
            Some(&PINNED) => Kind::Pinned,
            _ => Kind::Seen(i),
        };
        Some((self.seen.get_mut(i as usize)?, kind))
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
            ..
        } = self;
        index.insert_unique(h, Pos(route), rehash(hasher, registered, seen));
        Some(route)
    }

    /// Pins `name` (without a value): a topic a periodic test reads, never evicted. Nothing to do when it
    /// is registered (or pinned) already.
    pub fn pin(&mut self, hasher: &RandomState, name: Arc<str>) {
        let h = hash(hasher, &name);
        if self.position(h, &name).is_some() {
            return;
        }
        let named = Named {
            name,
            entry: Entry::empty(),
        };
        if let Some(i) = self.push_seen(hasher, h, named) {
            if let Some(l) = self.links.get_mut(i as usize) {
                *l = PINNED;
            }
        }
    }

    /// Adds a topic that is neither registered nor pinned, as the most recently updated one; its index
    /// in `seen`, or `None` (and nothing added) when the table is full.
    pub fn insert_seen(&mut self, hasher: &RandomState, h: u64, named: Named) -> Option<u32> {
        let i = self.push_seen(hasher, h, named)?;
        self.link_newest(i);
        Some(i)
    }

    fn push_seen(&mut self, hasher: &RandomState, h: u64, named: Named) -> Option<u32> {
        let i = u32::try_from(self.seen.len())
            .ok()
            .filter(|&i| (i as usize) < MAX_ENTRIES)?;
        self.seen.push(named);
        self.links.push(Link {
            prev: NIL,
            next: NIL,
        });
        let Table {
            index,
            registered,
            seen,
            ..
        } = self;
        index.insert_unique(h, Pos(i | SEEN), rehash(hasher, registered, seen));
        Some(i)
    }

    fn link_mut(&mut self, i: u32) -> Option<&mut Link> {
        self.links.get_mut(i as usize)
    }

    /// Appends seen topic `i` (not linked) as the most recently updated.
    fn link_newest(&mut self, i: u32) {
        let prev = self.newest;
        if let Some(l) = self.link_mut(i) {
            *l = Link { prev, next: NIL };
        }
        match self.link_mut(prev) {
            Some(p) => p.next = i,
            None => self.oldest = i,
        }
        self.newest = i;
    }

    /// Takes seen topic `i` out of the update order (its own links are left as they were).
    fn unlink(&mut self, i: u32) {
        let Some(&l) = self.links.get(i as usize) else {
            return;
        };
        if l == PINNED {
            return;
        }
        match self.link_mut(l.prev) {
            Some(p) => p.next = l.next,
            None => self.oldest = l.next,
        }
        match self.link_mut(l.next) {
            Some(n) => n.prev = l.prev,
            None => self.newest = l.prev,
        }
    }

    /// Seen topic `i` was just updated: it becomes the most recently updated one. O(1).
    pub fn touch(&mut self, i: u32) {
        if i != self.newest {
            self.unlink(i);
            self.link_newest(i);
        }
    }

    /// When the least recently updated seen topic got its last message; `None` when there is none.
    pub fn oldest_update(&self) -> Option<Stamp> {
        Some(self.seen.get(self.oldest as usize)?.entry.received_at())
    }

    /// Whether `topic` is the least recently updated seen topic.
    pub fn is_oldest(&self, hash: u64, topic: &str) -> bool {
        self.oldest != NIL
            && self
                .position(hash, topic)
                .is_some_and(|p| p.0 == self.oldest | SEEN)
    }

    /// Removes the least recently updated seen topic and returns it.
    pub fn evict_oldest(&mut self, hasher: &RandomState) -> Option<Named> {
        let i = self.oldest;
        self.remove_seen(hasher, i)
    }

    /// Removes seen topic `i` (not a pinned one): the last seen topic takes its place, in the `Vec`, the
    /// index and the update order. O(1) plus hashing two names.
    pub fn remove_seen(&mut self, hasher: &RandomState, i: u32) -> Option<Named> {
        let last = u32::try_from(self.seen.len().checked_sub(1)?).ok()?;
        if i > last || self.links.get(i as usize) == Some(&PINNED) {
            return None;
        }
        self.unlink(i);
        let h = hash(hasher, &self.seen.get(i as usize)?.name);
        if let Ok(e) = self.index.find_entry(h, |p| p.0 == i | SEEN) {
            e.remove();
        }
        if i != last {
            let moved = self.seen.get(last as usize)?;
            let hm = hash(hasher, &moved.name);
            if let Some(p) = self.index.find_mut(hm, |p| p.0 == last | SEEN) {
                p.0 = i | SEEN;
            }
            let l = *self.links.get(last as usize)?;
            if l != PINNED {
                match self.link_mut(l.prev) {
                    Some(p) => p.next = i,
                    None => self.oldest = i,
                }
                match self.link_mut(l.next) {
                    Some(n) => n.prev = i,
                    None => self.newest = i,
                }
            }
        }
        self.links.swap_remove(i as usize);
        Some(self.seen.swap_remove(i as usize))
    }

    /// Every topic readers see (with a kept value): the registered ones in route order, then the others.
    pub fn values(&self) -> impl Iterator<Item = &Named> {
        self.registered
            .iter()
            .chain(&self.seen)
            .filter(|n| n.entry.visible())
    }

    /// Every entry, with a value or not.
    pub fn all(&self) -> impl Iterator<Item = &Named> {
        self.registered.iter().chain(&self.seen)
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

    /// Frees the spare room left by registering (the `Vec`s and the index grow by doubling).
    pub fn shrink_to_fit(&mut self, hasher: &RandomState) {
        self.registered.shrink_to_fit();
        self.seen.shrink_to_fit();
        self.links.shrink_to_fit();
        let Table {
            index,
            registered,
            seen,
            ..
        } = self;
        index.shrink_to_fit(rehash(hasher, registered, seen));
    }

    /// Every entry, for a new table (a reload): the registered ones, the pinned ones, then the seen ones
    /// from the least to the most recently updated, so that inserting them in turn keeps that order.
    pub fn into_entries(self) -> Vec<Named> {
        let mut order = Vec::with_capacity(self.seen.len());
        let mut i = self.oldest;
        while let Some(link) = self.links.get(i as usize) {
            order.push(i);
            i = link.next;
        }
        let Table {
            registered,
            seen,
            links,
            ..
        } = self;
        let mut seen: Vec<Option<Named>> = seen.into_iter().map(Some).collect();
        let mut out = registered;
        for (i, l) in links.iter().enumerate() {
            if *l == PINNED {
                out.extend(seen.get_mut(i).and_then(Option::take));
            }
        }
        for i in order {
            out.extend(seen.get_mut(i as usize).and_then(Option::take));
        }
        out
    }

    /// The seen topics from the least to the most recently updated (tests check the links with it).
    #[cfg(test)]
    pub fn update_order(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut i = self.oldest;
        while let Some(n) = self.seen.get(i as usize) {
            out.push(&*n.name);
            i = self.links[i as usize].next;
        }
        out
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
