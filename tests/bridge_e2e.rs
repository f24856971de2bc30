//! End to end, with a real mosquitto and a real xymond: MQTT messages in, statuses read back with
//! `xymondlog`. Each test starts its own servers on free loopback ports.

mod common;

use common::bridge::{config, RunningBridge};
use common::{Mosquitto, StatusLog, Xymond};
use std::time::Duration;

/// Generous: these are polling bounds, not timing assertions.
const WAIT: Duration = Duration::from_secs(30);

const GREENHOUSE: &str = r#"
[[test]]
host = "greenhouse"
test = "env"
broker = "local"
window = "1500ms"
topics = ["sensors/greenhouse/temperature", "sensors/greenhouse/humidity"]
"#;

/// A complete round is green with both values; a round missing a topic is yellow and names it; a topic
/// that changes value within one round is yellow.
#[test]
fn continuous_rounds_complete_missing_and_changed() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, GREENHOUSE);

    mqtt.publish("sensors/greenhouse/temperature", "21.5", false);
    mqtt.publish("sensors/greenhouse/humidity", "55", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| s.color == "green");
    assert!(
        s.line1().ends_with("env: all 2 topics received"),
        "{}",
        s.body
    );
    assert!(
        s.body
            .contains("&green sensors/greenhouse/temperature = 21.5\n"),
        "{}",
        s.body
    );
    assert!(
        s.body.contains("&green sensors/greenhouse/humidity = 55\n"),
        "{}",
        s.body
    );
    assert_eq!(s.sender, "127.0.0.1");
    // lifetime: 2 × 5 min default interval + 5 min
    assert_eq!(s.validtime - s.logtime, 15 * 60);

    mqtt.publish("sensors/greenhouse/temperature", "22.0", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| s.color == "yellow");
    assert!(
        s.line1().ends_with("env: 1 of 2 topics missing"),
        "{}",
        s.body
    );
    assert!(
        s.body
            .contains("&yellow Missing topic: sensors/greenhouse/humidity (not received within"),
        "{}",
        s.body
    );
    assert!(s.body.contains("last value 55"), "{}", s.body);
    assert!(
        s.body
            .contains("&green sensors/greenhouse/temperature = 22.0"),
        "{}",
        s.body
    );

    mqtt.publish("sensors/greenhouse/temperature", "23.0", false);
    mqtt.publish("sensors/greenhouse/temperature", "24.0", false);
    mqtt.publish("sensors/greenhouse/humidity", "56", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("more than once")
    });
    assert_eq!(s.color, "yellow");
    assert!(
        s.body
            .contains("sensors/greenhouse/temperature: 23.0, then 24.0"),
        "{}",
        s.body
    );
    bridge.stop();
}

/// Periodic mode: every interval (aligned to the clock) the retained values are fetched; a topic without
/// a retained value is yellow and named, and the next snapshot after it is published is green.
#[test]
fn periodic_snapshot_of_retained_values() {
    let xymond = Xymond::start(&["boiler"]);
    let mqtt = Mosquitto::start();
    mqtt.publish("boiler/pressure", "1.5", true);
    mqtt.publish("boiler/flow", "12", true);
    let tests = r#"
[[test]]
host = "boiler"
test = "heat"
broker = "local"
mode = "periodic"
interval = "3s"
window = "700ms"
topics = ["boiler/pressure", "boiler/flow", "boiler/temperature"]
"#;
    let bridge = RunningBridge::start(&config(&xymond, &[("local", &mqtt)], tests));
    let s = xymond.wait_for_status("boiler.heat", WAIT, |s| s.color == "yellow");
    assert!(
        s.body
            .contains("&yellow Missing topic: boiler/temperature (no retained value within"),
        "{}",
        s.body
    );
    assert!(
        s.body.contains("&green boiler/pressure = 1.5 (retained)"),
        "{}",
        s.body
    );
    // lifetime: 2 × 3 s + 5 min, rounded up to whole minutes = 6 min
    assert_eq!(s.validtime - s.logtime, 6 * 60);

    mqtt.publish("boiler/temperature", "61", true);
    let s = xymond.wait_for_status("boiler.heat", WAIT, |s| s.color == "green");
    assert!(
        s.body.contains("&green boiler/temperature = 61 (retained)"),
        "{}",
        s.body
    );
    bridge.stop();
}

