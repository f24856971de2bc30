//! Broker sessions end to end with a real mosquitto and a real xymond, over MQTT 5 and 3.1.1: an
//! oversize retained message does not cut the bridge off, a kept session delivers the QoS 1 messages
//! published while the bridge was stopped, and several snapshot sessions on one broker at the same
//! instant do not take each other's place.

mod common;

use common::bridge::{logs, xymon_section, RunningBridge};
use common::{Mosquitto, StatusLog, Xymond};
use std::time::Duration;

/// Generous: these are polling bounds, not timing assertions.
const WAIT: Duration = Duration::from_secs(30);

/// A `[[broker]]` table on `mqtt`'s plain listener: name, then `extra` lines.
fn broker(mqtt: &Mosquitto, name: &str, extra: &str) -> String {
    format!(
        "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\n{extra}\n",
        mqtt.url()
    )
}

/// One retained message larger than the packet limit, on a topic a rule's wildcard subscribes to. MQTT
/// 5: the bridge announced its limit, the broker drops the message for it, the bridge never sees it.
/// MQTT 3.1.1: the bridge takes it (the broker's own limit applies) and keeps `max_payload_bytes` of
/// it. Either way the session stays up, and the other topics of the filter arrive.
#[test]
fn oversize_retained_message_does_not_stop_other_topics() {
    let mqtt = Mosquitto::start();
    let xymond = Xymond::start(&["ok"]);
    let huge = vec![b'9'; 100_000];
    mqtt.publish_bytes("plant/huge/temp", &huge, true);
    mqtt.publish("plant/ok/temp", "20.5", true);
    let mut toml = format!(
        "[limits]\nmax_packet_bytes = 4096\nmax_payload_bytes = 1024\n\n{}",
        xymon_section(&xymond)
    );
    toml += &broker(&mqtt, "big5", "client_id = \"big5\"");
    toml += &broker(
        &mqtt,
        "big311",
        "client_id = \"big311\"\nprotocol = \"3.1.1\"",
    );
    for (test, b) in [("temp5", "big5"), ("temp311", "big311")] {
        toml += &format!(
            "[[test]]\nhost = \"{{host}}\"\ntest = \"{test}\"\nbroker = \"{b}\"\ntopic = \"plant/{{host}}/temp\"\n  [[test.value]]\n  name = \"t\"\n\n"
        );
    }
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    bridge.wait_subscribed(1);
    mqtt.publish("plant/ok/temp", "21", false);
    for test in ["temp5", "temp311"] {
        let s = xymond.wait_for_status(&format!("ok.{test}"), WAIT, |s| s.body.contains("t = 21"));
        assert_eq!(s.color, "green", "{test}: {}", s.body);
    }
    // Later messages keep arriving on both sessions (a rule re-sends an unchanged colour only when due).
    let store = &bridge.shared.store;
    mqtt.publish("plant/ok/temp", "22", false);
    common::wait_until(WAIT, "the next value on both sessions", || {
        (0..2).all(|b| {
            store
                .get(b, "plant/ok/temp")
                .is_some_and(|v| v.payload.as_ref() == b"22")
        })
    });
    assert!(
        store.get(0, "plant/huge/temp").is_none(),
        "MQTT 5: the broker must not have sent it"
    );
    let kept = store
        .get(1, "plant/huge/temp")
        .expect("MQTT 3.1.1: taken and cut");
    assert_eq!((kept.size, kept.payload.len()), (100_000, 1024));
    let log = mqtt.log_text();
    assert!(
        log.contains("Dropping too large outgoing PUBLISH for big5"),
        "{log}"
    );
    // One connection each: no drop-and-reconnect loop on the retained message.
    for id in ["big5", "big311"] {
        let connects = log
            .lines()
            .filter(|l| l.contains("New client connected") && l.contains(&format!(" as {id} (")))
            .count();
        assert_eq!(connects, 1, "{id} connected {connects} times:\n{log}");
    }
    assert!(store.brokers().iter().all(|b| b.connected));
    bridge.stop();
}

