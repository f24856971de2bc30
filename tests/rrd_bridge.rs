//! The bridge writes the broker-stats RRDs itself: broker-stats against a real mosquitto, read back with
//! the real rrdtool CLI.

mod common;

use common::bridge::RunningBridge;
use common::rrd::rrdtool;
use common::{Mosquitto, StatusLog, Xymond};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(40);

fn config(xymond: &Xymond, mqtt: &Mosquitto, rrd_dir: &Path, extra_xymon: &str) -> String {
    format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}\"\n{extra_xymon}\n[[broker]]\nname = \"local\"\nurl = \"{}\"\n\n\
         [[test]]\nhost = \"broker.example.com\"\ntest = \"mqtt\"\nbroker = \"local\"\nkind = \"broker-stats\"\ninterval = \"2s\"\n",
        xymond.addr(),
        rrd_dir.display(),
        mqtt.url()
    )
}

/// Starts a private xymond and mosquitto, and the bridge's broker-stats test writing RRDs into a
/// temporary `rrd_dir`; `extra_xymon` is added to the `[xymon]` section.
fn start(extra_xymon: &str) -> (Xymond, Mosquitto, TempDir, RunningBridge) {
    let xymond = Xymond::start(&["broker.example.com"]);
    let mqtt = Mosquitto::start();
    let rrd_dir = tempfile::tempdir().unwrap();
    let bridge = RunningBridge::start(&config(&xymond, &mqtt, rrd_dir.path(), extra_xymon));
    (xymond, mqtt, rrd_dir, bridge)
}

/// The host dir and the two broker RRD files under `rrd_dir`, once both files exist.
fn wait_for_rrd_files(rrd_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let host_dir = rrd_dir.join("broker.example.com");
    let message = host_dir.join("mqtt.broker.message.rrd");
    let octet = host_dir.join("mqtt.broker.octet.rrd");
    common::wait_until(WAIT, "both RRD files", || {
        message.exists() && octet.exists()
    });
    (host_dir, message, octet)
}

/// The latest totals of a broker-stats status: (messages received, messages sent, octets received, octets sent).
fn totals(s: &StatusLog) -> [u64; 4] {
    let get = |row: &str| -> u64 {
        let line = s
            .body
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("{row}: {}", s.body));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    [
        get("Messages   received"),
        get("Messages   transmitted"),
        get("Octets     received"),
        get("Octets     transmitted"),
    ]
}

fn info_value(info: &str, key: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} not in rrdtool info"))
        .trim_matches('"')
        .to_string()
}