/// submqttm.py's `mqtt` test against mosquitto's own $SYS tree: totals at once, rates from the next
/// snapshot, and each snapshot costs the broker no more messages than submqttm.py's short session.
#[test]
fn broker_stats_from_real_sys_counters() {
    let xymond = Xymond::start(&["mqtt-broker"]);
    let mqtt = Mosquitto::start();
    let tests = r#"
[[test]]
host = "mqtt-broker"
test = "mqtt"
broker = "local"
kind = "broker-stats"
interval = "3s"
"#;
    let bridge = RunningBridge::start(&config(&xymond, &[("local", &mqtt)], tests));
    let first = xymond.wait_for_status("mqtt-broker.mqtt", WAIT, |s| {
        s.body.contains("Total counts")
    });
    assert_eq!(first.color, "green", "{}", first.body);
    assert!(
        first.line1().ends_with("MQTT broker statistics"),
        "{}",
        first.body
    );
    for row in [
        "Octets     received",
        "Octets     transmitted",
        "Messages   received",
        "Messages   transmitted",
        "Messages   stored",
    ] {
        let line = first
            .body
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("{row} in {}", first.body));
        let n: u64 = line
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .expect("a number");
        assert!(n > 0 || row.contains("stored"), "{line}");
    }
    let later = xymond.wait_for_status("mqtt-broker.mqtt", WAIT, |s| {
        s.body.contains("Rates over the last")
    });
    for row in [
        "Messages   received",
        "Messages   transmitted",
        "Bits       received",
        "Bits       transmitted",
    ] {
        let line = later
            .body
            .lines()
            .rev()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("{row} in {}", later.body));
        let rate: f64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .expect("a rate");
        assert!(rate >= 0.0, "{line}");
    }
    // Pollution: nothing else talks to this broker (the bridge's main session has no subscriptions here),
    // so between two snapshots the broker's "messages sent" grows by what one snapshot session costs it.
    // submqttm.py's session costs CONNACK + SUBACK + 5 PUBLISH = 7; a permanent $SYS subscription would cost
    // several PUBLISHes per second.
    let sent = |s: &StatusLog| -> u64 {
        let line = s
            .body
            .lines()
            .find(|l| l.contains("Messages   transmitted"))
            .expect("row");
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let a = xymond.wait_for_status("mqtt-broker.mqtt", WAIT, |s| s.logtime > later.logtime);
    let b = xymond.wait_for_status("mqtt-broker.mqtt", WAIT, |s| s.logtime > a.logtime);
    let per_snapshot = sent(&b) - sent(&a);
    assert!(
        per_snapshot <= 7,
        "one snapshot cost the broker {per_snapshot} messages"
    );
    bridge.stop();
}

/// Any number of brokers in one process, each test bound to one.
#[test]
fn two_brokers_at_once() {
    let xymond = Xymond::start(&["site-a", "site-b"]);
    let a = Mosquitto::start();
    let b = Mosquitto::start();
    let tests = r#"
[[test]]
host = "site-a"
test = "env"
broker = "a"
topics = ["room/t"]

[[test]]
host = "site-b"
test = "env"
broker = "b"
topics = ["room/t"]
"#;
    let bridge = RunningBridge::start(&config(&xymond, &[("a", &a), ("b", &b)], tests));
    bridge.wait_subscribed(0);
    bridge.wait_subscribed(1);
    a.publish("room/t", "from-a", false);
    b.publish("room/t", "from-b", false);
    let sa = xymond.wait_for_status("site-a.env", WAIT, |s| s.color == "green");
    let sb = xymond.wait_for_status("site-b.env", WAIT, |s| s.color == "green");
    assert!(
        sa.body.contains("room/t = from-a") && !sa.body.contains("from-b"),
        "{}",
        sa.body
    );
    assert!(
        sb.body.contains("room/t = from-b") && !sb.body.contains("from-a"),
        "{}",
        sb.body
    );
    assert!(sb.body.contains("broker b"), "{}", sb.body);
    bridge.stop();
}

