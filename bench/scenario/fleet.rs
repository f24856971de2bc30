//! Scenario 9, fleet: the sensor-fleet path at broker speed. 10,000 devices (`z2m/devNNNNN`) publish
//! Zigbee2MQTT-like JSON of about 225 bytes (`bench/fleet.rs`); one rule (`z2m/{host}`, two JSONPath
//! values with thresholds) makes a test per device. The flood is as fast as the publisher can write.
//!
//! Baseline: `mosquitto_sub -t 'z2m/#' >/dev/null` on the same broker with the same flood; the bare
//! rumqttc loop is shown as a reference (the floor of any rumqttc consumer). The three consumers
//! alternate, medians reported (scenario 1's machinery, `ingest::measure_ingest`, with `Flood::Fleet`).
//! The bridge is done when the collector has processed everything: after the flood the publisher sends
//! one message of a new device (the sentinel), whose instance sends its first status at once, and the
//! clock stops when that status is in the outbox. Targets: the bridge at >= 0.75x mosquitto_sub, no broker
//! drops, <= 25 MB RSS at 10,000 devices. Also reported: CPU per message (the bridge's runtime threads),
//! statuses/s (the statuses the rule put into the outbox over the run), and the RSS of the release binary
//! as its own process at 1,000, 10,000 and 100,000 devices.

use super::bridge_process;
use super::ingest::{
    ingest_mosquitto_sub, ingest_rumqttc, measure_ingest, Flood, IngestRun, STALL,
};
use super::setup::{median_by, Env};
use crate::common::bridge::RunningBridge;
use crate::common::free_port;
use crate::fleet;
use crate::flood::Publisher;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast::error::TryRecvError;
use xymon_mqtt::metrics::Metrics;

/// Cycles the memory figures' devices publish (each device's numbers change every cycle).
const MEMORY_CYCLES: usize = 3;

/// The fleet's bridge config: the rule on broker "b", statuses to `xymon`.
fn fleet_config(env: &Env, xymon: &str, devices: usize) -> String {
    env.bridge_config(xymon) + &fleet::rule_toml("b", devices)
}

/// The bridge in-process under the fleet's flood of `n` messages; also the statuses it put in the outbox.
fn fleet_bridge(env: &Env, devices: usize, n: usize) -> (IngestRun, u64) {
    // Statuses go to a port nothing listens on: the outbox keeps the latest per instance.
    let xymon = format!("127.0.0.1:{}", free_port());
    let bridge = RunningBridge::start(&fleet_config(env, &xymon, devices));
    bridge.wait_subscribed(0);
    let messages = bridge
        .shared
        .metrics
        .messages
        .get_or_create(&Metrics::broker("b"))
        .clone();
    let outbox = bridge.shared.outbox.clone();
    let mut changes = outbox.subscribe();
    let sentinel = format!("{}.{}", fleet::SENTINEL, fleet::TEST);
    let (mut statuses, mut seen, mut lagged) = (0u64, false, false);
    let run = measure_ingest(env, Flood::Fleet { devices }, n, STALL, || {
        loop {
            match changes.try_recv() {
                Ok(key) => {
                    statuses += 1;
                    seen |= key == sentinel;
                }
                Err(TryRecvError::Lagged(k)) => {
                    statuses += k;
                    lagged = true;
                }
                Err(_) => break,
            }
        }
        let got = messages.get();
        // A lagged watcher may have missed the sentinel's key: then look in the outbox itself, once
        // everything has arrived.
        if lagged && !seen && got > n as u64 {
            seen = outbox.tests().iter().any(|t| t.host == fleet::SENTINEL);
        }
        (got.min(n as u64), seen)
    });
    bridge.stop();
    (run, statuses)
}

/// VmRSS (MB) of the release binary with the fleet's rule, once `devices` devices have each published
/// `MEMORY_CYCLES` times and the process is quiet; RssAnon too. Statuses go to the run's xymond, as in
/// scenario 4, so the outbox holds what a running bridge holds (the devices are not in its hosts.cfg:
/// xymond notes them as ghosts).
fn fleet_memory(env: &Env, devices: usize) -> (f64, f64) {
    let name = format!("fleet{devices}");
    let config = fleet_config(env, &env.xymond.addr(), devices);
    let child = bridge_process::spawn_config(env, &name, &config);
    let pid = child.id();
    bridge_process::wait_subscribed(env, &name, Duration::from_secs(60));
    let topics: Vec<String> = (0..devices).map(fleet::topic).collect();
    let payloads: Vec<fleet::Payload> = (0..devices).map(fleet::Payload::new).collect();
    let mut p = Publisher::connect(env.port(), "bench-fleet-memory").expect("connect");
    p.flood_with(
        &topics,
        devices * MEMORY_CYCLES,
        |d| payloads[d].bytes.clone(),
        |d, cycle, bytes| payloads[d].patch(bytes, d, cycle),
    )
    .expect("flood");
    p.sync().expect("sync");
    p.disconnect();
    bridge_process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(60));
    let mb = (
        probe::rss_bytes(pid) as f64 / 1e6,
        probe::rss_anon_bytes(pid) as f64 / 1e6,
    );
    bridge_process::stop(child);
    mb
}

