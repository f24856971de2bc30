//! Scenario 4, memory: the resident memory (VmRSS) of the release `xymon-mqtt` binary as its own process,
//! idle (one test, one topic) and at 1,000, 10,000 and 100,000 distinct live topics (continuous tests of
//! 100 topics, each topic published once with a 32-byte payload), read once the process has been quiet.
//!
//! Baseline: none, an absolute figure. Targets: <= 10 MB idle, <= 40 MB at 100,000 topics. Next to VmRSS:
//! RssAnon and the process's own memory (RssAnon plus its program file's pages), which leave out the
//! shared libraries; the JSON details add the bytes per topic between two points.

use super::bridge_process;
use super::setup::{Env, MEMORY_TOPICS_PER_TEST};
use crate::flood::Publisher;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::{json, Value};
use std::time::Duration;

/// VmRSS, RssAnon and the process's own memory (RssAnon plus its program file's pages) of `pid`, in MB,
/// as rows (`what`: "idle" or "at N live topics"); VmRSS is what the target is about.
fn memory_rows(rows: &mut Vec<Row>, pid: u32, what: &str, target_mb: Option<f64>) -> Value {
    let rss = probe::rss_bytes(pid) as f64 / 1e6;
    let anon = probe::rss_anon_bytes(pid) as f64 / 1e6;
    let own = probe::own_bytes(pid) as f64 / 1e6;
    let mut rss_row = Row::new(format!("RSS {what}"), rss, "MB");
    if let Some(t) = target_mb {
        rss_row = rss_row.target(format!("<= {t} MB"), rss <= t);
    }
    rows.push(rss_row);
    for (label, value) in [
        ("anonymous (RssAnon)", anon),
        ("own: RssAnon + program file", own),
    ] {
        rows.push(Row::new(format!("  of which {label}, {what}"), value, "MB"));
    }
    json!({"rss_mb": rss, "rss_anon_mb": anon, "own_mb": own})
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let mut rows = Vec::new();
    let child = bridge_process::spawn_idle(env, "idle");
    let mut idle = memory_rows(&mut rows, child.id(), "idle", Some(10.0));
    bridge_process::stop(child);
    idle["topics"] = json!(0);
    let mut points = vec![idle];
    let mut prev: Option<(usize, f64)> = None;
    for &k in env.sizes.memory_topics {
        let name = format!("mem{k}");
        let (child, topics) = bridge_process::spawn(env, k, &name);
        let pid = child.id();
        let ok = bridge_process::wait_subscribed(env, &name, Duration::from_secs(60));
        let mut p = Publisher::connect(env.port(), "bench-memory").expect("connect");
        p.flood(&topics, topics.len()).expect("flood");
        p.sync().expect("sync");
        p.disconnect();
        bridge_process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(30));
        let target = (k == 100_000).then_some(40.0);
        let mut point = memory_rows(&mut rows, pid, &format!("at {k} live topics"), target);
        bridge_process::stop(child);
        let rss = point["rss_mb"].as_f64().unwrap_or(0.0);
        let per_topic = prev.map(|(pk, pr)| (rss - pr) * 1e6 / (k - pk) as f64);
        point["topics"] = json!(k);
        point["subscribed"] = json!(ok);
        point["bytes_per_topic_since_previous"] = json!(per_topic);
        points.push(point);
        prev = Some((k, rss));
    }
    Outcome::new(
        rows,
        json!({"points": points, "payload_bytes": 32, "topics_per_test": MEMORY_TOPICS_PER_TEST}),
    )
}
