//! Scenario 10, discovery fleet: scenario 9's fleet announced through Home Assistant discovery instead of
//! matched by a rule. 10,000 devices, each with two retained Zigbee2MQTT-style configs (temperature and
//! humidity sensors, `value_template` `{{ value_json.<field> }}`, device_class, unit) and a state topic
//! `z2m/devNNNNN` carrying about 300 bytes of JSON (`bench/discovery.rs`); one `[[discovery]]` block with
//! class thresholds reads them, one MQTT session for the whole fleet.
//!
//! Baseline: `mosquitto_sub -t 'z2m/#' >/dev/null` on the same broker with the same flood, alternating with
//! the bridge, medians reported (scenario 1's machinery, with `Flood::Discovery`). Each bridge run starts a
//! fresh in-process bridge on a broker without the announcements, waits for its `<prefix>/#`
//! subscription, publishes the announcements live as fast as one connection can (a Zigbee2MQTT with
//! 10,000 devices starting up; the run fails unless the bridge takes every one), waits until the broker
//! counts its subscription to every state topic, then floods. The session counts no messages of its own,
//! so the end is read from what it built: each entity's value carries the wall-clock time the session
//! handled it, and the session handles one connection's messages in the broker's order, so the latest such
//! time on the devices board is when it handled its last message. The sentinel (a device announced with
//! the others, whose state topic gets one message after the flood) having a value on the board says the
//! session is through; the clock then stops at that latest value time. Targets: the bridge at >= 0.75x
//! mosquitto_sub, no broker drops, <= 40 MB RSS at 10,000 devices. Also reported: CPU per message (the
//! bridge's runtime threads), statuses/s (what the block put into the outbox over the run), the release
//! binary's RSS as its own process after 3 cycles, and how many of the retained announcements a
//! restarted bridge and `mosquitto_sub` read back from the broker (no target: the broker bounds both).

use super::bridge_process;
use super::fleet::timed_rate;
use super::ingest::{ingest_mosquitto_sub, measure_ingest, Flood, IngestRun, STALL};
use super::setup::{median_by, Env};
use crate::common::bridge::RunningBridge;
use crate::common::free_port;
use crate::discovery;
use crate::fleet;
use crate::flood::Publisher;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast::error::TryRecvError;
use xymon_mqtt::discovery::Board;

/// Cycles the memory figure's devices publish.
const MEMORY_CYCLES: usize = 3;
/// How long a bridge may take to read the announcements and subscribe to every state topic.
const SETTLE: Duration = Duration::from_secs(120);

fn config(env: &Env, xymon: &str, devices: usize) -> String {
    env.bridge_config(xymon) + &discovery::block_toml("b", devices)
}

/// Publishes the fleet's retained announcements, or with `clear` removes them from the broker.
fn announce(env: &Env, devices: usize, clear: bool) {
    let mut buf = Vec::new();
    discovery::announcements(&mut buf, devices, clear);
    let mut p = Publisher::connect(env.port(), "bench-discovery-announce").expect("connect");
    p.write(&buf).expect("announce");
    p.sync().expect("sync");
    p.disconnect();
}

