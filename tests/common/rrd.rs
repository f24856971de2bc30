//! RRD helpers for the rrd_* tests, web_router and rules_explain: an [`RrdWriter`] filled with synthetic
//! broker snapshots of [`HOST`] at known rates, and the rrdtool CLI (used by the tests only, to read
//! back what the writer made).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xymon_mqtt::rrd::{RrdDefs, RrdSample, RrdWriter};

/// The host whose broker RRDs [`fill`] writes.
pub const HOST: &str = "broker.example.com";

/// Messages per second (Rcv, Xmt) and octets per second (Rcv, Xmt) in `fill`.
pub const MSG_RATE: (f64, f64) = (10.0, 20.0);
pub const OCT_RATE: (f64, f64) = (1000.0, 2500.0);

/// The repository (the crate's manifest directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Unix time now, in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A step-aligned start one hour ago, so rates come out exact.
pub fn aligned_start() -> i64 {
    (now() - 3600) / 300 * 300
}

/// A writer into `dir` with a queue of `capacity` samples, on the built-in RRD definitions.
pub fn start_writer(dir: &Path, capacity: usize) -> (RrdWriter, std::thread::JoinHandle<()>) {
    RrdWriter::start(
        dir.to_path_buf(),
        RrdDefs::load_builtin().unwrap(),
        capacity,
    )
    .unwrap()
}

/// A writer into `dir` (queue of 64) that has finished `count` snapshots of both broker RRDs of
/// [`HOST`] from [`aligned_start`] (see [`fill`]); it takes more until dropped.
pub fn filled_writer(dir: &Path, count: i64) -> (RrdWriter, std::thread::JoinHandle<()>) {
    let (w, h) = start_writer(dir, 64);
    fill(&w, HOST, aligned_start(), count);
    wait_processed(&w, 2 * count as u64);
    (w, h)
}

/// Waits until the writer has finished `n` samples in total.
pub fn wait_processed(w: &RrdWriter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.processed() < n {
        assert!(
            Instant::now() < deadline,
            "writer processed {} of {n}",
            w.processed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Submits `count` snapshots 300 s apart from `start` for both broker RRDs of `host`.
pub fn fill(w: &RrdWriter, host: &str, start: i64, count: i64) {
    for i in 0..count {
        let t = start + i * 300;
        let secs = (i * 300) as f64;
        for (rrd, (r, x)) in [
            ("mqtt.broker.message", MSG_RATE),
            ("mqtt.broker.octet", OCT_RATE),
        ] {
            let s = RrdSample {
                host: host.into(),
                rrd: rrd.into(),
                time: t,
                values: vec![5000.0 + r * secs, 7000.0 + x * secs],
            };
            assert!(w.submit(s));
        }
    }
}

/// Runs `cmd` to completion and returns its stdout; panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rrdtool ARGS...`: its stdout (see [`run`]).
pub fn rrdtool(args: &[&str]) -> String {
    run(Command::new("rrdtool").args(args))
}
