//! The collector's route table of one broker: for each exact topic (by `RouteId`, the topic's index in
//! the plan's routing and in the store, carried in every `Sample` by ingest), the (slot, topic index)
//! pairs it feeds.
//!
//! Built once at start-up from the plan's routing; read by the collector for every sample. Almost every
//! topic feeds exactly one test, so the first pair of each route sits in a flat array (8 bytes per topic)
//! and only the rare further pairs in a side map. A `SmallVec` per route cost 24 bytes per topic: 1.6 MB
//! more at 100,000 topics.

use crate::names::RouteId;
use crate::plan::{Dest, ExactTopic};
use smallvec::SmallVec;
use std::collections::HashMap;

/// The destinations of one route, copied out so the collector can update its slots while it walks them;
/// inline (no allocation) for a topic that feeds one test.
pub type Route = SmallVec<[Dest; 1]>;

/// Marks a route without destinations (a topic only an exact rule wants, before a later one).
const NOWHERE: Dest = (u32::MAX, u32::MAX);

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    first: Vec<Dest>,
    more: HashMap<RouteId, Vec<Dest>>,
}

impl RouteTable {
    /// The routes of one broker's exact topics, numbered as the plan numbers them.
    pub fn new(exact: &[ExactTopic]) -> RouteTable {
        let mut table = RouteTable {
            first: vec![NOWHERE; exact.len()],
            more: HashMap::new(),
        };
        for (route, topic) in exact.iter().enumerate() {
            for &dest in &topic.feeds {
                table.push(route as RouteId, dest);
            }
        }
        table
    }

    /// Adds a destination to `route`, creating it (and the routes numbered before it, without
    /// destinations) if it is new. Routes are the store's dense numbering of the registered topics.
    pub fn push(&mut self, route: RouteId, dest: Dest) {
        let i = route as usize;
        if self.first.len() <= i {
            self.first.resize(i + 1, NOWHERE);
        }
        match self.first.get_mut(i) {
            Some(first) if *first == NOWHERE => *first = dest,
            Some(_) => self.more.entry(route).or_default().push(dest),
            None => {}
        }
    }

    /// The destinations of `route`, in the order they were added; empty or `None` for a route without
    /// any (`None` past the last route that has one).
    pub fn get(&self, route: RouteId) -> Option<Route> {
        let first = *self.first.get(route as usize)?;
        let mut all = Route::new();
        if first != NOWHERE {
            all.push(first);
            if let Some(more) = self.more.get(&route) {
                all.extend_from_slice(more);
            }
        }
        Some(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_destination_inline_further_ones_in_order() {
        let mut t = RouteTable::default();
        let (a, b, c, d) = (0, 1, 2, 3);
        t.push(a, (0, 0));
        t.push(b, (0, 1));
        t.push(b, (1, 0));
        t.push(b, (2, 5));
        t.push(d, (3, 0));
        assert_eq!(t.get(a).unwrap().as_slice(), [(0, 0)]);
        assert!(!t.get(a).unwrap().spilled());
        assert_eq!(t.get(b).unwrap().as_slice(), [(0, 1), (1, 0), (2, 5)]);
        assert!(
            t.get(c).unwrap().is_empty(),
            "a route with no destination, numbered before one with"
        );
        assert_eq!(t.get(d).unwrap().as_slice(), [(3, 0)]);
        assert!(t.get(99).is_none());
    }
}
