//! The repo's graphs.d definitions render from writer-made files three ways: our render_graph (the rrd
//! crate's arguments for an `rrdtool graph` child), `rrdtool graph` with the graphs.d lines passed through
//! as showgraph does, and Xymon's showgraph.cgi.

mod common;

use std::process::Command;

use common::rrd::*;
use common::xymon_cgi::XymonEnv;
use xymon_mqtt::rrd::graph::load_graphs_file;
use xymon_mqtt::rrd::{render_graph, GraphPeriod};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn is_png(b: &[u8]) -> bool {
    b.starts_with(PNG_MAGIC) && b.len() > 3000
}

/// Runs one `render_graph` (an async `rrdtool graph` child) to completion.
fn draw<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn graphs_render_via_render_graph_rrdtool_and_showgraph() {
    let t = tempfile::tempdir().unwrap();
    let x = XymonEnv::new(t.path());
    let (w, h) = filled_writer(&x.rrd, 12);
    assert_eq!(w.failed(), 0);
    drop(w);
    h.join().unwrap();

    let graphs = load_graphs_file(&repo().join("graphs.d/mqtt.cfg")).unwrap();
    assert_eq!(graphs.len(), 3);
    let host_dir = x.rrd.join(HOST);
    for g in &graphs {
        // 1. render_graph through the rrd crate, for every Xymon period.
        for period in [
            GraphPeriod::Hours48,
            GraphPeriod::Days12,
            GraphPeriod::Days48,
            GraphPeriod::Days576,
        ] {
            let png = draw(render_graph(&x.rrd, HOST, g, period, 576, 120)).unwrap();
            assert!(is_png(&png), "{} {period:?}: {} bytes", g.name, png.len());
        }
        // A missing host is a clear rrdtool error, not a panic.
        let missing = draw(render_graph(
            &x.rrd,
            "missing.example.com",
            g,
            GraphPeriod::Hours48,
            576,
            120,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("missing.example.com") && missing.contains("No such file"),
            "{missing}"
        );
        assert!(draw(render_graph(
            &x.rrd,
            "../x",
            g,
            GraphPeriod::Hours48,
            576,
            120
        ))
        .is_err());

        // 2. rrdtool graph with the very same pass-through lines, in the host dir like showgraph.
        let out = t.path().join(format!("{}.png", g.name));
        let mut cmd = Command::new("rrdtool");
        cmd.current_dir(&host_dir)
            .args(["graph", out.to_str().unwrap(), "-a", "PNG", "-s", "end-48h"])
            .args(["--title", &format!("{HOST} {}", g.title)])
            .args(&g.args);
        run(&mut cmd);
        assert!(
            is_png(&std::fs::read(&out).unwrap()),
            "rrdtool graph {}",
            g.name
        );

        // 3. Xymon's showgraph.cgi, with the repo's graphs.d and xymonserver.d files.
        let end = now();
        let q = format!(
            "host={HOST}&service={}&graph_width=576&graph_height=120&disp={HOST}&graph_start={}&graph_end={end}",
            g.name,
            end - 48 * 3600
        );
        let (headers, body) = x.cgi("showgraph.cgi", &q);
        assert!(
            headers.starts_with("Content-type: image/png"),
            "{}: {headers:?} {}",
            g.name,
            String::from_utf8_lossy(&body)
        );
        assert!(is_png(&body), "showgraph {}: {} bytes", g.name, body.len());
    }
}

/// What the dashboard will draw: a bit-rate graph whose legend shows octets × 8.
#[test]
fn bit_rate_is_octets_times_eight() {
    let t = tempfile::tempdir().unwrap();
    let (w, h) = filled_writer(t.path(), 12);
    drop(w);
    h.join().unwrap();
    let path = t.path().join(HOST).join("mqtt.broker.octet.rrd");
    let def = format!("DEF:or={}:Rcv:AVERAGE", path.display());
    let out = rrdtool(&[
        "graph",
        "/dev/null",
        "-s",
        "end-48h",
        &def,
        "CDEF:br=or,8,*",
        "PRINT:br:MAX:%.1lf",
    ]);
    assert!(
        out.lines().any(|l| l == format!("{:.1}", OCT_RATE.0 * 8.0)),
        "{out}"
    );
}
