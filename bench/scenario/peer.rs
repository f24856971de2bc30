//! Scenario 8, peer: messages per second Debian's prometheus-mqtt-exporter (mqtt2prometheus) takes under
//! the same flood as scenario 1, counted by its own `received_messages` on `/metrics`.
//!
//! The exporter's rate is the baseline here: the bridge's figure beside it is its scenario-1 ingest rate
//! of the same run. Target: the bridge at >= 2x the exporter. Skipped when the exporter is not installed.

use super::ingest::{measure_ingest, Flood, STALL};
use super::setup::{first_existing, Env};
use crate::common::free_port;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often the exporter's counter is read.
const EXPORTER_POLL: Duration = Duration::from_millis(50);

pub fn run(env: &Env, ingest_rate: Option<f64>) -> Outcome {
    let Some(exporter) = first_existing(&[
        "/usr/bin/prometheus-mqtt-exporter",
        "/usr/bin/mqtt2prometheus",
    ]) else {
        eprintln!("[bench]   prometheus-mqtt-exporter not installed; skipped");
        return Outcome::new(
            Vec::new(),
            json!({"skipped": "prometheus-mqtt-exporter not installed"}),
        );
    };
    let n = env.sizes.ingest_msgs;
    let port = free_port();
    let cfg = env.tmp.path().join("mqtt2prometheus.yaml");
    std::fs::write(
        &cfg,
        format!(
            "mqtt:\n  server: tcp://127.0.0.1:{}\n  topic_path: bench/+/value\n  device_id_regex: \"bench/(?P<deviceid>.*)/value\"\n  qos: 0\n\
             cache:\n  timeout: 24h\n\
             metrics:\n  - prom_name: value\n    mqtt_name: value\n    help: bench value\n    type: gauge\n",
            env.port()
        ),
    )
    .expect("write exporter config");
    // $SYS lags by up to a second: let the counts of earlier scenarios settle first.
    std::thread::sleep(Duration::from_millis(1500));
    let base_subs = probe::quiet_subscriptions(env.port());
    let log = std::fs::File::create(env.tmp.path().join("exporter.log")).expect("log");
    let child = Command::new(exporter)
        .arg(format!("-config={}", cfg.display()))
        .arg("-listen-address=127.0.0.1")
        .arg(format!("-listen-port={port}"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("run exporter");
    probe::wait_subscriptions(env.port(), base_subs + 1, Duration::from_secs(10));
    // In-process (not `curl`): starting a process every few milliseconds would take CPU from the exporter
    // on the 2-CPU machine it measures.
    let received = || -> u64 {
        crate::common::web::get(port, "/metrics")
            .text()
            .lines()
            .filter(|l| l.starts_with("received_messages"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let before = received();
    // The counter is read over HTTP, at most every EXPORTER_POLL: the reads cost the exporter CPU too, and
    // the end time is then known to within EXPORTER_POLL (0.5 % of a 10 s run).
    let mut last_poll: Option<(Instant, u64)> = None;
    let run = measure_ingest(env, Flood::Values, n, STALL, || {
        let got = match last_poll {
            Some((at, got)) if at.elapsed() < EXPORTER_POLL => got,
            _ => {
                let got = received().saturating_sub(before);
                last_poll = Some((Instant::now(), got));
                got
            }
        };
        (got, got >= n as u64)
    });
    probe::stop(child, Duration::from_secs(10));
    let ours = ingest_rate.unwrap_or(0.0);
    let rows = vec![
        Row::new("ingest msg/s, prometheus-mqtt-exporter", run.rate, "msg/s"),
        Row::new("ingest msg/s, bridge (scenario 1)", ours, "msg/s")
            .against("prometheus-mqtt-exporter", run.rate)
            .target(">= 2x", ours >= 2.0 * run.rate),
    ];
    Outcome::new(rows, json!({"exporter": format!("{run:?}")}))
}
