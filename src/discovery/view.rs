//! The columns of a `DiscoveryState`: one per device host and column, its entities with their values,
//! units, classes and colours. Read by whoever sends statuses and by the dashboard.

use super::announce::{Device, EntityKey};
use super::judge::{Availability, Judged};
use super::state::DiscoveryState;
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use std::collections::BTreeMap;
use std::time::SystemTime;
use tokio::time::Instant;

/// One entity as a column shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityView {
    pub key: EntityKey,
    pub name: String,
    pub value: Option<String>,
    pub unit: Option<String>,
    pub device_class: Option<String>,
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

impl DiscoveryState {
    /// Every device column now, sorted by host and column. Entities whose host cannot be named (a device
    /// renamed to nothing usable) are left out.
    pub fn columns(&self, now: Instant, now_wall: SystemTime) -> Vec<ColumnView> {
        let mut cols: BTreeMap<(HostName, TestName), (usize, Vec<EntityView>)> = BTreeMap::new();
        for slot in self.entities.values() {
            let e = &slot.entity;
            let Some(dev) = self.devices.get(slot.device) else {
                continue;
            };
            let (Ok(host), Ok(column)) = (
                self.plan.selector.host(dev, e.key.node_id.as_deref()),
                self.plan.selector.column(e),
            ) else {
                continue;
            };
            let judged = slot.live.judge(e, &self.plan.policy, now, now_wall);
            cols.entry((host, column))
                .or_insert_with(|| (slot.device, Vec::new()))
                .1
                .push(EntityView {
                    key: e.key.clone(),
                    name: e
                        .name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .or_else(|| e.device_class.clone())
                        .unwrap_or_else(|| e.key.object_id.clone()),
                    value: slot.live.reading.as_ref().map(|r| r.to_string()),
                    unit: e.unit.clone(),
                    device_class: e.device_class.clone(),
                    judged,
                    template_errors: slot.live.template_errors,
                    retained: slot.live.seen.is_some_and(|s| s.retained),
                    updated: slot.live.seen_wall,
                    availability: slot.live.availability_now(e.availability_mode),
                });
        }
        cols.into_iter()
            .map(|((host, column), (device, entities))| ColumnView {
                device: self.devices.get(device).cloned().unwrap_or_default(),
                colour: entities
                    .iter()
                    .map(|e| e.judged.colour)
                    .max()
                    .unwrap_or(Colour::Clear),
                host,
                column,
                entities,
            })
            .collect()
    }
}
