//! RrdWriter against real librrd files, checked with the rrdtool CLI.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::rrd::*;
use xymon_mqtt::rrd::{check_rrd_dir, RrdError, RrdSample};

fn info_lines(path: &std::path::Path) -> Vec<String> {
    rrdtool(&["info", path.to_str().unwrap()])
        .lines()
        .filter(|l| {
            l.starts_with("step")
                || (l.starts_with("ds[")
                    && [".index", ".type", ".minimal_heartbeat", ".min ", ".max "]
                        .iter()
                        .any(|k| l.contains(k)))
                || (l.starts_with("rra[")
                    && [".cf", ".rows", ".pdp_per_row", ".xff"]
                        .iter()
                        .any(|k| l.contains(k)))
        })
        .map(str::to_string)
        .collect()
}

/// Files are created with exactly xymond_rrd's layout, modes 0755/0644, and the stored
/// rates equal the counter deltas / 300 (DERIVE), for both RRD kinds.
#[test]
fn layout_modes_and_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = start_writer(dir.path(), 64);
    let start = aligned_start();
    fill(&w, HOST, start, 10);
    wait_processed(&w, 20);
    assert_eq!((w.written(), w.failed(), w.dropped()), (20, 0, 0));

    let host_dir = dir.path().join(HOST);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&host_dir), 0o755);
    let mut want = vec!["step = 300".to_string()];
    for (i, ds) in ["Rcv", "Xmt"].iter().enumerate() {
        want.push(format!("ds[{ds}].index = {i}"));
        want.push(format!("ds[{ds}].type = \"DERIVE\""));
        want.push(format!("ds[{ds}].minimal_heartbeat = 600"));
        want.push(format!("ds[{ds}].min = 0.0000000000e+00"));
        want.push(format!("ds[{ds}].max = NaN"));
    }
    for (i, pdp) in [1, 6, 24, 288].iter().enumerate() {
        want.push(format!("rra[{i}].cf = \"AVERAGE\""));
        want.push(format!("rra[{i}].rows = 576"));
        want.push(format!("rra[{i}].pdp_per_row = {pdp}"));
        want.push(format!("rra[{i}].xff = 5.0000000000e-01"));
    }
    for (rrd, (r, x)) in [
        ("mqtt.broker.message", MSG_RATE),
        ("mqtt.broker.octet", OCT_RATE),
    ] {
        let path = host_dir.join(format!("{rrd}.rrd"));
        assert_eq!(mode(&path), 0o644);
        assert_eq!(info_lines(&path), want, "{rrd}");
        let fetch = rrdtool(&[
            "fetch",
            path.to_str().unwrap(),
            "AVERAGE",
            "-r",
            "300",
            "-s",
            &(start + 300).to_string(),
            "-e",
            &(start + 9 * 300).to_string(),
        ]);
        let mut rows = 0;
        for line in fetch.lines().filter(|l| l.contains(": ")) {
            let (ts, vals) = line.split_once(": ").unwrap();
            let ts: i64 = ts.trim().parse().unwrap();
            if ts <= start || ts > start + 9 * 300 {
                continue;
            }
            let v: Vec<f64> = vals
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            assert!(v.iter().all(|x| *x >= 0.0), "{line}");
            assert!(
                (v[0] - r).abs() < 1e-6 && (v[1] - x).abs() < 1e-6,
                "{rrd}: {line}"
            );
            rows += 1;
        }
        assert!(rows >= 8, "{rrd}: only {rows} rows\n{fetch}");
    }
    drop(w);
    h.join().unwrap();
}

/// Xymon's `drop HOST` removes the host dir; the next update recreates dir and files.
#[test]
fn dropped_host_dir_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = start_writer(dir.path(), 64);
    let start = aligned_start();
    fill(&w, HOST, start, 2);
    wait_processed(&w, 4);
    std::fs::remove_dir_all(dir.path().join(HOST)).unwrap();
    fill(&w, HOST, start + 600, 2);
    wait_processed(&w, 8);
    assert_eq!((w.written(), w.failed()), (8, 0));
    let last = rrdtool(&[
        "lastupdate",
        dir.path()
            .join(HOST)
            .join("mqtt.broker.message.rrd")
            .to_str()
            .unwrap(),
    ]);
    assert!(last.contains(&format!("{}:", start + 900)), "{last}");
    drop(w);
    h.join().unwrap();
}