/// Several snapshots: the files have exactly xymond_rrd's layout, hold the raw counters of the last
/// snapshot, have Xymon's modes, and a host dir deleted (as by `drop HOST`) comes back.
#[test]
fn broker_stats_snapshots_are_written_with_the_xymon_layout() {
    let (xymond, _mqtt, rrd_dir, bridge) = start("");
    let (host_dir, message, octet) = wait_for_rrd_files(rrd_dir.path());

    for file in [&message, &octet] {
        let info = rrdtool(&["info", file.to_str().unwrap()]);
        assert_eq!(info_value(&info, "step"), "300");
        for ds in ["Rcv", "Xmt"] {
            assert_eq!(info_value(&info, &format!("ds[{ds}].type")), "DERIVE");
            assert_eq!(
                info_value(&info, &format!("ds[{ds}].minimal_heartbeat")),
                "600"
            );
            assert_eq!(
                info_value(&info, &format!("ds[{ds}].min")),
                "0.0000000000e+00"
            );
            assert_eq!(info_value(&info, &format!("ds[{ds}].max")), "NaN");
        }
        assert!(!info.contains("ds[value]"), "only Rcv and Xmt");
        for (i, pdp) in ["1", "6", "24", "288"].iter().enumerate() {
            assert_eq!(info_value(&info, &format!("rra[{i}].cf")), "AVERAGE");
            assert_eq!(info_value(&info, &format!("rra[{i}].pdp_per_row")), *pdp);
            assert_eq!(info_value(&info, &format!("rra[{i}].rows")), "576");
            assert_eq!(
                info_value(&info, &format!("rra[{i}].xff")),
                "5.0000000000e-01"
            );
        }
        assert!(!info.contains("rra[4]"), "exactly four RRAs");
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
    assert_eq!(
        std::fs::metadata(&host_dir).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // The raw counters of a snapshot are what the files hold (DERIVE makes the rates).
    let mut checked = false;
    for _ in 0..10 {
        let s = xymond.wait_for_status("broker.example.com.mqtt", WAIT, |s| {
            s.body.contains("Total counts")
        });
        let [mr, ms, or, os] = totals(&s);
        std::thread::sleep(Duration::from_millis(300));
        let m = rrdtool(&["info", message.to_str().unwrap()]);
        let o = rrdtool(&["info", octet.to_str().unwrap()]);
        let again = xymond.xymondlog("broker.example.com.mqtt").unwrap();
        if again.logtime != s.logtime {
            continue; // a newer snapshot slipped in between; try again
        }
        assert_eq!(info_value(&m, "ds[Rcv].last_ds"), mr.to_string());
        assert_eq!(info_value(&m, "ds[Xmt].last_ds"), ms.to_string());
        assert_eq!(info_value(&o, "ds[Rcv].last_ds"), or.to_string());
        assert_eq!(info_value(&o, "ds[Xmt].last_ds"), os.to_string());
        checked = true;
        break;
    }
    assert!(checked, "could not catch a quiet moment between snapshots");

    // `drop HOST` deletes the host dir; the next snapshot recreates it.
    std::fs::remove_dir_all(&host_dir).unwrap();
    common::wait_until(WAIT, "host dir recreated", || {
        message.exists() && octet.exists()
    });
    let s = xymond.wait_for_status("broker.example.com.mqtt", WAIT, |s| {
        s.body.contains("Rates over")
    });
    assert_eq!(s.color, "green", "{}", s.body);
    bridge.stop();
}

/// With a 1-second layout (an rrd_defs override directory) the rates show up at once: every fetched rate
/// is a non-negative number, and messages flow.
#[test]
fn fetched_rates_are_non_negative() {
    let defs = tempfile::tempdir().unwrap();
    for name in ["mqtt.broker.message", "mqtt.broker.octet"] {
        std::fs::write(
            defs.path().join(format!("{name}.toml")),
            "step = 1\nds = [\"DS:Rcv:DERIVE:10:0:U\", \"DS:Xmt:DERIVE:10:0:U\"]\nrra = [\"RRA:AVERAGE:0.5:1:600\"]\n",
        )
        .unwrap();
    }
    let extra = format!("rrd_defs = \"{}\"", defs.path().display());
    let (xymond, _mqtt, rrd_dir, bridge) = start(&extra);
    let message = rrd_dir
        .path()
        .join("broker.example.com/mqtt.broker.message.rrd");
    common::wait_until(WAIT, "three snapshots", || {
        xymond
            .xymondlog("broker.example.com.mqtt")
            .is_some_and(|s| s.body.contains("Rates over"))
            && message.exists()
    });
    std::thread::sleep(Duration::from_secs(5));
    let fetched = rrdtool(&[
        "fetch",
        message.to_str().unwrap(),
        "AVERAGE",
        "-r",
        "1",
        "-s",
        "-20",
    ]);
    let rows: Vec<(f64, f64)> = fetched
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(_, v)| {
            let mut it = v
                .split_whitespace()
                .map(|x| x.parse::<f64>().unwrap_or(f64::NAN));
            Some((it.next()?, it.next()?))
        })
        .filter(|(r, x)| !r.is_nan() && !x.is_nan())
        .collect();
    assert!(rows.len() >= 2, "known rates: {fetched}");
    assert!(
        rows.iter().all(|(r, x)| *r >= 0.0 && *x >= 0.0),
        "{fetched}"
    );
    assert!(
        rows.iter().any(|(r, _)| *r > 0.0),
        "messages flow: {fetched}"
    );
    bridge.stop();
}

/// rrd_dir missing: a clear start-up error naming the path.
#[test]
fn missing_rrd_dir_is_a_startup_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("bridge.toml");
    std::fs::write(
        &config_path,
        "[xymon]\nrrd_dir = \"/nonexistent/rrd\"\n[[broker]]\nname = \"l\"\nurl = \"mqtt://127.0.0.1:1\"\n\
         [[test]]\nhost = \"h\"\ntest = \"mqtt\"\nbroker = \"l\"\nkind = \"broker-stats\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xymon-mqtt"))
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rrd"), "{err}");
}

/// A file that goes bad while the bridge runs (here: replaced by one with another layout) is left alone
/// and shows as a yellow line in the broker-stats status, naming the file; the other file keeps being
/// written.
#[test]
fn a_foreign_rrd_file_turns_the_status_yellow_and_is_left_alone() {
    let (xymond, _mqtt, rrd_dir, bridge) = start("");
    let (_, message, octet) = wait_for_rrd_files(rrd_dir.path());
    std::fs::remove_file(&message).unwrap();
    rrdtool(&[
        "create",
        message.to_str().unwrap(),
        "-s",
        "60",
        "DS:other:GAUGE:120:U:U",
        "RRA:AVERAGE:0.5:1:10",
    ]);
    let foreign = std::fs::read(&message).unwrap();
    let s = xymond.wait_for_status("broker.example.com.mqtt", WAIT, |s| {
        s.body.contains("&yellow RRD")
    });
    assert_eq!(s.color, "yellow", "{}", s.body);
    assert!(
        s.body.contains("&yellow RRD mqtt.broker.message.rrd:"),
        "{}",
        s.body
    );
    assert!(!s.body.contains("RRD mqtt.broker.octet.rrd"), "{}", s.body);
    assert_eq!(
        std::fs::read(&message).unwrap(),
        foreign,
        "the foreign file was touched"
    );
    let before = info_value(&rrdtool(&["info", octet.to_str().unwrap()]), "last_update");
    common::wait_until(WAIT, "the octet file still updated", || {
        info_value(&rrdtool(&["info", octet.to_str().unwrap()]), "last_update") != before
    });
    bridge.stop();
}
