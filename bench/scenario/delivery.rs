//! Scenario 2, status delivery: statuses per second xymond accepts from the bridge's outbox and sender
//! (`xymon::run`) batching up to 100 statuses into one `combo` message, the outbox kept saturated with
//! statuses of 1,000 hosts. What counts is what xymond posted on its status channel (the tap).
//!
//! Baselines: the same sender with one connection per status (`combo_max` 1), and xymond's own `xymon`
//! CLI in a loop (one process and one connection per status). Target: >= 5x each. Also reported, for
//! each of the three runs: xymond's CPU share, the machine's busy share, and xymond's CPU per accepted
//! status, which tell whether xymond or the connections are the limit.

use super::setup::{delivery_host, first_existing, runtime, Env, DELIVERY_HOSTS};
use crate::probe::{self, Tap};
use crate::row::{Outcome, Row};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xymon_mqtt::metrics::Metrics;

fn delivery_status(i: usize, seq: u64) -> xymon_mqtt::xymon::Status {
    use xymon_mqtt::names::{HostName, TestName};
    xymon_mqtt::xymon::Status {
        host: HostName::try_from(delivery_host(i)).expect("host"),
        test: TestName::try_from("bench".to_string()).expect("test"),
        colour: xymon_mqtt::colour::Colour::Green,
        lifetime: Duration::from_secs(1800),
        summary: format!("2026-01-01 00:00:00 bench: all 3 topics received bseq-{seq}"),
        body: "\n&green sensors/bench/temperature = 21.5\n&green sensors/bench/humidity = 40\n\
               &green sensors/bench/pressure = 1013\n\nRound opened 2026-01-01 00:00:00, complete after 3 ms (window 500 ms); broker b\n"
            .into(),
    }
}

/// Statuses xymond posted on its status channel for delivery hosts within [from, to].
fn accepted(tap: &Tap, from: u128, to: u128) -> usize {
    tap.read()
        .iter()
        .filter(|t| t.host.starts_with('d') && t.at_ns >= from && t.at_ns <= to)
        .count()
}

/// Our outbox + sender, kept saturated for `secs`; `combo_max` 1 is the one-connection-per-status sender.
fn delivery_ours(env: &Env, tap: &Tap, combo_max: usize, secs: f64) -> (f64, u64) {
    let rt = runtime();
    let outbox = Arc::new(xymon_mqtt::xymon::Outbox::new());
    let metrics = Arc::new(Metrics::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let sender = rt.spawn(xymon_mqtt::xymon::run(
        xymon_mqtt::xymon::SenderConfig {
            addr: env.xymond.addr(),
            timeout: Duration::from_secs(10),
            combo_max,
            drain_deadline: Duration::from_millis(100),
        },
        outbox.clone(),
        metrics.clone(),
        cancel.clone(),
    ));
    let from = probe::now_ns();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut seq = 0;
    while Instant::now() < deadline {
        if outbox.pending() < DELIVERY_HOSTS / 2 {
            seq += 1;
            for i in 0..DELIVERY_HOSTS {
                outbox.put(delivery_status(i, seq));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let to = probe::now_ns();
    cancel.cancel();
    let _ = rt.block_on(sender);
    std::thread::sleep(Duration::from_millis(300));
    let n = accepted(tap, from, to);
    (n as f64 / secs, metrics.statuses_sent.get())
}

/// xymond's own `xymon` client, one process and one connection per status.
fn delivery_cli(env: &Env, tap: &Tap, secs: f64) -> f64 {
    let cli = first_existing(&[
        "/usr/lib/xymon/client/bin/xymon",
        "/usr/lib/xymon/server/bin/xymon",
    ])
    .unwrap_or("xymon");
    let from = probe::now_ns();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut i = 0;
    while Instant::now() < deadline {
        let msg = delivery_status(i % DELIVERY_HOSTS, i as u64).to_wire();
        let _ = Command::new(cli)
            .env_clear()
            .args([&env.xymond.addr(), &msg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        i += 1;
    }
    let to = probe::now_ns();
    std::thread::sleep(Duration::from_millis(300));
    accepted(tap, from, to) as f64 / secs
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let secs = env.sizes.delivery_secs;
    let tap = Tap::start(env.xymond.dir(), &env.tmp.path().join("tap-delivery.txt"));
    // xymond's CPU share during each run (utime+stime ticks of its process over the run): shows whether
    // xymond or the connections are the limit.
    let xymond_pid = env.xymond.pid().unwrap_or(0);
    // The machine's busy share too: on 2 CPUs shared by the sender, xymond and its channel readers, a
    // machine at 100 % is the limit whatever xymond's own share.
    let xymond_cpu = |run: &mut dyn FnMut()| -> (f64, f64) {
        let (t0, c0, m0) = (
            Instant::now(),
            probe::cpu_ticks(xymond_pid),
            probe::machine_ticks(),
        );
        run();
        let ticks = probe::cpu_ticks(xymond_pid).saturating_sub(c0);
        let m1 = probe::machine_ticks();
        let busy = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64 * 100.0;
        // Ticks are 1/100 s, so ticks per second is percent of one CPU.
        (ticks as f64 / t0.elapsed().as_secs_f64(), busy)
    };
    let mut cli = 0.0;
    let (cli_cpu, cli_busy) = xymond_cpu(&mut || cli = delivery_cli(env, &tap, secs));
    let (mut single, mut single_sent) = (0.0, 0);
    let (single_cpu, single_busy) =
        xymond_cpu(&mut || (single, single_sent) = delivery_ours(env, &tap, 1, secs));
    let (mut combo, mut combo_sent) = (0.0, 0);
    let (combo_cpu, combo_busy) =
        xymond_cpu(&mut || (combo, combo_sent) = delivery_ours(env, &tap, 100, secs));
    const COMBO: &str = "statuses/s accepted by xymond, combo<=100";
    let mut rows = vec![
        Row::new(COMBO, combo, "st/s")
            .against("1 conn/status (Rust, same sender)", single)
            .target(">= 5x", combo >= 5.0 * single),
        Row::new(COMBO, combo, "st/s")
            .against("`xymon` CLI in a loop", cli)
            .target(">= 5x", combo >= 5.0 * cli),
    ];
    for (what, cpu, busy, rate) in [
        ("combo<=100", combo_cpu, combo_busy, combo),
        ("1 conn/status (Rust)", single_cpu, single_busy, single),
        ("`xymon` CLI loop", cli_cpu, cli_busy, cli),
    ] {
        let per_status = if rate > 0.0 {
            cpu / 100.0 / rate * 1e6
        } else {
            0.0
        };
        rows.extend([
            Row::new(
                format!("xymond CPU during the {what} run (% of one CPU)"),
                cpu,
                "%",
            ),
            Row::new(
                format!("machine busy during the {what} run (all CPUs)"),
                busy,
                "%",
            ),
            Row::new(
                format!("xymond CPU per accepted status, {what}"),
                per_status,
                "us",
            ),
        ]);
    }
    Outcome::new(
        rows,
        json!({"hosts": DELIVERY_HOSTS, "seconds": secs, "combo_per_s": combo, "combo_sent": combo_sent,
               "single_per_s": single, "single_sent": single_sent, "cli_per_s": cli,
               "xymond_cpu_percent": {"combo": combo_cpu, "single": single_cpu, "cli": cli_cpu},
               "machine_busy_percent": {"combo": combo_busy, "single": single_busy, "cli": cli_busy},
               "counted_by": "xymond_channel --channel=status tap"}),
    )
}
