//! The devices of every `[[discovery]]` block as the dashboard shows them, built from the blocks'
//! states when asked.
//!
//! Each discovery session (`mqtt::discovery`) attaches the state it owns (`SharedState`, a mutex it
//! takes per message); the web layer (`/api/v1/devices` and the devices page) lists the devices from
//! it, judged at that moment, and never writes. No copy of the columns is kept: at 10,000 devices one
//! would cost as much as the state itself. A listing holds one block's lock while it builds that
//! block's columns (milliseconds at 10,000 devices), and the session waits that long at most.

use super::announce::Device;
use super::judge::Availability;
use super::view::{ColumnView, EntityView};
use super::DiscoveryState;
use crate::colour::Colour;
use crate::names::{HostName, TestName};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;
use tokio::time::Instant;

/// A block's state, shared by its session (which writes) and the board (which reads).
pub type SharedState = Arc<Mutex<DiscoveryState>>;

/// Locks a shared state. A poisoned lock means a panic while it was held; discovery never panics on
/// input, and the state is still whole enough to list or go on with.
pub fn lock(state: &SharedState) -> MutexGuard<'_, DiscoveryState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state of each block, by the block's index.
#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<BTreeMap<usize, SharedState>>>);

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
    /// Lists block `block` from `state` (in place of what it listed before).
    pub fn attach(&self, block: usize, state: SharedState) {
        // A poisoned lock only means a reader panicked while cloning an Arc: the map is whole.
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(block, state);
    }

    /// Forgets every block (the discovery sessions restart, and each publishes again).
    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Entities of every block now (a count, without building their columns).
    pub fn entities(&self) -> usize {
        let blocks: Vec<SharedState> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        blocks.iter().map(|s| lock(s).entity_count()).sum()
    }

    /// Every device of every block now, sorted by host and then device name.
    pub fn devices(&self) -> Vec<DeviceView> {
        let blocks: Vec<(usize, SharedState)> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(i, s)| (*i, s.clone()))
            .collect();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let columns: Vec<(usize, Vec<ColumnView>)> = blocks
            .iter()
            .map(|(i, s)| (*i, lock(s).columns(now, wall)))
            .collect();
        devices_of(
            columns
                .iter()
                .flat_map(|(i, cols)| cols.iter().map(|c| (*i, c))),
        )
    }
}

/// The devices of columns, each with its block.
fn devices_of<'a>(columns: impl Iterator<Item = (usize, &'a ColumnView)>) -> Vec<DeviceView> {
    // A device seen by two blocks (two brokers) is listed once per block.
    let mut out: BTreeMap<(HostName, String, String, usize), DeviceView> = BTreeMap::new();
    for (block, col) in columns {
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
    /// apart; the board lists what the state holds.
    #[test]
    fn a_device_is_listed_once_with_all_its_columns_and_its_availability() {
        let mut f = crate::discovery::tests::feed("column = \"{device_class}\"\n");
        f.load("zigbee2mqtt");
        f.load("tasmota");
        f.send("tele/tasmota_A1B2C3/LWT", "Offline");
        let all = f.columns();
        let devices = devices_of(all.iter().map(|c| (0, c)));
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
        let both = devices_of(all.iter().map(|c| (0, c)).chain(all.iter().map(|c| (1, c))));
        assert_eq!(both.len(), 2 * devices.len(), "listed once per block");
        // The board lists the same from the state itself, judged when asked.
        let b = Board::default();
        let state = std::mem::replace(&mut f.state, crate::discovery::tests::feed("").state);
        b.attach(0, Arc::new(Mutex::new(state)));
        assert_eq!(b.devices().len(), devices.len());
        b.clear();
        assert!(b.devices().is_empty());
    }

    #[test]
    fn an_empty_board_has_no_devices_and_a_block_is_replaced_whole() {
        let b = Board::default();
        assert!(b.devices().is_empty());
        let mut f = crate::discovery::tests::feed("");
        f.load("esphome");
        let state = |f: crate::discovery::tests::Feed| Arc::new(Mutex::new(f.state));
        b.attach(0, state(f));
        assert!(!b.devices().is_empty());
        b.attach(0, state(crate::discovery::tests::feed("")));
        assert!(b.devices().is_empty());
    }
}
