//! Tests of the integration-test harness itself (`tests/common`) against
//! the real mosquitto and xymond: if these fail, the end-to-end tests cannot be
//! trusted either.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    commafy_host_test, free_port, ipc_keys_in_use, nldecode, port_is_open, wait_until, Mosquitto,
    StatusLog, Xymond,
};

/// Generous bound for anything the servers do asynchronously.
const WAIT: Duration = Duration::from_secs(30);

const BROKER_HOST: &str = "broker.example.com";

/// Local addresses (hex, as in /proc/net/tcp) of the IPv4 sockets listening on `port`.
fn listen_addrs(port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, p) = f.get(1)?.split_once(':')?;
            (p == port_hex && f.get(3) == Some(&"0A")).then(|| addr.to_string())
        })
        .collect()
}

#[test]
fn free_port_hands_out_distinct_bindable_ports() {
    let a = free_port();
    let b = free_port();
    assert_ne!(a, b);
    std::net::TcpListener::bind(("127.0.0.1", a)).expect("port from free_port is bindable");
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_until_panics_naming_what_it_waited_for() {
    wait_until(Duration::from_millis(200), "the impossible", || false);
}

#[test]
fn status_log_parses_header_and_body() {
    let reply = "broker.example.com|mqtt|green||1795325087|1795325088|1795326887|0|0|127.0.0.1||ack\\pme|||N|&red forced\\n\n\
                 green Sun Nov 22 05:24:47 UTC 2026 MQTT broker OK\nMessages received: 10";
    let s = StatusLog::parse(reply).expect("parsed");
    assert_eq!(s.hostname, "broker.example.com");
    assert_eq!(s.testname, "mqtt");
    assert_eq!(s.color, "green");
    assert_eq!(
        (s.lastchange, s.logtime, s.validtime),
        (1795325087, 1795325088, 1795326887)
    );
    assert_eq!((s.acktime, s.disabletime), (0, 0));
    assert_eq!(s.sender, "127.0.0.1");
    assert_eq!(s.ackmsg, "ack|me");
    assert_eq!(s.client, "");
    assert_eq!(s.modifiers, "N|&red forced\n");
    assert_eq!(
        s.line1(),
        "green Sun Nov 22 05:24:47 UTC 2026 MQTT broker OK"
    );
    assert!(s.body.ends_with("Messages received: 10"));
    assert_eq!(StatusLog::parse(""), None);
    assert_eq!(nldecode(r"a\nb\tc\\d\pe"), "a\nb\tc\\d|e");
    assert_eq!(
        commafy_host_test("broker.example.com.mqtt"),
        "broker,example,com.mqtt"
    );
}

#[test]
fn mosquitto_retained_messages_are_read_back() {
    let broker = Mosquitto::start();
    assert!(broker.url().starts_with("mqtt://127.0.0.1:"));
    assert!(broker.url().ends_with(&broker.port().to_string()));
    assert_eq!(listen_addrs(broker.port()), vec!["0100007F".to_string()]);

    broker.publish("harness/text topic", "multi\nline payload", true);
    broker.publish_bytes("harness/bytes", b"\x00\xffraw\tbytes", true);

    let mut got = broker.subscribe_collect("harness/#", 2, WAIT);
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "harness/bytes".to_string(),
                "\0\u{fffd}raw\tbytes".to_string()
            ),
            (
                "harness/text topic".to_string(),
                "multi\nline payload".to_string()
            ),
        ]
    );
    // $SYS is published every second (sys_interval 1).
    let sys = broker.subscribe_collect("$SYS/broker/uptime", 1, WAIT);
    assert_eq!(sys.len(), 1, "no $SYS uptime: {sys:?}");
    assert!(broker.log_text().contains("mosquitto version"));
}

#[test]
fn mosquitto_stop_kill_and_start_again_keep_the_port() {
    let mut broker = Mosquitto::start();
    let port = broker.port();

    broker.stop();
    assert!(!broker.is_running());
    wait_until(WAIT, "stopped broker's port to close", || {
        !port_is_open(port)
    });

    broker.start_again();
    assert_eq!(broker.port(), port);
    broker.publish("harness/again", "after restart", true);
    assert_eq!(
        broker.subscribe_collect("harness/again", 1, WAIT),
        vec![("harness/again".to_string(), "after restart".to_string())]
    );

    broker.kill();
    wait_until(WAIT, "killed broker's port to close", || {
        !port_is_open(port)
    });
    broker.start_again();
    assert_eq!(broker.port(), port);
    // persistence false: the retained message died with the broker.
    assert_eq!(
        broker.subscribe_collect("harness/again", 1, Duration::from_secs(2)),
        vec![]
    );
}

