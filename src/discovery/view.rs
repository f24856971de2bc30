//! The columns of a `DiscoveryState`: one per device host and column, its entities with their values,
//! units, classes and colours. Read by whoever sends statuses and by the dashboard.

use super::announce::{Device, EntityKey};
use super::judge::{Availability, Judged};
use super::state::{Dirty, DiscoveryState, Place};
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;

/// One entity as a column shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityView {
    pub key: EntityKey,
    pub name: Arc<str>,
    pub value: Option<String>,
    pub unit: Option<Arc<str>>,
    pub device_class: Option<Arc<str>>,
    pub judged: Judged,
    pub template_errors: u64,
    pub retained: bool,
    /// When the latest value came.
    pub updated: Option<SystemTime>,
    pub availability: Availability,
}

/// One Xymon column of one device host.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnView {
    pub host: HostName,
    pub column: TestName,
    pub colour: Colour,
    /// The device of the column's first entity, merged from every announcement that named it.
    pub device: Device,
    pub entities: Vec<EntityView>,
}

/// What changed since the columns were last taken (`DiscoveryState::take_changes`).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Changes {
    /// Columns whose entities changed, and the share due to be sent again anyway, each with why.
    pub columns: Vec<(ColumnView, Why)>,
    /// Columns with no entity left.
    pub gone: Vec<Place>,
}

/// The columns due at a check (`DiscoveryState::take_due`), to be built with `column_at`.
#[derive(Debug, Default)]
pub struct Due {
    /// Columns whose entities changed, and the share due to be sent again anyway, each with why; in
    /// host and column order.
    pub places: Vec<(Arc<Place>, Why)>,
    /// Columns with no entity left.
    pub gone: Vec<Place>,
}

/// Why a column was taken; when several reasons hold, the last listed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// Only values came (the colour may differ).
    Value,
    /// Its turn to be sent again.
    Turn,
    /// Something else the status shows changed (`Dirty::Changed`), a value turned stale, or an entity
    /// left it.
    Changed,
}

impl DiscoveryState {
    /// Every device column now, sorted by host and column. Entities whose host cannot be named (a device
    /// renamed to nothing usable) are left out.
    pub fn columns(&self, now: Instant, now_wall: SystemTime) -> Vec<ColumnView> {
        self.by_place
            .iter()
            .filter_map(|(place, keys)| self.column(place, keys, now, now_wall))
            .collect()
    }

    /// The columns that changed since the last call (a value, an availability, an announcement, a
    /// device, or a value turning stale with time), and `1/shares` of the columns in turn, so that each
    /// column comes out at least every `shares` calls without all of them at once; each with why
    /// (`Why`). Costs a pass over the entities' flags, plus the columns returned. `take_due` and
    /// `column_at` are the same in steps, as the session makes a check (a few columns at a time).
    #[cfg(test)]
    pub fn take_changes(&mut self, now: Instant, now_wall: SystemTime, shares: usize) -> Changes {
        let due = self.take_due(now, shares);
        let columns = due
            .places
            .iter()
            .filter_map(|(p, why)| Some((self.column_at(p, now, now_wall)?, *why)))
            .collect();
        Changes {
            columns,
            gone: due.gone,
        }
    }