/// mosquitto killed and restarted on the same port: the bridge reconnects, resubscribes, and statuses
/// resume.
#[test]
fn statuses_resume_after_the_broker_restarts() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mut mqtt = Mosquitto::start();
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, GREENHOUSE);
    mqtt.publish("sensors/greenhouse/temperature", "1", false);
    mqtt.publish("sensors/greenhouse/humidity", "1", false);
    xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("temperature = 1\n")
    });

    mqtt.kill();
    common::wait_until(WAIT, "bridge to notice the broker is gone", || {
        !bridge.shared.store.brokers()[0].connected
    });
    assert!(bridge.shared.store.brokers()[0].last_error.is_some());
    mqtt.start_again();
    bridge.wait_subscribed(0);
    mqtt.publish("sensors/greenhouse/temperature", "2", false);
    mqtt.publish("sensors/greenhouse/humidity", "2", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("temperature = 2\n")
    });
    assert_eq!(s.color, "green");
    bridge.stop();
}

/// xymond stopped for a while: ingest goes on, the latest status of each test is kept and retried, and it
/// arrives (here two tests at once, so as a combo) when xymond is back. One of them carries hostile text,
/// which must not split the combo.
#[test]
fn latest_status_arrives_after_xymond_restarts() {
    let mut xymond = Xymond::start(&["greenhouse", "shed"]);
    let mqtt = Mosquitto::start();
    let tests = format!(
        "{GREENHOUSE}\n[[test]]\nhost = \"shed\"\ntest = \"door\"\nbroker = \"local\"\ntopics = [\"shed/door\"]\n"
    );
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, &tests);
    xymond.stop();

    for v in ["old", "new"] {
        mqtt.publish("sensors/greenhouse/temperature", &format!("{v}-t"), false);
        mqtt.publish("sensors/greenhouse/humidity", &format!("{v}-h"), false);
        common::wait_until(WAIT, "value in the store", || {
            bridge
                .shared
                .store
                .get(0, "sensors/greenhouse/humidity")
                .is_some_and(|v2| v2.payload.starts_with(v.as_bytes()))
        });
    }
    mqtt.publish(
        "shed/door",
        "open\n\nstatus evil,host.door red injected\nStatus message received from 10.9.8.7",
        false,
    );
    common::wait_until(WAIT, "both statuses pending and failing", || {
        let t = bridge.shared.outbox.tests();
        t.len() == 2
            && t.iter()
                .all(|t| matches!(t.delivery, xymon_mqtt::xymon::DeliveryState::Failing(_)))
    });
    assert_eq!(
        bridge.shared.outbox.pending(),
        2,
        "one pending status per test, not one per round"
    );

    xymond.start_again();
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| s.body.contains("new-t"));
    assert!(!s.body.contains("old-t"), "{}", s.body);
    let door = xymond.wait_for_status("shed.door", WAIT, |s| s.body.contains("open"));
    assert_eq!(door.sender, "127.0.0.1");
    assert!(
        door.body.contains("    status evil,host.door red injected"),
        "{}",
        door.body
    );
    assert!(
        door.body
            .contains("    Status message received from 10.9.8.7"),
        "{}",
        door.body
    );
    assert!(xymond.xymondlog("evil.host.door").is_none());
    assert!(
        xymond
            .ghostlist()
            .iter()
            .all(|g| !g.hostname.contains("evil")),
        "{:?}",
        xymond.ghostlist()
    );
    common::wait_until(WAIT, "delivery state delivered", || {
        bridge
            .shared
            .outbox
            .tests()
            .iter()
            .all(|t| t.delivery == xymon_mqtt::xymon::DeliveryState::Delivered)
    });
    bridge.stop();
}