/// A file with another layout is reported through health() and left byte-identical; the
/// host's other file keeps working. A corrupt file likewise affects only itself.
#[test]
fn foreign_and_corrupt_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let host_dir = dir.path().join(HOST);
    std::fs::create_dir(&host_dir).unwrap();
    let foreign = host_dir.join("mqtt.broker.message.rrd");
    rrdtool(&[
        "create",
        foreign.to_str().unwrap(),
        "-s",
        "300",
        "DS:Rcv:GAUGE:600:0:U",
        "DS:Xmt:DERIVE:600:0:U",
        "RRA:AVERAGE:0.5:1:576",
    ]);
    let before = std::fs::read(&foreign).unwrap();
    let corrupt_host = "corrupt.example.com";
    std::fs::create_dir(dir.path().join(corrupt_host)).unwrap();
    let corrupt = dir.path().join(corrupt_host).join("mqtt.broker.octet.rrd");
    std::fs::write(&corrupt, b"not an rrd file at all").unwrap();

    let (w, h) = start_writer(dir.path(), 64);
    let start = aligned_start();
    fill(&w, HOST, start, 3);
    fill(&w, corrupt_host, start, 3);
    wait_processed(&w, 12);

    let msg = w.health(HOST, "mqtt.broker.message").expect("reported");
    assert!(
        msg.contains("another layout") && msg.contains("GAUGE"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        before,
        "foreign file changed"
    );
    assert_eq!(w.health(HOST, "mqtt.broker.octet"), None);
    assert!(w.health(corrupt_host, "mqtt.broker.octet").is_some());
    assert_eq!(std::fs::read(&corrupt).unwrap(), b"not an rrd file at all");
    assert_eq!(w.health(corrupt_host, "mqtt.broker.message"), None);
    // 3 good octet + 3 good message updates; 3 foreign + 3 corrupt failures.
    assert_eq!((w.written(), w.failed()), (6, 6));

    // Once the foreign file is removed, the next sample recreates it and clears health.
    std::fs::remove_file(&foreign).unwrap();
    fill(&w, HOST, start + 900, 1);
    wait_processed(&w, 14);
    assert_eq!(w.health(HOST, "mqtt.broker.message"), None);
    drop(w);
    h.join().unwrap();
}

/// A second update in the same second is coalesced, not an error; so is an older one, and
/// a restarted writer picks up last_update from the file.
#[test]
fn same_second_is_coalesced() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = start_writer(dir.path(), 64);
    let t = aligned_start();
    let s = |time: i64, v: f64| RrdSample {
        host: HOST.into(),
        rrd: "value".into(),
        time,
        values: vec![v],
    };
    for sample in [s(t, 1.0), s(t, 2.0), s(t - 5, 3.0), s(t + 1, 4.0)] {
        assert!(w.submit(sample));
    }
    wait_processed(&w, 4);
    assert_eq!((w.written(), w.coalesced(), w.failed()), (2, 2, 0));
    assert_eq!(w.health(HOST, "value"), None);
    drop(w);
    h.join().unwrap();

    let (w, h) = start_writer(dir.path(), 64);
    assert!(w.submit(s(t + 1, 5.0)));
    assert!(w.submit(s(t + 2, 6.0)));
    wait_processed(&w, 2);
    assert_eq!((w.written(), w.coalesced(), w.failed()), (1, 1, 0));
    drop(w);
    h.join().unwrap();
}

/// A full queue drops (and counts) instead of blocking the caller.
#[test]
fn full_queue_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = start_writer(dir.path(), 1);
    let t = aligned_start();
    let n = 2000;
    let accepted = (0..n)
        .filter(|i| {
            w.submit(RrdSample {
                host: HOST.into(),
                rrd: "value".into(),
                time: t + i,
                values: vec![*i as f64],
            })
        })
        .count() as u64;
    assert!(w.dropped() > 0, "nothing dropped");
    assert_eq!(accepted + w.dropped(), n as u64);
    wait_processed(&w, accepted);
    drop(w);
    h.join().unwrap();
}

/// Startup errors name the rrd_dir path.
#[test]
fn rrd_dir_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = start_writer_err(&missing);
    assert!(
        err.contains(missing.to_str().unwrap()) && err.contains("does not exist"),
        "{err}"
    );
    // Not writable even for root: /proc refuses new files.
    let e = check_rrd_dir(std::path::Path::new("/proc")).unwrap_err();
    assert!(matches!(e, RrdError::NotWritable { .. }), "{e}");
    assert!(e.to_string().contains("/proc"), "{e}");
}

fn start_writer_err(p: &std::path::Path) -> String {
    match xymon_mqtt::rrd::RrdWriter::start(
        p.to_path_buf(),
        xymon_mqtt::rrd::RrdDefs::load_builtin().unwrap(),
        4,
    ) {
        Ok(_) => panic!("started on {p:?}"),
        Err(e) => e.to_string(),
    }
}