/// `session_expiry`: the broker keeps the bridge's session while it is stopped; the QoS 1 messages
/// published meanwhile arrive when it starts again, as new messages (a complete, not retained round).
#[test]
fn kept_session_delivers_what_was_published_while_stopped() {
    let mqtt = Mosquitto::start();
    let xymond = Xymond::start(&["persist5", "persist311"]);
    let mut toml = xymon_section(&xymond);
    toml += &broker(
        &mqtt,
        "p5",
        "client_id = \"persist5\"\nsession_expiry = \"1h\"",
    );
    toml += &broker(
        &mqtt,
        "p311",
        "client_id = \"persist311\"\nsession_expiry = \"1h\"\nprotocol = \"3.1.1\"",
    );
    for (host, b) in [("persist5", "p5"), ("persist311", "p311")] {
        toml += &format!(
            "[[test]]\nhost = \"{host}\"\ntest = \"env\"\nbroker = \"{b}\"\nqos = 1\nwindow = \"2s\"\ntopics = [\"q/a\", \"q/b\", \"q/c\"]\n\n"
        );
    }
    logs();
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    bridge.wait_subscribed(1);
    bridge.stop();

    mqtt.publish("q/a", "1", false);
    mqtt.publish("q/b", "2", false);
    mqtt.publish("q/c", "3", false);

    let bridge = RunningBridge::start(&toml);
    for host in ["persist5", "persist311"] {
        let s = xymond.wait_for_status(&format!("{host}.env"), WAIT, |_| true);
        assert_eq!(s.color, "green", "{host}: {}", s.body);
        assert!(s.line1().ends_with("all 3 topics received"), "{}", s.body);
        for line in ["&green q/a = 1\n", "&green q/b = 2\n", "&green q/c = 3\n"] {
            assert!(s.body.contains(line), "{host}: {line} in {}", s.body);
        }
        assert!(!s.body.contains("retained"), "{}", s.body);
    }
    let log = logs();
    for b in ["p5", "p311"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("broker={b} ")) && l.contains("session_present=true")),
            "{b} resumed its session:\n{log}"
        );
    }
    bridge.stop();
}

/// Two broker-stats tests and a periodic topics test on one broker: their snapshots start at the same
/// wall-clock instant, each in a session with a client id of its own, so all are green at every
/// snapshot and the broker never closes one session for another.
#[test]
fn periodic_and_broker_stats_tests_share_a_broker() {
    let mqtt = Mosquitto::start();
    mqtt.publish("boiler/pressure", "1.5", true);
    let hosts = ["stats-a", "stats-b", "boiler"];
    let xymond = Xymond::start(&hosts);
    let mut toml = xymon_section(&xymond) + &broker(&mqtt, "local", "");
    for host in ["stats-a", "stats-b"] {
        toml += &format!(
            "[[test]]\nhost = \"{host}\"\ntest = \"mqtt\"\nbroker = \"local\"\nkind = \"broker-stats\"\ninterval = \"3s\"\n\n"
        );
    }
    toml += "[[test]]\nhost = \"boiler\"\ntest = \"mqtt\"\nbroker = \"local\"\nmode = \"periodic\"\ninterval = \"3s\"\nwindow = \"700ms\"\ntopics = [\"boiler/pressure\"]\n";
    let bridge = RunningBridge::start(&toml);
    for host in hosts {
        let key = format!("{host}.mqtt");
        let mut last: Option<StatusLog> = None;
        for _ in 0..3 {
            let after = last.as_ref().map_or(0, |s| s.logtime);
            let s = xymond.wait_for_status(&key, WAIT, |s| s.logtime > after);
            assert_eq!(s.color, "green", "{key}: {}", s.body);
            last = Some(s);
        }
    }
    let log = mqtt.log_text();
    assert!(
        !log.contains("already connected, closing old connection"),
        "{log}"
    );
    for test in 0..3 {
        assert!(
            log.contains(&format!("-snap{test}-")),
            "test {test}'s snapshot sessions:\n{log}"
        );
    }
    bridge.stop();
}