/// Starts from a broker without the fleet's announcements, waits until the broker counts one more
/// subscription than `base` (the session's `<prefix>/#`), then announces every device as one
/// connection publishes as fast as it can (a Zigbee2MQTT with 10,000 devices starting up) and waits
/// until `entities` counts them all. Panics past `SETTLE`. The announcements stay retained.
fn announce_live(env: &Env, base: u64, devices: usize, entities: impl Fn() -> usize) {
    if !probe::wait_subscriptions(env.port(), base + 1, SETTLE) {
        eprintln!("[bench]   the broker never counted the discovery session's subscription");
    }
    announce(env, devices, false);
    let want = (devices + 1) * discovery::ENTITIES_PER_DEVICE;
    let started = Instant::now();
    while entities() < want {
        assert!(
            started.elapsed() < SETTLE,
            "the bridge took {} of {want} live announcements",
            entities()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the broker counts the discovery session's subscriptions on top of `base`: `<prefix>/#`
/// and a state topic per device and the sentinel (asked for once the announcements are read), and the
/// count holds still for a second. False if that takes longer than `SETTLE`.
fn wait_subscribed(env: &Env, base: u64, devices: usize) -> bool {
    let ok = probe::wait_subscriptions(env.port(), base + devices as u64 + 2, SETTLE);
    probe::settled_sys_value(env.port(), probe::SUBSCRIPTIONS);
    ok
}

/// Whether the sentinel device has a value on the board.
fn sentinel_has_value(board: &Board) -> bool {
    board.devices().iter().any(|d| {
        d.host.as_str() == fleet::SENTINEL && d.entities.iter().any(|(_, e)| e.value.is_some())
    })
}

/// The latest time at which the session handled a value, over every entity on the board.
fn latest_value(board: &Board) -> Option<SystemTime> {
    board
        .devices()
        .iter()
        .flat_map(|d| d.entities.iter().filter_map(|(_, e)| e.updated))
        .max()
}

/// `b - a` in seconds, negative when `b` is earlier.
fn signed_secs(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// One bridge run under `n` messages: the run (its time ending at the last value handled), the statuses
/// the block put into the outbox, and whether the sentinel came through.
fn discovery_bridge(env: &Env, devices: usize, n: usize) -> (IngestRun, u64, bool) {
    announce(env, devices, true);
    let base = probe::quiet_subscriptions(env.port());
    // Statuses go to a port nothing listens on: the outbox keeps the latest per column.
    let xymon = format!("127.0.0.1:{}", free_port());
    let bridge = RunningBridge::start(&config(env, &xymon, devices));
    let board = bridge.shared.devices.clone();
    announce_live(env, base, devices, || board.entities());
    if !wait_subscribed(env, base, devices) {
        eprintln!("[bench]   the broker never counted every state topic's subscription");
    }
    let mut changes = bridge.shared.outbox.subscribe();
    let mut statuses = 0u64;
    let (mut last_item, mut last_check, mut checked) = (Instant::now(), Instant::now(), true);
    // The wall-clock time of the poll at which measure_ingest's clock stopped: the last one whose
    // figure changed (it stops at the last progress) or the one that said done.
    let (mut shown, mut at) = (0u64, None::<SystemTime>);
    let mut seen = false;
    let run = measure_ingest(env, Flood::Discovery { devices }, n, STALL, || {
        loop {
            match changes.try_recv() {
                Ok(_) => statuses += 1,
                Err(TryRecvError::Lagged(k)) => statuses += k,
                Err(_) => break,
            }
            last_item = Instant::now();
            checked = false;
        }
        // The board lists the session's state, locking it: look once a check's burst of statuses is
        // over, and every second anyway.
        let quiet = last_item.elapsed() >= Duration::from_millis(20);
        if quiet && (!checked || last_check.elapsed() >= Duration::from_secs(1)) {
            (checked, last_check) = (true, Instant::now());
            seen = seen || sentinel_has_value(&board);
        }
        if statuses != shown || seen {
            (shown, at) = (statuses, Some(SystemTime::now()));
        }
        (statuses, seen)
    });
    // measure_ingest waited 2 s for the broker's counters: the board is current.
    let last = latest_value(&board);
    bridge.stop();
    let secs = match (last, at) {
        (Some(last), Some(at)) => run.secs + signed_secs(at, last),
        _ => run.secs,
    };
    // QoS 0: what the broker did not drop reached the session (the sentinel is one more message).
    let received = (n as u64 + 1).saturating_sub(run.dropped).min(n as u64);
    let cpu_ns = run.cpu_ns_per_msg * run.received.max(1) as f64;
    let run = IngestRun {
        received,
        secs,
        rate: received as f64 / secs,
        cpu_ns_per_msg: cpu_ns / received.max(1) as f64,
        ..run
    };
    (run, statuses, seen)
}

/// Waits until the process `pid` has used at most a tenth of a CPU for two seconds in a row (the
/// session rebuilds its columns every second, so it is never fully quiet), at most `max`.
fn wait_settled(pid: u32, max: Duration) {
    let start = Instant::now();
    let tick = Duration::from_secs(1);
    let (mut last, mut calm) = (probe::cpu_ticks(pid), 0);
    while start.elapsed() < max && calm < 2 {
        std::thread::sleep(tick);
        let now = probe::cpu_ticks(pid);
        // Clock ticks are 1/100 s.
        calm = if now.saturating_sub(last) <= 10 {
            calm + 1
        } else {
            0
        };
        last = now;
    }
}

/// VmRSS and RssAnon (MB) of the release binary with the block, once `devices` devices have each
/// published `MEMORY_CYCLES` times and it has settled: the highest of ten readings over a second, as the
/// columns rebuilt every second come and go. Statuses go to the run's xymond, as in scenario 9.
fn discovery_memory(env: &Env, devices: usize) -> (f64, f64) {
    let name = format!("discovery{devices}");
    announce(env, devices, true);
    let base = probe::quiet_subscriptions(env.port());
    let config = config(env, &env.xymond.addr(), devices);
    let child = bridge_process::spawn_config(env, &name, &config);
    let pid = child.id();
    // As in the runs, announced live; every device counted by the state topic its session subscribes to.
    if !probe::wait_subscriptions(env.port(), base + 1, SETTLE) {
        eprintln!("[bench]   {name}: the broker never counted the discovery subscription");
    }
    announce(env, devices, false);
    if !wait_subscribed(env, base, devices) {
        eprintln!("[bench]   {name}: the broker never counted every state topic's subscription");
    }
    let topics: Vec<String> = (0..devices).map(fleet::topic).collect();
    let payloads: Vec<fleet::Payload> = (0..devices).map(discovery::payload).collect();
    let mut p = Publisher::connect(env.port(), "bench-discovery-memory").expect("connect");
    p.flood_with(
        &topics,
        devices * MEMORY_CYCLES,
        |d| payloads[d].bytes.clone(),
        |d, cycle, bytes| payloads[d].patch(bytes, d, cycle),
    )
    .expect("flood");
    p.sync().expect("sync");
    p.disconnect();
    wait_settled(pid, Duration::from_secs(60));
    let (mut rss, mut anon) = (0u64, 0u64);
    for _ in 0..10 {
        rss = rss.max(probe::rss_bytes(pid));
        anon = anon.max(probe::rss_anon_bytes(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    bridge_process::stop(child);
    (rss as f64 / 1e6, anon as f64 / 1e6)
}

/// What a restarted consumer reads back of the retained announcements (left by the memory run): a fresh
/// bridge (its entities once the count has held still for 3 s) and `mosquitto_sub -t '<prefix>/#'`
/// (messages within 10 s). Both are bounded by the broker, not by themselves: mosquitto queues a
/// subscription's retained messages all at once, and drops QoS 0 messages for a client past
/// `max_queued_messages` (1000 by default) beyond what its socket holds.
fn read_back(env: &Env, devices: usize) -> (usize, usize) {
    let xymon = format!("127.0.0.1:{}", free_port());
    let bridge = RunningBridge::start(&config(env, &xymon, devices));
    let board = bridge.shared.devices.clone();
    let (start, mut still, mut last) = (Instant::now(), Instant::now(), usize::MAX);
    while start.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(500));
        let n = board.entities();
        if n != last {
            (last, still) = (n, Instant::now());
        } else if n > 0 && still.elapsed() >= Duration::from_secs(3) {
            break;
        }
    }
    bridge.stop();
    let out = std::process::Command::new("mosquitto_sub")
        .args(["-p", &env.port().to_string(), "-W", "10", "-t"])
        .arg(format!("{}/#", discovery::PREFIX))
        .output()
        .expect("run mosquitto_sub");
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    (last, lines)
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let (devices, n) = (env.sizes.discovery_devices, env.sizes.discovery_msgs);
    let flood = Flood::Discovery { devices };
    let (mut sub, mut ours, mut statuses, mut sentinels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..env.sizes.ingest_reps {
        eprintln!("[bench]   discovery rep {}: mosquitto_sub, bridge", rep + 1);
        sub.push(ingest_mosquitto_sub(env, flood, n));
        let (run, st, seen) = discovery_bridge(env, devices, n);
        statuses.push(st as f64 / run.secs);
        sentinels.push(seen);
        ours.push(run);
    }
    let (rss, anon) = discovery_memory(env, devices);
    let (bridge_back, sub_back) = read_back(env, devices);
    announce(env, devices, true);

    let sub_rate = timed_rate(&sub, n);
    let our_rate = median_by(&ours, |r| r.rate);
    let our_dropped: u64 = ours.iter().map(|r| r.dropped).sum();
    let all_through = sentinels.iter().all(|s| *s);
    const SUB: &str = "mosquitto_sub -t 'z2m/#' >/dev/null";
    let mut rss_row = Row::new(format!("discovery: RSS at {devices} devices"), rss, "MB");
    if devices == 10_000 {
        rss_row = rss_row.target("<= 40 MB", rss <= 40.0);
    }
    let rows = vec![
        Row::new(
            format!("discovery msg/s, bridge ({devices} devices)"),
            our_rate,
            "msg/s",
        )
        .against(SUB, sub_rate)
        .target(
            ">= 0.75x",
            sub_rate.is_finite() && our_rate >= 0.75 * sub_rate,
        ),
        Row::new(
            "discovery: bridge CPU per message (runtime threads)",
            median_by(&ours, |r| r.cpu_ns_per_msg),
            "ns",
        ),
        Row::new(
            "discovery: broker drops for the bridge (all reps)",
            our_dropped as f64,
            "msgs",
        )
        .target("0", our_dropped == 0 && all_through),
        Row::new(
            "discovery: statuses/s put into the outbox",
            median_by(&statuses, |s| *s),
            "st/s",
        ),
        rss_row,
        Row::new(
            format!(
                "discovery: of {} retained announcements, read back by a restarted bridge",
                (devices + 1) * discovery::ENTITIES_PER_DEVICE
            ),
            bridge_back as f64,
            "msgs",
        )
        .against("mosquitto_sub -t 'homeassistant/#'", sub_back as f64),
    ];
    let dbg = |v: &[IngestRun]| v.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
    Outcome::new(
        rows,
        json!({
            "messages_per_run": n, "devices": devices,
            "entities": devices * discovery::ENTITIES_PER_DEVICE,
            "payload_bytes": discovery::payload(0).bytes.len(),
            "mosquitto_sub": dbg(&sub), "bridge": dbg(&ours), "sentinel_seen": sentinels,
            "statuses_per_s": statuses, "memory": {"devices": devices, "rss_mb": rss, "rss_anon_mb": anon},
            "memory_cycles": MEMORY_CYCLES,
            "read_back": {"announcements": (devices + 1) * discovery::ENTITIES_PER_DEVICE,
                "bridge_entities": bridge_back, "mosquitto_sub_messages": sub_back},
        }),
    )
}
