//! Scenario 5, API: requests per second under `wrk -t2 -c100` for `GET /api/v1/topics/{topic}` on the
//! bridge's own web layer (`xymon_mqtt::web::serve`, router and middleware) over a store holding the
//! 1,000 flood topics, alternated with the baseline, 4 runs each, medians reported.
//!
//! Baseline: a trivial axum handler returning "ok", on the same 2-worker runtime in the same process.
//! Target: >= 0.7x. Then, where valgrind is installed, the same two servers' instructions per request
//! under callgrind (`api_setup::instructions_per_request`, as `bench/api-profile` runs it), an unrated
//! row: repeatable where req/s on a shared machine is not.

use super::setup::{median, runtime, Env};
use crate::common::free_port;
use crate::row::{Outcome, Row};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// Requests per second `wrk` reports for `url` over the scenario's seconds; 0 when it fails.
fn wrk(env: &Env, url: &str) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", "-c100", &format!("-d{}s", env.sizes.api_secs), url])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    use axum::routing::get;
    use axum::Router;

    // The real web layer (router, middleware and all) over a store filled with the flood's topics.
    let (p_ours, p_trivial) = (free_port(), free_port());
    let (options, shared) = crate::api_setup::web_over_flood_store(p_ours, &env.mosq.url());
    let rt = runtime();
    let cancel = tokio_util::sync::CancellationToken::new();
    let web_cancel = cancel.clone();
    rt.spawn(async move {
        if let Ok(h) = xymon_mqtt::web::serve(options, shared.web_sources(), web_cancel).await {
            let _ = h.await;
        }
    });
    let trivial = Router::new().route("/", get(|| async { "ok" }));
    rt.spawn(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", p_trivial))
            .await
            .expect("bind");
        axum::serve(l, trivial).await.expect("serve");
    });
    std::thread::sleep(Duration::from_millis(200));
    let url_ours = format!("http://127.0.0.1:{p_ours}/api/v1/topics/bench/dev0042/value");
    let url_trivial = format!("http://127.0.0.1:{p_trivial}/");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Alternated, 4 runs each: single wrk runs of either side move by ±20 % on a shared 2-CPU machine.
    for _ in 0..if env.sizes.smoke { 1 } else { 4 } {
        b.push(wrk(env, &url_trivial));
        a.push(wrk(env, &url_ours));
    }
    cancel.cancel();
    rt.shutdown_timeout(Duration::from_secs(1));
    let (ours_rps, trivial_rps) = (median(a.clone()), median(b.clone()));
    const TRIVIAL: &str = "trivial axum handler";
    let mut rows = vec![Row::new(
        "GET /api/v1/topics/{t} req/s (web layer)",
        ours_rps,
        "req/s",
    )
    .against(TRIVIAL, trivial_rps)
    .target(">= 0.7x", ours_rps >= 0.7 * trivial_rps)];
    let instructions = api_instructions(env);
    if let Some((ours, trivial)) = instructions {
        rows.push(
            Row::new(
                "same, server instructions per request (callgrind)",
                ours as f64,
                "instr",
            )
            .against(TRIVIAL, trivial as f64),
        );
    }
    Outcome::new(
        rows,
        json!({"wrk": "-t2 -c100", "ours": a, "trivial": b,
               "instructions_per_request": instructions.map(|(o, t)| json!({"ours": o, "trivial": t})),
               "note": "the bridge's own web router (xymon_mqtt::web) over a store of the flood topics"}),
    )
}

/// Scenario 5 in instructions (`api_setup::instructions_per_request`, the code `bench/api-profile` runs):
/// repeatable to within a few hundred instructions, where req/s on a shared machine is not. `None` when
/// valgrind or the `api_profile` example is missing (`./run-bench` provides both), or a run failed.
fn api_instructions(env: &Env) -> Option<(u64, u64)> {
    let driver = std::env::current_exe().ok()?.with_file_name("api_profile");
    if !driver.exists() || Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "[bench] scenario 5: no valgrind or api_profile example; instruction counts skipped"
        );
        return None;
    }
    let n = if env.sizes.smoke { 200 } else { 2000 };
    crate::api_setup::instructions_per_request(&driver, env.tmp.path(), n)
        .map_err(|e| eprintln!("[bench] scenario 5: {e}"))
        .ok()
}
