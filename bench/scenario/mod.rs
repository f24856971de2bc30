//! The ten scenarios, one file each, in the order the harness runs them. Each measures the bridge and
//! its baseline in the same run and returns its rows and details as an [`Outcome`]. The shared set-up (the
//! broker and xymond, bridge configs, small helpers) is in `setup.rs`; the release binary run as its own
//! process (scenarios 4, 7, 9 and 10) in `bridge_process.rs`.

mod bridge_process;
mod setup;

mod api;
mod delivery;
mod discovery_fleet;
mod fleet;
mod idle;
mod ingest;
mod latency;
mod memory;
mod peer;
mod rrd_storm;

use crate::row::Outcome;
pub use setup::Env;

/// A scenario: `env` and scenario 1's bridge ingest rate (None when scenario 1 has not run).
pub type Scenario = fn(&Env, Option<f64>) -> Outcome;

/// (number, name, scenario): the JSON keeps each scenario's details under `{number}_{name}`.
pub const ALL: [(u8, &str, Scenario); 10] = [
    (1, "ingest", ingest::run),
    (2, "delivery", delivery::run),
    (3, "latency", latency::run),
    (4, "memory", memory::run),
    (5, "api", api::run),
    (6, "rrd", rrd_storm::run),
    (7, "idle", idle::run),
    (8, "peer", peer::run),
    (9, "fleet", fleet::run),
    (10, "discovery", discovery_fleet::run),
];
