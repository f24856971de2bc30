//! Instructions and allocations per message on the sensor-fleet path (`bench/rule-profile`; BENCHMARKS.md,
//! "Fleet path").
//!
//! Scenario 9's msg/s on a shared 2-core machine move with whatever else runs; instruction counts under
//! callgrind and allocation counts do not. Two modes:
//! - `rule_profile feed N [DEVICES]`: the fleet path in-process, without a broker. A producer does what
//!   ingest does with each of N messages of the fleet (`bench/fleet.rs`, DEVICES devices, default
//!   10,000, in turn, their numbers changing every cycle): stores it (`Store::ingest`), checks the rule
//!   filter, and hands a `Sample` to the real collector over a channel of the bridge's size; the collector
//!   runs the rule (match, instance, JSONPath values, thresholds, colour, statuses into the outbox).
//!   Producer and collector are tasks on one current-thread runtime on the main thread, with tokio's clock
//!   paused, so no sweep or re-send timer fires in the middle of a run. Prints the allocations it made.
//! - `rule_profile measure [N [DIR]]`: runs `feed` with N (default 20,000) and 2N messages under
//!   callgrind and natively, and prints the instructions and allocations per message,
//!   (X(2N) − X(N)) / N, so start-up and the first cycle (every instance created, every first status
//!   built) cancel out: what is left is the steady state of a fleet that keeps publishing. Also the
//!   inclusive share of the collector (`Collector::on_sample`, the rule path inlined) and of the store
//!   (`Store::ingest`). The callgrind files stay in DIR (default `target/rule-profile`) for
//!   `callgrind_annotate`.
//! - `rule_profile publish PORT DEVICES CYCLES`: the fleet's flood into a broker, as scenario 9 sends it
//!   to the release binary whose memory it measures (for a heap profile of that process).

// The harness (scenario 9) uses the rest of them: the flood's topics filter, the sentinel, other floods.
#[path = "fleet.rs"]
#[allow(dead_code)]
mod fleet;
#[path = "flood.rs"]
#[allow(dead_code)]
mod flood;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use xymon_mqtt::collect::{Collector, RouteTable, Sample, Sinks};
use xymon_mqtt::config::Config;
use xymon_mqtt::metrics::Metrics;
use xymon_mqtt::mqtt::Wanted;
use xymon_mqtt::plan::Plan;
use xymon_mqtt::store::{Incoming, Store};
use xymon_mqtt::xymon::Outbox;

const USAGE: &str = "usage: rule_profile feed N [DEVICES] | rule_profile measure [N [DIR]] | \
                     rule_profile publish PORT DEVICES CYCLES";

/// The fleet's size unless `feed` is told otherwise.
const DEVICES: usize = 10_000;

/// The bridge's channel between ingest and the collector (`bridge::SAMPLE_CAPACITY`).
const SAMPLE_CAPACITY: usize = 4096;

/// Counts allocation calls (`alloc`, `alloc_zeroed`, `realloc`) on top of the system allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to `System` unchanged; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    xymon_mqtt::heap::limit_arenas();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| usage());
    match args[..] {
        ["feed", n] => feed(num(n), DEVICES),
        ["feed", n, devices] => feed(num(n), num(devices) as usize),
        ["measure", ref rest @ ..] if rest.len() <= 2 => {
            let n = rest.first().map_or(20_000, |n| num(n));
            let dir = PathBuf::from(rest.get(1).copied().unwrap_or("target/rule-profile"));
            measure(n, &dir);
        }
        ["publish", port, devices, cycles] => publish(
            u16::try_from(num(port)).unwrap_or_else(|_| usage()),
            num(devices) as usize,
            num(cycles) as usize,
        ),
        _ => usage(),
    }
}

