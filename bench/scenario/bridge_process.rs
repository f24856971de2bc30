//! The release `xymon-mqtt` binary as its own process, as scenarios 4 (memory), 7 (idle) and 9 (the
//! fleet's memory) measure it: started with a config of N distinct topics (or any tests), waited for until
//! subscribed and quiet, stopped.

use super::setup::{memory_host, push_test, Env, IDLE_HOST, MEMORY_TOPICS_PER_TEST};
use crate::probe;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `xymon-mqtt --config FILE` with `topics` distinct topics in continuous tests (100 per test), or a
/// single one-topic test for 0; config and log are `{name}.toml` and `{name}.log` in the run's directory.
/// Returns the process and its topics.
pub fn spawn(env: &Env, topics: usize, name: &str) -> (Child, Vec<String>) {
    let mut s = env.bridge_config(&env.xymond.addr());
    let all: Vec<String> = (0..topics.max(1))
        .map(|i| {
            format!(
                "mem/t{:04}/v{:03}",
                i / MEMORY_TOPICS_PER_TEST,
                i % MEMORY_TOPICS_PER_TEST
            )
        })
        .collect();
    for (t, chunk) in all.chunks(MEMORY_TOPICS_PER_TEST).enumerate() {
        let host = if topics == 0 {
            IDLE_HOST.to_string()
        } else {
            memory_host(t)
        };
        push_test(&mut s, &host, "mem", "2s", chunk);
    }
    (spawn_config(env, name, &s), all)
}

/// Starts `xymon-mqtt --config FILE` with the whole config `config`; config and log are `{name}.toml` and
/// `{name}.log` in the run's directory.
pub fn spawn_config(env: &Env, name: &str, config: &str) -> Child {
    let path = env.tmp.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("write config");
    let log = std::fs::File::create(env.tmp.path().join(format!("{name}.log"))).expect("log");
    Command::new(&env.bin)
        .arg("--config")
        .arg(&path)
        // The SubAck debug line ("subscribed") tells when the subscriptions are in place.
        .env("RUST_LOG", "warn,xymon_mqtt::mqtt=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env.bin.display()))
}

/// The one-topic bridge process `name`, subscribed and quiet (no CPU for 1 s): what scenario 7 observes
/// and scenario 4's idle figure.
pub fn spawn_idle(env: &Env, name: &str) -> Child {
    let (child, _) = spawn(env, 0, name);
    wait_subscribed(env, name, Duration::from_secs(30));
    wait_quiet(child.id(), Duration::from_secs(1), Duration::from_secs(10));
    child
}

/// Waits until the bridge process `name` has logged its SubAck.
pub fn wait_subscribed(env: &Env, name: &str, timeout: Duration) -> bool {
    let path = env.tmp.path().join(format!("{name}.log"));
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(" subscribed")
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits until the process has used no CPU for `quiet`, at most `max`.
pub fn wait_quiet(pid: u32, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last = probe::cpu_ticks(pid);
    let mut since = Instant::now();
    while start.elapsed() < max {
        std::thread::sleep(Duration::from_millis(100));
        let now = probe::cpu_ticks(pid);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

/// Stops a bridge process: SIGTERM, then SIGKILL after 10 s.
pub fn stop(child: Child) {
    probe::stop(child, Duration::from_secs(10));
}