    /// Which columns `take_changes` would build now, and which are gone; marks them taken. A column
    /// built later with `column_at` shows the state then (a column removed meanwhile is left out, and
    /// the next call reports it gone).
    pub fn take_due(&mut self, now: Instant, shares: usize) -> Due {
        let since = self.last_taken.replace(now);
        let mut due: BTreeMap<&Arc<Place>, Why> = BTreeMap::new();
        let by_place = &self.by_place;
        for slot in self.entities.values_mut() {
            let expired = match (slot.entity.expire_after, slot.live.seen, since) {
                (Some(limit), Some(seen), Some(since)) if !seen.retained => {
                    let deadline = seen.at + limit;
                    deadline >= since && deadline < now
                }
                _ => false,
            };
            let why = match (std::mem::take(&mut slot.dirty), expired) {
                (Dirty::Changed, _) | (_, true) => Why::Changed,
                (Dirty::Value, false) => Why::Value,
                (Dirty::Clean, false) => continue,
            };
            if let Some((p, _)) = slot.place.as_ref().and_then(|p| by_place.get_key_value(p)) {
                let w = due.entry(p).or_insert(why);
                *w = (*w).max(why);
            }
        }
        let mut gone = Vec::new();
        for p in std::mem::take(&mut self.left) {
            if let Some((p, _)) = self.by_place.get_key_value(&p) {
                due.insert(p, Why::Changed);
            } else if !gone.contains(&p) {
                gone.push(p);
            }
        }
        // Call k of each round of `shares` takes columns k*n/shares up to (k+1)*n/shares: every column
        // once a round, and no call more than its share.
        let (n, shares) = (self.by_place.len(), shares.max(1));
        let k = self.turns % shares;
        self.turns = self.turns.wrapping_add(1);
        let share = (k + 1) * n / shares - k * n / shares;
        let start = match &self.resend_after {
            Some(p) => self.by_place.range::<Place, _>((Excluded(p), Unbounded)),
            None => self.by_place.range::<Place, _>(..),
        };
        let resend: Vec<&Arc<Place>> = start
            .chain(self.by_place.iter())
            .map(|(p, _)| p)
            .take(share.min(self.by_place.len()))
            .collect();
        // The cursor moves only when some column had its turn.
        let next_after = resend
            .last()
            .map(|p| Place::clone(p))
            .or(self.resend_after.take());
        for p in resend {
            let w = due.entry(p).or_insert(Why::Turn);
            *w = (*w).max(Why::Turn);
        }
        let places = due.into_iter().map(|(p, why)| (p.clone(), why)).collect();
        self.resend_after = next_after;
        Due { places, gone }
    }

    /// Column `place` as it is now; `None` if it has no entity (left, or its host cannot be named).
    pub fn column_at(
        &self,
        place: &Place,
        now: Instant,
        now_wall: SystemTime,
    ) -> Option<ColumnView> {
        let keys = self.by_place.get(place)?;
        self.column(place, keys, now, now_wall)
    }

    /// Column `place` with entities `keys`.
    fn column(
        &self,
        place: &Place,
        keys: &[EntityKey],
        now: Instant,
        now_wall: SystemTime,
    ) -> Option<ColumnView> {
        let mut device = None;
        let policy = &self.plan.policy;
        let thresholds = |slot: &super::state::Slot| {
            slot.thresholds
                .and_then(|i| policy.thresholds.get(i as usize))
                .map(|r| &r.thresholds)
        };
        let mut entities = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(slot) = self.entities.get(key) else {
                continue;
            };
            let e = &slot.entity;
            device.get_or_insert(slot.device);
            entities.push(EntityView {
                key: e.key.clone(),
                name: e
                    .name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| e.device_class.clone())
                    .unwrap_or_else(|| Arc::from(&*e.key.object_id)),
                value: slot.live.reading.as_ref().map(|r| r.to_string()),
                unit: e.unit.clone(),
                device_class: e.device_class.clone(),
                judged: slot.live.judge(e, policy, thresholds(slot), now, now_wall),
                template_errors: slot.live.template_errors,
                retained: slot.live.seen.is_some_and(|s| s.retained),
                updated: slot.live.seen_wall,
                availability: slot.live.availability_now(e.availability_mode),
            });
        }
        let device = self
            .devices
            .get(device? as usize)
            .map(|d| Device::clone(d))
            .unwrap_or_default();
        Some(ColumnView {
            host: place.0.clone(),
            column: place.1.clone(),
            colour: entities
                .iter()
                .map(|e| e.judged.colour)
                .max()
                .unwrap_or(Colour::Clear),
            device,
            entities,
        })
    }
}
