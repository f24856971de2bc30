//! The benchmark harness: `./run-bench` (full) and `./run-bench --smoke` (a few seconds, run by
//! `./run-tests`).
//!
//! Starts its own mosquitto and xymond on loopback (the test harness in `tests/common`), runs each
//! scenario (`bench/scenario/`, one file each) against its baseline in the same run, prints a table of
//! figures and ratios and writes them as JSON (`target/bench.json` by default); the rows are
//! `bench/row.rs`. Method notes for each scenario are in BENCHMARKS.md.
//!
//! Usage: `bench [--smoke] [--json PATH] [--only 1,2,...] [--bin PATH/xymon-mqtt]`, or `bench tap` (the
//! status-channel tap that xymond_channel runs).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

mod api_setup;
mod discovery;
mod fleet;
mod flood;
mod probe;
mod relay;
mod row;
mod scenario;

use row::Row;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Scenario sizes: the full run and the smoke run differ only in these numbers.
#[derive(Clone, Copy)]
pub struct Sizes {
    pub smoke: bool,
    /// Messages per ingest run (scenarios 1, 6, 8).
    pub ingest_msgs: usize,
    /// Ingest runs per consumer (alternating consumers, median taken).
    pub ingest_reps: usize,
    /// Seconds per delivery run (scenario 2).
    pub delivery_secs: f64,
    /// Seconds per latency rate (scenario 3)...
    pub latency_secs: f64,
    /// ...but at least this many rounds, so that a p99 is not just the worst one or two rounds (at 20
    /// rounds/s, 5 s are only 100 rounds).
    pub latency_min_rounds: u64,
    /// Distinct topics for the memory figures (scenario 4).
    pub memory_topics: &'static [usize],
    /// Seconds per wrk run (scenario 5).
    pub api_secs: u32,
    /// RRD files (scenario 6).
    pub rrd_files: usize,
    /// Seconds of idle observation (scenario 7).
    pub idle_secs: f64,
    /// Devices of the sensor fleet (scenario 9)...
    pub fleet_devices: usize,
    /// ...and messages per fleet run (alternating consumers, `ingest_reps` runs each).
    pub fleet_msgs: usize,
    /// Devices for the fleet's memory figures (scenario 9).
    pub fleet_memory_devices: &'static [usize],
    /// Devices of the discovery fleet (scenario 10; also its memory figure)...
    pub discovery_devices: usize,
    /// ...and messages per discovery run (alternating consumers, `ingest_reps` runs each).
    pub discovery_msgs: usize,
}

const FULL: Sizes = Sizes {
    smoke: false,
    ingest_msgs: 1_000_000,
    ingest_reps: 3,
    delivery_secs: 5.0,
    latency_secs: 5.0,
    latency_min_rounds: 1_000,
    memory_topics: &[1_000, 10_000, 100_000],
    api_secs: 4,
    rrd_files: 10_000,
    idle_secs: 10.0,
    fleet_devices: 10_000,
    fleet_msgs: 600_000,
    fleet_memory_devices: &[1_000, 10_000, 100_000],
    discovery_devices: 10_000,
    discovery_msgs: 600_000,
};

const SMOKE: Sizes = Sizes {
    smoke: true,
    ingest_msgs: 20_000,
    ingest_reps: 1,
    delivery_secs: 0.5,
    latency_secs: 0.5,
    latency_min_rounds: 10,
    memory_topics: &[1_000],
    api_secs: 1,
    rrd_files: 100,
    idle_secs: 1.0,
    fleet_devices: 1_000,
    fleet_msgs: 20_000,
    fleet_memory_devices: &[1_000],
    discovery_devices: 1_000,
    discovery_msgs: 20_000,
};

