//! Scenario 7, idle: the release `xymon-mqtt` binary as its own process, connected and subscribed, with
//! nothing published: its wake-ups (context switches of all its threads) and its CPU over the idle
//! period (10 s).
//!
//! Baseline: none, an absolute figure. Targets: 0 wake-ups, ~0 CPU (no clock tick used).

use super::bridge_process;
use super::setup::Env;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::json;
use std::time::{Duration, Instant};

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let child = bridge_process::spawn_idle(env, "idle7");
    let pid = child.id();
    let (cpu0, cs0, t0) = (
        probe::cpu_ticks(pid),
        probe::context_switches(pid),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(env.sizes.idle_secs));
    let (cpu1, cs1, secs) = (
        probe::cpu_ticks(pid),
        probe::context_switches(pid),
        t0.elapsed().as_secs_f64(),
    );
    bridge_process::stop(child);
    let wakeups = (cs1 - cs0) as f64;
    let cpu_pct = (cpu1 - cpu0) as f64 / 100.0 / secs * 100.0;
    let rows = vec![
        Row::new(
            format!("idle wake-ups over {secs:.0} s (ctx switches)"),
            wakeups,
            "",
        )
        .target("0", wakeups == 0.0),
        Row::new(format!("idle CPU over {secs:.0} s"), cpu_pct, "%").target("~0", cpu1 == cpu0),
    ];
    Outcome::new(
        rows,
        json!({"seconds": secs, "context_switches": cs1 - cs0, "cpu_ticks": cpu1 - cpu0}),
    )
}
