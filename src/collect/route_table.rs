//! The collector's route table of one broker: for each exact topic (by `RouteId`, handed out by
//! `collect::routing` and carried in every `Sample` by ingest), the (slot, topic index) pairs it feeds.
//!
//! Built once at start-up by `collect::routing`; read by the collector for every sample. Almost every topic
//! feeds exactly one test, so the first pair of each route sits in a flat array (8 bytes per topic) and
//! only the rare further pairs in a side map. A `SmallVec` per route cost 24 bytes per topic: 1.6 MB more
//! at 100,000 topics (issue 6, memory).

use crate::mqtt::RouteId;
use smallvec::SmallVec;
use std::collections::HashMap;

/// (slot, index of the topic in that slot's test).
pub type Dest = (u32, u32);

/// The destinations of one route, copied out so the collector can update its slots while it walks them;
/// inline (no allocation) for a topic that feeds one test.
pub type Route = SmallVec<[Dest; 1]>;

/// Marks a route without destinations yet (a topic only an exact rule wants).
const NOWHERE: Dest = (u32::MAX, u32::MAX);

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    first: Vec<Dest>,
    more: HashMap<RouteId, Vec<Dest>>,
}

impl RouteTable {
    /// A new route without destinations.
    pub fn add_route(&mut self) -> RouteId {
        self.first.push(NOWHERE);
        // One route per distinct configured topic: 2^32 of them would need hundreds of GB of config first.
        RouteId::try_from(self.first.len() - 1).unwrap_or(RouteId::MAX)
    }

    /// Adds a destination to a route from `add_route`; others are ignored.
    pub fn push(&mut self, route: RouteId, dest: Dest) {
        match self.first.get_mut(route as usize) {
            Some(first) if *first == NOWHERE => *first = dest,
            Some(_) => self.more.entry(route).or_default().push(dest),
            None => {}
        }
    }

    /// The destinations of `route`, in the order they were added; `None` for an unknown route.
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

    /// Frees the spare room of the array (grown by doubling: at 100k topics up to a quarter of it).
    pub fn shrink_to_fit(&mut self) {
        self.first.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_destination_inline_further_ones_in_order() {
        let mut t = RouteTable::default();
        let a = t.add_route();
        let b = t.add_route();
        let c = t.add_route();
        t.push(a, (0, 0));
        t.push(b, (0, 1));
        t.push(b, (1, 0));
        t.push(b, (2, 5));
        t.push(99, (9, 9));
        assert_eq!(t.get(a).unwrap().as_slice(), [(0, 0)]);
        assert!(!t.get(a).unwrap().spilled());
        assert_eq!(t.get(b).unwrap().as_slice(), [(0, 1), (1, 0), (2, 5)]);
        assert!(
            t.get(c).unwrap().is_empty(),
            "a route with no destination yet"
        );
        assert!(t.get(99).is_none());
    }
}