fn main() {
    // The in-process bridge (scenarios 1, 6) runs with the daemon's malloc settings (one arena).
    xymon_mqtt::heap::limit_arenas();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("tap") {
        probe::tap_main(args.get(1).map_or("/dev/stdout", String::as_str));
        return;
    }
    let mut sizes = FULL;
    let mut json_path = PathBuf::from("target/bench.json");
    let mut only: Option<Vec<u8>> = None;
    let mut bin: Option<PathBuf> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => sizes = SMOKE,
            "--json" => json_path = it.next().expect("--json PATH").into(),
            "--only" => {
                only = Some(
                    it.next()
                        .expect("--only 1,2,..")
                        .split(',')
                        .map(|s| s.trim().parse().expect("scenario number"))
                        .collect(),
                )
            }
            "--bin" => bin = Some(it.next().expect("--bin PATH").into()),
            "-h" | "--help" => {
                println!("usage: bench [--smoke] [--json PATH] [--only 1,2,...] [--bin PATH]");
                return;
            }
            other => panic!("unknown argument {other:?} (see --help)"),
        }
    }
    let bin = bin.unwrap_or_else(|| {
        // target/<profile>/examples/bench -> target/<profile>/xymon-mqtt
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(|p| p.parent())
            .expect("target dir")
            .join("xymon-mqtt")
    });
    let wanted = |n: u8| only.as_ref().is_none_or(|o| o.contains(&n));

    let started = Instant::now();
    let env = scenario::Env::start(sizes, bin);
    let mut rows: Vec<Row> = Vec::new();
    let mut details = serde_json::Map::new();
    let mut ingest_bridge_rate = None;
    for (n, name, run) in scenario::ALL {
        if !wanted(n) {
            continue;
        }
        eprintln!("[bench] scenario {n}: {name}");
        let t = Instant::now();
        let outcome = run(&env, ingest_bridge_rate);
        if outcome.ingest_rate.is_some() {
            ingest_bridge_rate = outcome.ingest_rate;
        }
        eprintln!(
            "[bench] scenario {n} took {:.1} s",
            t.elapsed().as_secs_f64()
        );
        rows.extend(outcome.rows.into_iter().map(|r| Row { scenario: n, ..r }));
        details.insert(format!("{n}_{name}"), outcome.details);
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        eprintln!("[bench] keeping {}", env.tmp.path().display());
        let scenario::Env {
            tmp, mosq, xymond, ..
        } = env;
        // Stop the servers now: the smoke check below may exit() without running destructors.
        drop((mosq, xymond));
        let _ = tmp.keep();
    } else {
        drop(env);
    }

    row::print_table(&rows);
    let out = json!({
        "mode": if sizes.smoke { "smoke" } else { "full" },
        "machine": machine(),
        "seconds": started.elapsed().as_secs_f64(),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "details": details,
    });
    if let Some(dir) = json_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&out).expect("json"),
    )
    .expect("write json");
    println!("\nJSON written to {}", json_path.display());
    if sizes.smoke {
        // The smoke run checks that every scenario produced figures, not that targets are met.
        // Rows whose target is zero (drops, idle wake-ups, idle CPU) may well be zero.
        let zero_ok = |r: &Row| matches!(r.target.as_str(), "0" | "~0");
        let empty: Vec<&Row> = rows
            .iter()
            .filter(|r| !(r.value.is_finite() && (r.value > 0.0 || zero_ok(r))))
            .collect();
        for r in &empty {
            eprintln!(
                "[bench] smoke: no figure for scenario {} {}",
                r.scenario, r.metric
            );
        }
        if !empty.is_empty() {
            std::process::exit(1);
        }
        println!("bench smoke: OK");
    }
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo.lines().next().unwrap_or_default().to_string();
    let pkg = |p: &str| cmd_out("dpkg-query", &["-W", "-f=${Version}", p]);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory": mem,
        "kernel": cmd_out("uname", &["-r"]),
        "mosquitto": pkg("mosquitto"),
        "xymon": pkg("xymon"),
        "rrdtool": pkg("rrdtool"),
        "wrk": pkg("wrk"),
        "prometheus-mqtt-exporter": pkg("prometheus-mqtt-exporter"),
        "rustc": cmd_out("rustc", &["--version"]),
        "git": cmd_out("git", &["describe", "--always", "--dirty"]),
    })
}
