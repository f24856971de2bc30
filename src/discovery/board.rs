//! The devices of every `[[discovery]]` block as the dashboard shows them: the latest of each column
//! the discovery sessions built.
//!
//! Written by the discovery sessions (`mqtt::discovery`), which hand over the columns they build anyway
//! for their statuses (only those that changed, once per check, by moving them in: no copy); read by the
//! web layer (`/api/v1/devices` and the devices page), which never writes. A reader holds the lock
//! while it lists the devices (milliseconds at 10,000 devices); a session waits that long at most.

use super::announce::Device;
use super::judge::Availability;
use super::state::Place;
use super::view::{ColumnView, EntityView};
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// The latest columns of each block, by the block's index.
#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<BTreeMap<usize, BTreeMap<Place, ColumnView>>>>);

/// One discovered device: its host, its columns, its entities.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub host: HostName,
    pub device: Device,
    /// Each column of the device with its colour, sorted.
    pub columns: Vec<(TestName, Colour)>,
    /// Merged over the entities: offline if any is, else online, else never said.
    pub availability: Availability,
    /// Each entity with the column it is in.
    pub entities: Vec<(TestName, EntityView)>,
}

impl Board {
    /// Replaces block `block`'s columns.
    pub fn publish(&self, block: usize, columns: Vec<ColumnView>) {
        let columns = columns
            .into_iter()
            .map(|c| ((c.host.clone(), c.column.clone()), c))
            .collect();
        // A poisoned lock only means a reader panicked while listing: the map is whole.
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(block, columns);
    }

    /// Puts `columns` in place of block `block`'s columns of the same host and test, and drops those
    /// `gone`.
    pub fn update(&self, block: usize, columns: Vec<ColumnView>, gone: &[Place]) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        let b = map.entry(block).or_default();
        for p in gone {
            b.remove(p);
        }
        for c in columns {
            b.insert((c.host.clone(), c.column.clone()), c);
        }
    }

    /// Forgets every block (the discovery sessions restart, and each publishes again).
    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Every device of every block, sorted by host and then device name.
    pub fn devices(&self) -> Vec<DeviceView> {
        let blocks = self.0.read().unwrap_or_else(|e| e.into_inner());
        // A device seen by two blocks (two brokers) is listed once per block.
        let mut out: BTreeMap<(HostName, String, String, usize), DeviceView> = BTreeMap::new();
        for (block, col) in blocks.iter().flat_map(|(i, b)| b.values().map(|c| (*i, c))) {
            let key = (
                col.host.clone(),
                col.device.name.clone().unwrap_or_default(),
                col.device.identifiers.join("\u{1f}"),
                block,
            );
            let d = out.entry(key).or_insert_with(|| DeviceView {
                host: col.host.clone(),
                device: col.device.clone(),
                columns: Vec::new(),
                availability: Availability::Always,
                entities: Vec::new(),
            });
            d.columns.push((col.column.clone(), col.colour));
            for e in &col.entities {
                d.availability = merge(d.availability, e.availability);
                d.entities.push((col.column.clone(), e.clone()));
            }
        }
        out.into_values().collect()
    }
}

/// Offline wins (the latest such time), then online (the latest), then never said.
fn merge(a: Availability, b: Availability) -> Availability {
    use Availability::*;
    let later = |x: Option<SystemTime>, y: Option<SystemTime>| x.max(y);
    match (a, b) {
        (Offline(x), Offline(y)) => Offline(x.max(y)),
        (Offline(x), _) | (_, Offline(x)) => Offline(x),
        (Online(x), Online(y)) => Online(later(x, y)),
        (Online(x), _) | (_, Online(x)) => Online(x),
        (Unknown, _) | (_, Unknown) => Unknown,
        (Always, Always) => Always,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn offline_wins_and_the_latest_time_is_kept() {
        let t = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        use Availability::*;
        assert_eq!(
            merge(Online(t(5)), Offline(t(1).unwrap())),
            Offline(t(1).unwrap())
        );
        assert_eq!(merge(Online(t(5)), Online(t(9))), Online(t(9)));
        assert_eq!(merge(Always, Unknown), Unknown);
        assert_eq!(merge(Unknown, Online(None)), Online(None));
        assert_eq!(merge(Always, Always), Always);
    }

    /// With a column per class, one device spans several columns: the board shows it once, with every
    /// column and entity; the Tasmota device's LWT "Offline" makes it offline since then; blocks are kept
    /// apart and replaced whole.
    #[test]
    fn a_device_is_listed_once_with_all_its_columns_and_its_availability() {
        let mut f = crate::discovery::tests::feed("column = \"{device_class}\"\n");
        f.load("zigbee2mqtt");
        f.load("tasmota");
        f.send("tele/tasmota_A1B2C3/LWT", "Offline");
        let b = Board::default();
        b.publish(0, f.columns());
        let devices = b.devices();
        let w = devices
            .iter()
            .find(|d| d.host.as_str() == "weather_sensor")
            .unwrap();
        let cols: Vec<&str> = w.columns.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cols, ["humidity", "temperature"]);
        assert_eq!(w.entities.len(), 2);
        assert_eq!(
            w.device.model.as_deref(),
            Some("Temperature and humidity sensor")
        );
        assert!(
            matches!(w.availability, Availability::Online(Some(_))),
            "{:?}",
            w.availability
        );
        let g = devices
            .iter()
            .find(|d| d.host.as_str() == "garage")
            .unwrap();
        assert_eq!(g.availability, Availability::Offline(f.wall()));
        assert!(g.entities.len() >= 3, "{g:?}");
        b.publish(1, f.columns());
        assert_eq!(
            b.devices().len(),
            2 * devices.len(),
            "listed once per block"
        );
        b.publish(0, Vec::new());
        b.publish(1, Vec::new());
        assert!(b.devices().is_empty());
    }

    #[test]
    fn an_empty_board_has_no_devices_and_a_block_is_replaced_whole() {
        let b = Board::default();
        assert!(b.devices().is_empty());
        b.publish(0, Vec::new());
        assert!(b.devices().is_empty());
    }
}
