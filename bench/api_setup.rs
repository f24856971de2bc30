//! Scenario 5's pieces, shared by the harness (`bench/scenario/api.rs`) and the callgrind driver
//! (`bench/api_profile.rs`): the flood's topic names, the bridge's web layer over a store holding every
//! one of them, and the instruction count per request under callgrind.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;
use xymon_mqtt::bridge::{Bridge, Shared};
use xymon_mqtt::plan::Plan;
use xymon_mqtt::store::Incoming;
use xymon_mqtt::web::WebOptions;

/// Topics of the ingest flood (`bench/devNNNN/value`); scenario 5's store holds them all.
pub const FLOOD_TOPICS: usize = 1_000;

pub fn flood_topics() -> Vec<String> {
    (0..FLOOD_TOPICS)
        .map(|i| format!("bench/dev{i:04}/value"))
        .collect()
}

/// The web layer's options (listening on `port`) and a bridge's shared state whose store holds every
/// flood topic with a 32-byte payload. The broker at `broker_url` is never connected to.
pub fn web_over_flood_store(port: u16, broker_url: &str) -> (WebOptions, Shared) {
    let toml = format!(
        "[web]\nlisten = \"127.0.0.1:{port}\"\n[[broker]]\nname = \"b\"\nurl = \"{broker_url}\"\n"
    );
    let config = xymon_mqtt::config::Config::from_str_named(&toml, Path::new("bench.toml"))
        .expect("bench config");
    let plan = Plan::compile(&config).expect("bench plan");
    let options = WebOptions::from_plan(&plan.web).expect("web options");
    let shared = Bridge::new(plan).shared;
    let payload = format!("{:032}", 1);
    for t in flood_topics() {
        let _ = shared.store.update(
            0,
            &Incoming {
                topic: &t,
                payload: payload.as_bytes(),
                qos: 0,
                retained: false,
                at: SystemTime::now(),
            },
        );
    }
    (options, shared)
}

/// Instructions per request of the server thread, for the bridge's web layer and for the trivial handler:
/// `driver` (the `api_profile` example) runs each with `n` and `2n` requests under callgrind, and
/// (I(2n) − I(n)) / n cancels start-up and the store fill. The callgrind files stay in `out`.
pub fn instructions_per_request(driver: &Path, out: &Path, n: u64) -> Result<(u64, u64), String> {
    let count = |server: &str, requests: u64| -> Result<u64, String> {
        let file = out.join(format!("{server}.{requests}"));
        let run = Command::new("valgrind")
            .args(["--tool=callgrind", "--separate-threads=yes"])
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg(driver)
            .args(["serve", server, &requests.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !run.status.success() {
            return Err(format!(
                "api_profile {server} {requests} failed under callgrind:\n{}",
                String::from_utf8_lossy(&run.stderr)
            ));
        }
        // The server runs on the main thread: callgrind's file for thread 1.
        let thread1 = format!("{}-01", file.display());
        let text = std::fs::read_to_string(&thread1).map_err(|e| format!("{thread1}: {e}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("{thread1}: no summary line"))
    };
    let per_request = |server: &str| -> Result<u64, String> {
        let (a, b) = (count(server, n)?, count(server, 2 * n)?);
        b.checked_sub(a)
            .map(|d| d / n)
            .ok_or_else(|| format!("{server}: fewer instructions with more requests"))
    };
    Ok((per_request("ours")?, per_request("trivial")?))
}
