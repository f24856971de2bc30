//! Scenario 3, latency: from the publisher's write of a round's last topic to xymond posting the status
//! that carries the round's marker (`bseq-N`, seen by the tap on xymond's status channel), at 20, 200 and
//! 2,000 rounds/s over 20 hosts with one 3-topic continuous test each; p50 and p99 per rate.
//!
//! Baseline: the same rounds, on topics of its own, through a blocking relay that does no work
//! (`bench/relay.rs`): everything on the path that is not the bridge. Targets: p99 <= 1 ms at 20
//! rounds/s, p99 <= 5 ms at 2,000 rounds/s (none at 200).

use super::setup::{latency_host, push_test, Env, LATENCY_HOSTS};
use crate::common::bridge::RunningBridge;
use crate::flood::{encode_publish, Publisher};
use crate::probe::{self, Tap};
use crate::relay::Relay;
use crate::row::{Outcome, Row};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Rounds per second, and the p99 target at that rate.
const RATES: [(u32, Option<f64>); 3] = [(20, Some(1.0)), (200, None), (2000, Some(5.0))];

fn latency_config(env: &Env) -> String {
    let mut s = env.bridge_config(&env.xymond.addr());
    for h in 0..LATENCY_HOSTS {
        let host = latency_host(h);
        let topics = ["a", "b", "c"].map(|t| format!("lat/{host}/{t}"));
        push_test(&mut s, &host, "lat", "1s", &topics);
    }
    s
}

/// Publishes rounds of the 3 topics `{prefix}/{host}/{a,b,c}` at `rate` per second (at least
/// `latency_min_rounds`) and returns (rounds measured, latencies in ms of those the tap saw), from the
/// write of a round's last topic to xymond posting the status that carries its marker.
fn timed_rounds(env: &Env, tap: &Tap, rate: u32, prefix: &str, seq: &mut u64) -> (usize, Vec<f64>) {
    let mut p = Publisher::connect(env.port(), "bench-latency").expect("connect");
    let mut sent: Vec<(String, String, u128)> = Vec::new();
    let start = Instant::now();
    let rounds =
        ((env.sizes.latency_secs * rate as f64).ceil() as u64).max(env.sizes.latency_min_rounds);
    let mut buf = Vec::with_capacity(256);
    for i in 0..rounds {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        *seq += 1;
        let host = latency_host((*seq as usize) % LATENCY_HOSTS);
        let marker = format!("bseq-{seq}");
        buf.clear();
        for t in ["a", "b", "c"] {
            encode_publish(&mut buf, &format!("{prefix}/{host}/{t}"), marker.as_bytes());
        }
        p.write(&buf).expect("publish");
        sent.push((host, marker, probe::now_ns()));
    }
    p.sync().expect("sync");
    p.disconnect();
    std::thread::sleep(Duration::from_millis(500));
    let seen: std::collections::HashMap<(String, String), u128> = tap
        .read()
        .into_iter()
        .map(|t| ((t.host, t.marker), t.at_ns))
        .collect();
    // The first 5 % are warm-up (connection set-up, first allocation of every round).
    let skip = sent.len() / 20;
    let lat_ms = sent[skip..]
        .iter()
        .filter_map(|(h, m, at)| {
            let got = seen.get(&(h.clone(), m.clone()))?;
            Some(got.saturating_sub(*at) as f64 / 1e6)
        })
        .collect();
    (sent.len() - skip, lat_ms)
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let tap = Tap::start(env.xymond.dir(), &env.tmp.path().join("tap-latency.txt"));
    let bridge = RunningBridge::start(&latency_config(env));
    bridge.wait_subscribed(0);
    // The floor: a blocking relay with no work (bench/relay.rs), on its own topics, so that it and the
    // bridge never see each other's rounds; each sits idle while the other is measured.
    let relay = Relay::start(env.port(), env.xymond.addr(), "latr", "relay").expect("relay");
    let mut rows = Vec::new();
    let mut details = serde_json::Map::new();
    let mut seq: u64 = 0;
    for (rate, p99_target_ms) in RATES {
        let (measured, mut lat_ms) = timed_rounds(env, &tap, rate, "lat", &mut seq);
        let (floor_measured, mut floor_ms) = timed_rounds(env, &tap, rate, "latr", &mut seq);
        assert!(
            !floor_ms.is_empty(),
            "scenario 3: the relay delivered none of its {floor_measured} rounds at {rate}/s"
        );
        let delivered = lat_ms.len();
        let p50 = probe::quantile(&mut lat_ms, 0.5);
        let p99 = probe::quantile(&mut lat_ms, 0.99);
        let max = probe::quantile(&mut lat_ms, 1.0);
        let floor_p50 = probe::quantile(&mut floor_ms, 0.5);
        let floor_p99 = probe::quantile(&mut floor_ms, 0.99);
        let floor = |q: &str| format!("{q} of a blocking relay doing no work");
        rows.push(
            Row::new(format!("latency p50 at {rate} rounds/s"), p50, "ms")
                .against(floor("p50"), floor_p50),
        );
        let mut p99_row = Row::new(format!("latency p99 at {rate} rounds/s"), p99, "ms")
            .against(floor("p99"), floor_p99);
        if let Some(target) = p99_target_ms {
            p99_row = p99_row.target(format!("p99 <= {target} ms"), p99 <= target);
        }
        rows.push(p99_row);
        details.insert(
            format!("{rate}_per_s"),
            json!({"rounds": measured, "delivered": delivered, "p50_ms": p50, "p99_ms": p99, "max_ms": max,
                   "note": "rounds not delivered were superseded in the outbox by a newer round of the same host.test",
                   "relay": {"rounds": floor_measured, "delivered": floor_ms.len(), "p50_ms": floor_p50,
                             "p99_ms": floor_p99, "max_ms": probe::quantile(&mut floor_ms, 1.0)}}),
        );
    }
    drop(relay);
    bridge.stop();
    Outcome::new(rows, Value::Object(details))
}
