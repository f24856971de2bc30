//! One shared copy of each text a fleet repeats: the units, device classes, value templates and entity
//! names of thousands of announcements, and their devices' models, makers and versions.
//!
//! Fed by the state (`DiscoveryState::announce`) with each announcement's texts as parsed; the entities
//! and devices then hold the shared copy, so 10,000 `"°C"`s cost one string. A text stays in the table
//! while anything holds it; the ones nothing holds any more are swept out whenever the table has doubled
//! since the last sweep, so hostile announcements with ever new texts cannot grow it past twice what the
//! kept entities use (plus a small floor).

use std::collections::HashSet;
use std::sync::Arc;

/// Texts the table holds before its first sweep.
const FLOOR: usize = 1024;

pub struct Interner {
    texts: HashSet<Arc<str>>,
    /// Sweep when the table reaches this many texts.
    sweep_at: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            texts: HashSet::new(),
            sweep_at: FLOOR,
        }
    }
}

impl Interner {
    /// Replaces `text` by the table's copy of it, or makes it the table's copy when it is new.
    pub fn share(&mut self, text: &mut Arc<str>) {
        if let Some(shared) = self.texts.get(&**text) {
            *text = shared.clone();
            return;
        }
        if self.texts.len() >= self.sweep_at {
            // The table's own reference is the only one left: nothing uses the text.
            self.texts.retain(|t| Arc::strong_count(t) > 1);
            self.sweep_at = (self.texts.len() * 2).max(FLOOR);
        }
        self.texts.insert(text.clone());
    }

    pub fn share_opt(&mut self, text: &mut Option<Arc<str>>) {
        if let Some(t) = text {
            self.share(t);
        }
    }

    /// Texts in the table now (in use or not yet swept).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_end_up_as_one_copy() {
        let mut table = Interner::default();
        let mut a: Arc<str> = Arc::from("°C");
        let mut b: Arc<str> = Arc::from(String::from("°C"));
        table.share(&mut a);
        table.share(&mut b);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(table.len(), 1);
        let mut none = None;
        table.share_opt(&mut none);
        assert_eq!(none, None);
    }

    #[test]
    fn texts_nothing_holds_are_swept_and_the_table_stays_bounded() {
        let mut table = Interner::default();
        let mut kept = Vec::new();
        for i in 0..10 * FLOOR {
            let mut t: Arc<str> = Arc::from(format!("text {i}"));
            table.share(&mut t);
            // A few are kept by their entities; the rest are dropped at once.
            if i % 100 == 0 {
                kept.push(t);
            }
            assert!(table.len() <= 2 * FLOOR.max(2 * kept.len()) + 1);
        }
        // What is held is still shared after sweeps.
        for t in &kept {
            let mut again: Arc<str> = Arc::from(t.to_string());
            table.share(&mut again);
            assert!(Arc::ptr_eq(t, &again));
        }
    }
}