/// The fleet's flood, `cycles` messages per device, into the broker on `port` (for a heap profile of the
/// release binary, as scenario 9 measures its memory).
fn publish(port: u16, devices: usize, cycles: usize) {
    let topics: Vec<String> = (0..devices).map(fleet::topic).collect();
    let payloads: Vec<fleet::Payload> = (0..devices).map(fleet::Payload::new).collect();
    let mut p = flood::Publisher::connect(port, "rule-profile").expect("connect");
    p.flood_with(
        &topics,
        devices * cycles,
        |d| payloads[d].bytes.clone(),
        |d, cycle, bytes| payloads[d].patch(bytes, d, cycle),
    )
    .expect("flood");
    p.sync().expect("sync");
    p.disconnect();
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

/// The fleet's rule on one broker; statuses would go to a closed port, but no sender runs here: the
/// outbox keeps the latest status per instance, as the bridge's does while xymond is away.
fn plan(devices: usize) -> Plan {
    let toml = format!(
        "[xymon]\nserver = \"127.0.0.1:1\"\n[[broker]]\nname = \"b\"\nurl = \"mqtt://127.0.0.1:1\"\n{}",
        fleet::rule_toml("b", devices)
    );
    Config::from_str_named(&toml, Path::new("fleet.toml"))
        .and_then(|c| Plan::compile(&c))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn feed(n: u64, devices: usize) {
    let mut plan = plan(devices);
    let store = Store::for_plan(&plan);
    let outbox = Arc::new(Outbox::new());
    let wanted = Wanted::new(&plan.routing[0]);
    let routes: Vec<RouteTable> = plan
        .routing
        .iter()
        .map(|r| RouteTable::new(&r.exact))
        .collect();
    let (snapshots, _snapshot_rx) = tokio::sync::mpsc::channel(1);
    let collector = Collector::new(
        std::mem::take(&mut plan.tests),
        std::mem::take(&mut plan.rules),
        routes,
        store.clone(),
        Sinks {
            outbox: outbox.clone(),
            metrics: Arc::new(Metrics::new()),
            rrd: None,
            snapshots,
        },
        plan.limits.max_value_chars,
    );
    let topics: Vec<String> = (0..devices).map(fleet::topic).collect();
    let payloads: Vec<fleet::Payload> = (0..devices).map(fleet::Payload::new).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Sample>(SAMPLE_CAPACITY);
        // No refusals in this profile: the sender is held so that the channel stays open.
        let (_refusal_tx, refusal_rx) = tokio::sync::mpsc::channel(1);
        let collecting = tokio::spawn(collector.run(rx, refusal_rx));
        let mut buf = Vec::new();
        for i in 0..n {
            let device = (i % devices as u64) as usize;
            let p = &payloads[device];
            buf.clear();
            buf.extend_from_slice(&p.bytes);
            p.patch(&mut buf, device, i / devices as u64);
            // What ingest does with a message (mqtt::handle_publish): one copy of the payload as
            // rumqttc hands it over, the store's lookup, the rule filter, the hand-off.
            let payload = bytes::Bytes::copy_from_slice(&buf);
            let topic = &topics[device];
            let at = SystemTime::now();
            let ingested = store.ingest(
                0,
                &Incoming {
                    topic,
                    payload: &payload,
                    qos: 0,
                    retained: false,
                    at,
                },
                None,
            );
            if ingested.registered.is_some() || !wanted.matches_filter(topic) {
                panic!("{topic}: the fleet's topics are rule topics");
            }
            let sample = Sample {
                broker: 0,
                topic: ingested.name.unwrap_or_else(|| Arc::from(topic.as_str())),
                route: None,
                payload,
                retained: false,
                at,
                queued: None,
            };
            tx.send(sample).await.expect("collector running");
        }
        drop(tx);
        collecting.await.expect("collector");
    });
    println!(
        "messages {n} devices {devices} statuses_held {} allocations {}",
        outbox.tests().len(),
        ALLOCATIONS.load(Ordering::Relaxed)
    );
}

/// What one `feed` run reports on stdout.
fn field(out: &str, name: &str) -> Result<u64, String> {
    out.split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name} in {out:?}"))
}

/// The inclusive instructions of the first function whose name contains `name`, from
/// `callgrind_annotate --inclusive=yes`; 0 when it does not appear (inlined, or never called).
/// The inclusive instructions of the first function whose name contains `name`; `None` when no such
/// function is in the profile (inlined into its callers, as the one-unit release build does to many).
fn inclusive(file: &Path, name: &str) -> Result<Option<u64>, String> {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run callgrind_annotate: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find(|l| l.contains(name))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.replace(',', "").parse().ok()))
}

fn measure(n: u64, dir: &Path) {
    if let Err(e) = try_measure(n, dir) {
        eprintln!("rule_profile: {e}");
        std::process::exit(1);
    }
}

fn try_measure(n: u64, dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let driver = std::env::current_exe().map_err(|e| e.to_string())?;
    let native = |messages: u64| -> Result<String, String> {
        let out = Command::new(&driver)
            .args(["feed", &messages.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let callgrind = |messages: u64| -> Result<PathBuf, String> {
        let file = dir.join(format!("callgrind.{messages}"));
        let run = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg(&driver)
            .args(["feed", &messages.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !run.status.success() {
            return Err(format!(
                "feed {messages} failed under callgrind:\n{}",
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        Ok(file)
    };
    let summary = |file: &Path| -> Result<u64, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{}: no summary line", file.display()))
    };
    let per_msg = |a: u64, b: u64| b.saturating_sub(a) as f64 / n as f64;
    let (a, b) = (native(n)?, native(2 * n)?);
    let allocs = per_msg(field(&a, "allocations")?, field(&b, "allocations")?);
    let (fa, fb) = (callgrind(n)?, callgrind(2 * n)?);
    let total = per_msg(summary(&fa)?, summary(&fb)?);
    println!(
        "fleet path, steady state ({n} and {} messages, 10,000 devices):",
        2 * n
    );
    println!("  instructions per message: {total:.0}");
    for (what, name) in [
        ("collector (rule path)", "Collector::on_sample"),
        ("store", "Store::ingest"),
    ] {
        match (inclusive(&fa, name)?, inclusive(&fb, name)?) {
            (Some(a), Some(b)) => println!("    of which {what} ({name}): {:.0}", per_msg(a, b)),
            _ => println!(
                "    of which {what} ({name}): inlined into its callers, not counted apart"
            ),
        }
    }
    println!("  allocations per message: {allocs:.2}");
    println!("  callgrind files: {}", dir.display());
    Ok(())
}
