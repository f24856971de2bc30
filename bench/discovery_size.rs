//! Where the memory of a discovered fleet goes (`cargo run --release --example discovery_size
//! [DEVICES]`, default 10,000; BENCHMARKS.md, scenario 10).
//!
//! Scenario 10 measures the release binary's resident size as a whole; this splits it. It builds
//! scenario 10's discovery state in-process from the same announcements and payloads
//! (`bench/discovery.rs`), then puts every column's status into an outbox as the session does, and prints
//! malloc's bytes in use (glibc `mallinfo2`, chunk overheads included) after each step: the state as
//! announced, after three cycles of values, the first check at its highest (every column built and its
//! status put, `COLUMNS_PER_TURN` columns at a time as the session builds them), and the steady state
//! once that check is over.

#[path = "discovery.rs"]
#[allow(dead_code)]
mod discovery;
#[path = "fleet.rs"]
#[allow(dead_code)]
mod fleet;
#[path = "flood.rs"]
#[allow(dead_code)]
mod flood;

use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use xymon_mqtt::config::DiscoveryConfig;
use xymon_mqtt::discovery::{compile, DiscoveryState};
use xymon_mqtt::mqtt::discovery::COLUMNS_PER_TURN;
use xymon_mqtt::xymon::Outbox;

#[derive(serde::Deserialize)]
struct Blocks {
    discovery: Vec<DiscoveryConfig>,
}

/// Bytes malloc has handed out and not had back, small and large (mmapped) allocations together.
fn in_use() -> usize {
    // SAFETY: mallinfo2 only reads malloc's counters.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

fn main() {
    let devices: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("DEVICES"))
        .unwrap_or(10_000);
    let blocks: Blocks = toml::from_str(&discovery::block_toml("b", devices)).expect("block");
    let plan = compile(&blocks.discovery[0]).expect("plan");
    let (now, wall) = (Instant::now(), SystemTime::now());
    let payloads: Vec<fleet::Payload> = (0..devices).map(discovery::payload).collect();
    let start = in_use();
    let mut state = DiscoveryState::new(plan);
    let entities = (devices + 1) * discovery::ENTITIES_PER_DEVICE;
    for (topic, config) in discovery::configs(devices) {
        let out = state.offer(&topic, config.as_bytes(), true, now, wall);
        assert_eq!(out.refused, None);
    }
    assert_eq!(state.entity_count(), entities);
    let announced = in_use();
    for cycle in 0..3 {
        for (d, p) in payloads.iter().enumerate() {
            let mut bytes = p.bytes.clone();
            p.patch(&mut bytes, d, cycle);
            state.offer(&fleet::topic(d), &bytes, false, now, wall);
        }
    }
    let valued = in_use();
    let outbox = Outbox::new();
    // The first check, as the session makes it: every column due, built and sent a few at a time.
    let due = state.take_due(now + Duration::from_secs(1), 60);
    let columns = due.places.len();
    let mut peak = in_use();
    for chunk in due.places.chunks(COLUMNS_PER_TURN) {
        let built: Vec<_> = chunk
            .iter()
            .filter_map(|(p, _)| state.column_at(p, now + Duration::from_secs(1), wall))
            .collect();
        for col in &built {
            outbox.put(xymon_mqtt::status::discovery_status(
                col,
                Duration::from_secs(420),
                wall,
                256,
            ));
        }
        peak = peak.max(in_use());
    }
    let text: usize = outbox.tests().iter().map(|t| t.message.len()).sum();
    drop(due);
    let steady = in_use();
    let mb = |b: usize| b as f64 / 1e6;
    println!("{devices} devices, {entities} entities, {columns} columns");
    println!(
        "state as announced        {:7.2} MB ({:.0} bytes per entity)",
        mb(announced - start),
        (announced - start) as f64 / entities as f64
    );
    println!("state after 3 values each {:7.2} MB", mb(valued - start));
    println!(
        "first check, at its peak   {:7.2} MB ({COLUMNS_PER_TURN} columns built at a time)",
        mb(peak - start)
    );
    println!(
        "steady: state and outbox  {:7.2} MB (outbox {:.2} MB, {:.0} bytes per column of which \
         {:.0} the status text)",
        mb(steady - start),
        mb(steady - valued),
        (steady - valued) as f64 / columns as f64,
        text as f64 / columns as f64
    );
}