/// The median rate of the `mosquitto_sub` runs that got all `n` messages. A run that never got everything
/// (the broker dropped part of the flood for it, on a busy machine) has no rate: the baseline is the median
/// of the others, and none (NaN) when there are none. Scenario 10 takes its baseline the same way.
pub fn timed_rate(sub: &[IngestRun], n: usize) -> f64 {
    let timed: Vec<IngestRun> = sub
        .iter()
        .filter(|r| r.received >= n as u64)
        .cloned()
        .collect();
    if timed.is_empty() {
        f64::NAN
    } else {
        median_by(&timed, |r| r.rate)
    }
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let (devices, n) = (env.sizes.fleet_devices, env.sizes.fleet_msgs);
    let flood = Flood::Fleet { devices };
    let (mut sub, mut bare, mut ours, mut statuses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..env.sizes.ingest_reps {
        eprintln!(
            "[bench]   fleet rep {}: mosquitto_sub, rumqttc, bridge",
            rep + 1
        );
        sub.push(ingest_mosquitto_sub(env, flood, n));
        bare.push(ingest_rumqttc(env, flood, n));
        let (run, st) = fleet_bridge(env, devices, n);
        statuses.push(st as f64 / run.secs);
        ours.push(run);
    }
    let rate = |v: &[IngestRun]| median_by(v, |r| r.rate);
    let (bare_rate, our_rate) = (rate(&bare), rate(&ours));
    let sub_rate = timed_rate(&sub, n);
    let cpu = |v: &[IngestRun]| median_by(v, |r| r.cpu_ns_per_msg);
    let our_dropped: u64 = ours.iter().map(|r| r.dropped).sum();
    let our_received_all = ours.iter().all(|r| r.received >= n as u64);
    let statuses_per_s = median_by(&statuses, |s| *s);
    const SUB: &str = "mosquitto_sub -t 'z2m/#' >/dev/null";
    let mut rows = vec![
        Row::new(
            format!("fleet msg/s, bridge ({devices} devices, rule)"),
            our_rate,
            "msg/s",
        )
        .against(SUB, sub_rate)
        .target(
            ">= 0.75x",
            sub_rate.is_finite() && our_rate >= 0.75 * sub_rate,
        ),
        Row::new(
            "fleet msg/s, bare rumqttc loop (reference)",
            bare_rate,
            "msg/s",
        )
        .against(SUB, sub_rate),
        Row::new(
            "fleet: bridge CPU per message (runtime threads)",
            cpu(&ours),
            "ns",
        )
        .against("bare rumqttc loop", cpu(&bare)),
        Row::new(
            "fleet: broker drops for the bridge (all reps)",
            our_dropped as f64,
            "msgs",
        )
        .target("0", our_dropped == 0 && our_received_all),
        Row::new(
            "fleet: statuses/s built by the rule",
            statuses_per_s,
            "st/s",
        ),
    ];
    let mut memory = Vec::new();
    for &k in env.sizes.fleet_memory_devices {
        let (rss, anon) = fleet_memory(env, k);
        let mut row = Row::new(format!("fleet: RSS at {k} devices"), rss, "MB");
        if k == 10_000 {
            row = row.target("<= 25 MB", rss <= 25.0);
        }
        rows.push(row);
        memory.push(json!({"devices": k, "rss_mb": rss, "rss_anon_mb": anon}));
    }
    let dbg = |v: &[IngestRun]| v.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
    Outcome::new(
        rows,
        json!({
            "messages_per_run": n, "devices": devices, "payload_bytes": fleet::Payload::new(0).bytes.len(),
            "mosquitto_sub": dbg(&sub), "rumqttc": dbg(&bare), "bridge": dbg(&ours),
            "statuses_per_s": statuses, "memory": memory, "memory_cycles": MEMORY_CYCLES,
        }),
    )
}
