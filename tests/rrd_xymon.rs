//! The repo's xymonserver.d/graphs.d fragments against a private xymond (loopback, free
//! port): svcstatus.cgi links both graphs on the `mqtt` page, and xymond_rrd on the status
//! and data channels never touches the writer's files.

mod common;

use std::time::{Duration, Instant};

use common::rrd::*;
use common::xymon_cgi::XymonEnv;

/// (file name, mtime, size, content hash) of every file in `dir`, sorted.
fn snapshot(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            let bytes = std::fs::read(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, m, bytes.len(), h.finish())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn svcstatus_links_graphs_and_xymond_rrd_leaves_files_alone() {
    let t = tempfile::tempdir().unwrap();
    let x = XymonEnv::new(t.path());
    let (w, h) = filled_writer(&x.rrd, 6);
    assert_eq!(w.failed(), 0);

    let _xymond = x.start_xymond();
    let _rrd_status = x.start_xymond_rrd("status");
    let _rrd_data = x.start_xymond_rrd("data");
    std::thread::sleep(Duration::from_millis(500));
    let host_dir = x.rrd.join(HOST);
    let before = snapshot(&host_dir);
    assert_eq!(before.len(), 2);

    let xhost = HOST.replace('.', ",");
    x.xymon(&[&format!(
        "status+10 {xhost}.mqtt green {}\nMQTT broker OK\nMessages received: 10\n",
        now()
    )])
    .expect("send mqtt status");
    // A status that xymond_rrd does handle (cpu -> la), to prove the channel is live.
    x.xymon(&[&format!(
        "status+10 {xhost}.cpu green {} up: 1 days, 3 users, 99 procs, load=0.12\n",
        now()
    )])
    .expect("send cpu status");
    // And a trends data message (data channel), which xymond_rrd always writes.
    x.xymon(&[&format!(
        "data {xhost}.trends\n[probe.rrd]\nDS:x:GAUGE:600:U:U 1\n"
    )])
    .expect("send trends data");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(host_dir.join("la.rrd").exists() && host_dir.join("probe.rrd").exists()) {
        assert!(
            Instant::now() < deadline,
            "xymond_rrd never wrote la.rrd: channel not live\n{}",
            x.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<_> = snapshot(&host_dir)
        .into_iter()
        // la/procs/users.rrd come from the cpu status, probe.rrd from the trends data.
        .filter(|f| f.0.starts_with("mqtt"))
        .collect();
    assert_eq!(after, before, "xymond_rrd touched the bridge's RRD files");

    // svcstatus.cgi for the mqtt column links mqtttm and mqttto: 4.3.30's svcstatus.cgi links a column's
    // graphs only when the column is in TEST2RRD (Xymon bug #31), and xymonserver.d/mqtt.cfg puts it there.
    let (headers, body) = x.cgi("svcstatus.cgi", &format!("HOST={HOST}&SERVICE=mqtt"));
    let html = String::from_utf8_lossy(&body);
    assert!(headers.contains("text/html"), "{headers:?}");
    assert!(html.contains("MQTT broker OK"), "status not shown:\n{html}");
    assert!(
        html.contains("<!-- GRAPHS_mqtt: mqtttm,mqttto -->"),
        "{html}"
    );
    for g in ["mqtttm", "mqttto"] {
        let link = format!("showgraph.sh?host={HOST}&amp;service={g}&amp;");
        assert!(html.contains(&link), "no {g} link:\n{html}");
    }

    // And the writer keeps working next to xymond_rrd.
    fill(&w, HOST, aligned_start() + 6 * 300, 1);
    wait_processed(&w, 14);
    assert_eq!(w.failed(), 0);
    drop(w);
    h.join().unwrap();
}
