//! `explain` golden test, and the generated Xymon graph config rendering a bridge-written per-value RRD.

mod common;

use common::bridge::RunningBridge;
use common::{Mosquitto, Xymond};
use regex::Regex;
use std::path::Path;
use std::time::{Duration, SystemTime};
use xymon_mqtt::cli::{self, explain::explain, xymon_config};
use xymon_mqtt::config::Config;
use xymon_mqtt::plan::Plan;

fn fixture() -> Plan {
    cli::load(Path::new("tests/fixtures/rules.toml")).unwrap()
}

/// Timestamps depend on the local time zone: mask them (`YYYY-MM-DD HH:MM:SS`, the first on each line).
fn mask(s: &str) -> String {
    static TIME: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"[0-9]{4}-[0-9]{2}-[0-9]{2}.[0-9]{2}:[0-9]{2}:[0-9]{2}").unwrap()
    });
    s.lines()
        .map(|line| format!("{}\n", TIME.replace(line, "<time>")))
        .collect()
}

#[test]
fn explain_golden() {
    let c = fixture();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut got = String::new();
    for (topic, payload) in [
        (
            "sensors/gh1/env",
            r#"{"temperature": 33.5, "contact": "OFF"}"#,
        ),
        ("sensors/gh1/env", "garbage <script>&red"),
        ("tele/07/SENSOR/humidity", "81"),
        ("sensors/Bad Host/env", "{}"),
        ("nothing/here", "1"),
    ] {
        got.push_str(&mask(&explain(&c, topic, payload.as_bytes(), now)));
        got.push_str("=====\n");
    }
    let golden = Path::new("tests/fixtures/explain.golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(golden).unwrap();
    assert_eq!(got, want, "run with UPDATE_GOLDEN=1 to accept");
}

#[test]
fn explain_cli() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xymon-mqtt"))
        .args([
            "explain",
            "--config",
            "tests/fixtures/rules.toml",
            "sensors/gh1/env",
            r#"{"temperature": 20, "contact": "ON"}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("| status+7 gh1.env green"), "{text}");
}

/// `rrd = true`: the bridge writes `<rrd_dir>/<host>/<test>.<value>.rrd`, and the graphs.d lines that
/// `xymon-config` prints render it, through render_graph (an rrdtool child) and through Xymon's own
/// showgraph.cgi.
#[test]
fn per_value_rrd_renders_with_generated_graphs() {
    let xymond = Xymond::start(&["gh1"]);
    let mqtt = Mosquitto::start();
    let rrd_dir = xymond.dir().join("rrd");
    std::fs::create_dir_all(&rrd_dir).unwrap();
    let fixture = std::fs::read_to_string("tests/fixtures/rules.toml").unwrap();
    let toml = format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}\"\n\n{}",
        xymond.addr(),
        rrd_dir.display(),
        fixture.replace("mqtt://127.0.0.1:1883", &mqtt.url())
    );
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    for t in [20.5, 21.0] {
        mqtt.publish(
            "sensors/gh1/env",
            &format!(r#"{{"temperature": {t}, "contact": "ON"}}"#),
            false,
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    let file = rrd_dir.join("gh1").join("env.temperature.rrd");
    common::wait_until(Duration::from_secs(30), "per-value RRD", || file.exists());
    xymond.wait_for_status("gh1.env", Duration::from_secs(30), |s| s.color == "green");
    bridge.stop();

    let config =
        Plan::compile(&Config::from_str_named(&toml, Path::new("t.toml")).unwrap()).unwrap();
    let text = xymon_config::generate(&config);
    assert!(text.contains("TEST2RRD+=\",env=env\""), "{text}");
    assert!(text.contains("GRAPHS_env=\"env-temperature\""), "{text}");
    let graphs =
        xymon_mqtt::rrd::graph::parse_graphs_cfg("generated", &xymon_config::graphs_part(&config))
            .unwrap();
    assert_eq!(
        graphs.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["env-temperature", "env"]
    );
    for g in &graphs {
        let png = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(xymon_mqtt::rrd::render_graph(
                &rrd_dir,
                "gh1",
                g,
                xymon_mqtt::rrd::GraphPeriod::Hours48,
                576,
                120,
            ))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{}", g.name);
    }

    // Installed as the README says: both fragments into a private Xymon layout, the bridge's file in its
    // rrd directory; then Xymon's showgraph.cgi draws each generated graph.
    let t = tempfile::tempdir().unwrap();
    let x = common::xymon_cgi::XymonEnv::new(t.path());
    let (server, graphs_cfg) = text
        .split_once("# ---- /etc/xymon/graphs.d/xymon-mqtt-rules.cfg ----\n")
        .unwrap();
    let fragment = |name: &str, body: &str| {
        let path = t.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let graphs_file = fragment("rules-graphs.cfg", graphs_cfg);
    let server_file = fragment("rules-server.cfg", server);
    let append = |path: &Path, line: String| {
        let mut s = std::fs::read_to_string(path).unwrap();
        s.push_str(&line);
        std::fs::write(path, s).unwrap();
    };
    append(
        &t.path().join("home/etc/graphs.cfg"),
        format!("include {}\n", graphs_file.display()),
    );
    append(&x.env, format!("include {}\n", server_file.display()));
    std::fs::create_dir_all(x.rrd.join("gh1")).unwrap();
    std::fs::copy(&file, x.rrd.join("gh1/env.temperature.rrd")).unwrap();
    let end = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for g in ["env-temperature", "env"] {
        let q = format!(
            "host=gh1&service={g}&graph_width=576&graph_height=120&disp=gh1&graph_start={}&graph_end={end}",
            end - 48 * 3600
        );
        let (headers, body) = x.cgi("showgraph.cgi", &q);
        assert!(
            headers.starts_with("Content-type: image/png") && body.starts_with(b"\x89PNG"),
            "showgraph {g}: {headers:?} {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
}
