//! Scenario 6, RRD storm: the bridge's ingest (scenario 1's flood through the in-process bridge) while a
//! feeder thread has `RrdWriter` update 10,000 RRD files as fast as its queue takes them, one second later
//! each pass over the files; and the updates per second librrd writes meanwhile.
//!
//! Baseline: the bridge's ingest without the storm (feeder paused), storm and calm runs alternating, 3
//! each, medians reported. Target: ingest during the storm >= 0.9x calm ingest, with no broker drops
//! (and no failed RRD update).

use super::ingest::ingest_bridge;
use super::setup::{median, median_by, Env};
use crate::row::{Outcome, Row};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xymon_mqtt::rrd::{RrdDefs, RrdSample, RrdWriter};

pub fn run(env: &Env, ingest_rate: Option<f64>) -> Outcome {
    // Scenario 1's rate is only recorded in the details: the baseline is calm ingest measured here.
    let files = env.sizes.rrd_files;
    let dir = env.tmp.path().join("rrd");
    std::fs::create_dir_all(&dir).expect("rrd dir");
    let (writer, handle) =
        RrdWriter::start(dir, RrdDefs::load_builtin().expect("defs"), 4096).expect("writer");
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
        - 30 * 86_400;
    // File i's update of storm pass `pass` (0: the one that creates it).
    let sample = move |i: usize, pass: i64| RrdSample {
        host: format!("r{i:05}"),
        rrd: "value".into(),
        time: t0 + pass,
        values: vec![(i as i64 + pass) as f64],
    };
    // Create every file first (not timed as updates).
    let create_start = Instant::now();
    for i in 0..files {
        let s = sample(i, 0);
        while !writer.submit(s.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    while writer.processed() < files as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let create_secs = create_start.elapsed().as_secs_f64();
    let created = writer.written();
    // The storm: every file, one second later each pass, as fast as the writer takes them; it runs while
    // the ingest flood of scenario 1 goes through the bridge.
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let storm = {
        let (writer, stop, paused) = (writer.clone(), stop.clone(), paused.clone());
        std::thread::spawn(move || {
            // The feeder stands in for the collector, which submits a handful of samples per round: its
            // own CPU is harness overhead, so it runs at the lowest priority like the writer thread.
            // SAFETY: plain syscalls on this thread's own id.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
            }
            let mut pass = 0;
            while !stop.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                pass += 1;
                for i in 0..files {
                    let s = sample(i, pass);
                    while !writer.submit(s.clone()) {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // Storm and calm runs alternate (the feeder pauses for the calm ones), medians reported: on a shared
    // 2-core machine the run-to-run noise is larger than the effect we look for.
    let n = env.sizes.ingest_msgs;
    let reps = if env.sizes.smoke { 1 } else { 3 };
    let (mut during, mut calm, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        paused.store(false, Ordering::Relaxed);
        let w0 = (writer.written(), Instant::now());
        during.push(ingest_bridge(env, n).0);
        rates.push((writer.written() - w0.0) as f64 / w0.1.elapsed().as_secs_f64());
        paused.store(true, Ordering::Relaxed);
        calm.push(ingest_bridge(env, n).0);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = storm.join();
    let failed = writer.failed();
    drop(writer);
    let _ = handle.join();
    let updates = median(rates.clone());
    let during_rate = median_by(&during, |r| r.rate);
    let baseline = median_by(&calm, |r| r.rate);
    let during_dropped: u64 = during.iter().map(|r| r.dropped).sum();
    let rows = vec![
        Row::new(
            format!("RRD updates/s across {files} files"),
            updates,
            "upd/s",
        )
        .target("", failed == 0),
        Row::new("ingest msg/s during the RRD storm", during_rate, "msg/s")
            .against("bridge ingest without storm", baseline)
            .target(
                ">= 0.9x",
                during_rate >= 0.9 * baseline && during_dropped == 0,
            ),
    ];
    Outcome::new(
        rows,
        json!({"files": files, "created": created, "create_secs": create_secs, "updates_per_s": updates,
               "failed": failed, "updates_per_s_runs": rates, "ingest_during": format!("{during:?}"), "ingest_calm": format!("{calm:?}"),
               "scenario1_rate": ingest_rate}),
    )
}