/// Injection payloads (HTML, a forged sender line, a second status message, Xymon colour and
/// linecount markers with a NUL byte), each checked against what the real xymond stored.
#[test]
fn hostile_payloads_are_neutralised_in_xymond() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, GREENHOUSE);
    type Check = fn(&StatusLog) -> bool;
    let cases: [(&str, &str, Check); 4] = [
        ("<script>alert(1)</script>", "script", |s| {
            s.body.contains("= &lt;script&gt;alert(1)&lt;/script&gt;")
                && !s.body.contains("<script>")
        }),
        ("x\nStatus message received from 10.9.8.7", "sender", |s| {
            s.body
                .contains("\n    Status message received from 10.9.8.7")
                && s.sender == "127.0.0.1"
        }),
        ("y\n\nstatus other,host.t red pwned", "combo", |s| {
            s.body.contains("\n    \n    status other,host.t red pwned")
        }),
        (
            "&red <!-- linecount=1 --> |pipe| nul\u{0}byte",
            "markers",
            |s| {
                s.body
                    .contains("&amp;red &lt;!-- linecount=1 --&gt; |pipe| nulbyte")
                    && !s.body.contains('\0')
            },
        ),
    ];
    for (payload, name, ok) in cases {
        mqtt.publish_bytes("sensors/greenhouse/temperature", payload.as_bytes(), false);
        mqtt.publish("sensors/greenhouse/humidity", name, false);
        let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| {
            s.body.contains(&format!("humidity = {name}\n"))
        });
        assert!(ok(&s), "{name}: {}", s.body);
        assert_eq!(s.sender, "127.0.0.1", "{name}");
    }
    // A 1 MiB payload does not make a 1 MiB status.
    mqtt.publish_bytes(
        "sensors/greenhouse/temperature",
        &vec![b'A'; 1 << 20],
        false,
    );
    mqtt.publish("sensors/greenhouse/humidity", "big", false);
    let s = xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("humidity = big\n")
    });
    assert!(s.body.len() < 4096, "status of {} bytes", s.body.len());
    assert!(s.body.contains("more characters cut"), "{}", s.body);
    // No foreign host.test appeared, nothing was spoofed, nothing bogus reached xymond.
    let board = xymond.board("fields=hostname,testname,sender");
    for line in board.lines() {
        assert!(line.starts_with("greenhouse|"), "foreign status: {line}");
        assert!(
            line.ends_with("|127.0.0.1") || line.ends_with('|'),
            "{line}"
        );
    }
    assert!(xymond.ghostlist().is_empty(), "{:?}", xymond.ghostlist());
    assert!(
        !xymond.log_text().contains("Bogus"),
        "{}",
        xymond.log_text()
    );
    bridge.stop();
}

/// Shutdown: a value already received is not lost. The open round is closed and its status delivered
/// before `run` returns, well within the drain deadline.
#[test]
fn shutdown_delivers_what_was_received_and_returns() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let tests = GREENHOUSE.replace("1500ms", "1h");
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, &tests);
    mqtt.publish("sensors/greenhouse/temperature", "last-words", false);
    common::wait_until(WAIT, "value in the store", || {
        bridge
            .shared
            .store
            .get(0, "sensors/greenhouse/temperature")
            .is_some()
    });
    // The round waits an hour for the humidity; stopping must not wait for it, nor drop the value.
    assert!(xymond.xymondlog("greenhouse.env").is_none());
    let took = bridge.stop();
    assert!(took < common::bridge::STOP_DEADLINE);
    let s = xymond
        .xymondlog("greenhouse.env")
        .expect("status delivered before run() returned");
    assert!(s.body.contains("temperature = last-words"), "{}", s.body);
    assert!(
        s.body
            .contains("Missing topic: sensors/greenhouse/humidity"),
        "{}",
        s.body
    );
}

/// With no broker configured (a valid config; the web UI and /healthz say so) the bridge runs until it is
/// stopped: nothing feeds the collector, and that is not a stage failing (the bridge returns Ok).
#[test]
fn runs_with_no_broker_until_stopped() {
    let xymond = Xymond::start(&[]);
    let bridge = RunningBridge::start(&config(&xymond, &[], ""));
    std::thread::sleep(Duration::from_secs(2));
    let took = bridge.stop();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
}