#[test]
fn drop_stops_the_processes() {
    let broker = Mosquitto::start();
    let xymond = Xymond::start(&[BROKER_HOST]);
    let pids = [broker.pid().unwrap(), xymond.pid().unwrap()];
    let keys = xymond.ipc_keys().to_vec();
    drop(broker);
    drop(xymond);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }
    let in_use = ipc_keys_in_use();
    assert!(
        keys.iter().all(|k| !in_use.contains(k)),
        "IPC objects left behind"
    );
}

#[test]
fn xymond_stores_a_status_and_reads_it_back() {
    let xymond = Xymond::start(&[BROKER_HOST, "mqtt-bridge"]);
    assert!(xymond.addr().starts_with("127.0.0.1:"));
    assert!(xymond.request("ping").starts_with("xymond 4."));
    // It must listen on loopback only (the --listen=IP:PORT trap binds 0.0.0.0).
    assert_eq!(listen_addrs(xymond.port()), vec!["0100007F".to_string()]);
    assert!(xymond.log_text().contains("Setup complete"));

    let reply = xymond.send_raw(
        "status broker,example,com.mqtt green Harness OK\nsecond line|pipe\n<b>bold</b> back\\slash",
    );
    assert_eq!(reply, "");
    let s = xymond.wait_for_status("broker.example.com.mqtt", WAIT, |_| true);
    assert_eq!(s.hostname, BROKER_HOST);
    assert_eq!(s.testname, "mqtt");
    assert_eq!(s.color, "green");
    assert_eq!(s.sender, "127.0.0.1");
    assert_eq!(
        s.body,
        "green Harness OK\nsecond line|pipe\n<b>bold</b> back\\slash"
    );
    // Default lifetime 30 min.
    assert_eq!(s.validtime - s.logtime, 1800);

    assert_eq!(
        xymond.board(
            r"host=^broker\.example\.com$ test=^mqtt$ fields=hostname,testname,color,sender"
        ),
        "broker.example.com|mqtt|green|127.0.0.1\n"
    );
    // The comma form works as well.
    assert_eq!(xymond.xymondlog("broker,example,com.mqtt"), Some(s));
    assert_eq!(xymond.xymondlog("broker.example.com.nosuchtest"), None);
    assert!(!xymond.log_text().contains("Bogus message"));
}

#[test]
fn xymond_drops_ghosts_and_lists_them() {
    let xymond = Xymond::start(&[BROKER_HOST]);
    xymond.send_raw("status ghost,example,com.mqtt red not in hosts.cfg");
    wait_until(WAIT, "ghost.example.com in ghostlist", || {
        xymond.ghostlist().iter().any(|g| {
            g.hostname == "ghost.example.com" && g.sender == "127.0.0.1" && g.last_seen > 0
        })
    });
    assert_eq!(xymond.xymondlog("ghost.example.com.mqtt"), None);
    assert_eq!(xymond.board("host=ghost"), "");
}

#[test]
fn xymond_restart_restores_the_checkpoint() {
    let mut xymond = Xymond::start(&[BROKER_HOST]);
    let port = xymond.port();
    xymond.send_raw("status broker,example,com.mqtt yellow before restart\ndetail");
    let before = xymond.wait_for_status("broker.example.com.mqtt", WAIT, |_| true);

    xymond.stop();
    assert!(!xymond.is_running());
    assert!(!port_is_open(port));
    assert!(xymond.dir().join("tmp/xymond.chk").exists());

    xymond.start_again();
    assert_eq!(xymond.port(), port);
    let after = xymond
        .xymondlog("broker.example.com.mqtt")
        .expect("status survives restart");
    assert_eq!(after.color, "yellow");
    assert_eq!(after.body, before.body);
    assert_eq!(after.lastchange, before.lastchange);
    assert!(xymond.log_text().contains("Loading saved state"));
}

#[test]
fn xymond_ipc_objects_are_private_and_removed_on_stop() {
    let mut xymond = Xymond::start(&[BROKER_HOST]);
    let keys = xymond.ipc_keys().to_vec();
    let in_use = ipc_keys_in_use();
    // Channels 1..=9 have shared memory and semaphores; 10 (feedback queue) is off with --no-bfq.
    let live: Vec<i32> = keys
        .iter()
        .copied()
        .filter(|k| in_use.contains(k))
        .collect();
    assert_eq!(
        live,
        keys[..9].to_vec(),
        "xymond's IPC keys are not the ones computed"
    );
    xymond.stop();
    let in_use = ipc_keys_in_use();
    assert!(
        keys.iter().all(|k| !in_use.contains(k)),
        "IPC objects left after stop"
    );
}
