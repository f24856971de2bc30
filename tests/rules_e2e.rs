//! Rule tests end to end, with a real mosquitto and a real xymond: a config-only sensor fleet.

mod common;

use common::bridge::RunningBridge;
use common::{Mosquitto, Xymond};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Two topic layouts, 25 sensors each: a JSON layout read with JSONPath and a plain-number layout
/// whose host is built from a capture. Every sensor gets its own status with the right colour.
#[test]
fn fifty_sensors_two_layouts() {
    let hosts_a: Vec<String> = (0..25).map(|i| format!("esp{i:02}")).collect();
    let hosts_b: Vec<String> = (0..25).map(|i| format!("th-{i:02}")).collect();
    let all: Vec<&str> = hosts_a.iter().chain(&hosts_b).map(String::as_str).collect();
    let xymond = Xymond::start(&all);
    let mqtt = Mosquitto::start();
    let tests = r#"
[[test]]
broker = "local"
topic = "fleet/{host}/env"
host = "{host}"
test = "env"
  [[test.value]]
  name = "temperature"
  path = "$.temperature"
  unit = "°C"
  yellow = "> 28"
  red = "> 32"
  [[test.value]]
  name = "door"
  path = "$.contact"
  map = { ON = 1, OFF = 0 }
  red = "== 0"

[[test]]
broker = "local"
topic = "tele/{id}/+/humidity"
host = "th-{id}"
test = "hum"
  [[test.value]]
  name = "humidity"
  unit = "%"
  yellow = "outside 30..70"
"#;
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, tests);
    let colour_a = |i: usize| match i % 5 {
        0 => "red",
        1 => "yellow",
        _ => "green",
    };
    for i in 0..25 {
        let (t, door) = match colour_a(i) {
            "red" if i % 10 == 0 => (20.0, "OFF"),
            "red" => (35.0, "ON"),
            "yellow" => (30.0, "ON"),
            _ => (21.5, "ON"),
        };
        mqtt.publish(
            &format!("fleet/esp{i:02}/env"),
            &format!(r#"{{"temperature": {t}, "contact": "{door}"}}"#),
            false,
        );
        let h = if i % 3 == 0 { 80 } else { 50 };
        mqtt.publish(
            &format!("tele/{i:02}/SENSOR/humidity"),
            &h.to_string(),
            false,
        );
    }
    // an invalid derived host is skipped, never sent
    mqtt.publish("fleet/bad@host/env", r#"{"temperature": 1}"#, false);
    for i in 0..25 {
        let want = colour_a(i);
        let s = xymond.wait_for_status(&format!("esp{i:02}.env"), WAIT, |s| s.color == want);
        assert!(s.body.contains("&green") || want != "green", "{}", s.body);
        if want == "green" {
            assert!(
                s.body.contains(
                    "&green temperature = 21.5 °C (ok: not yellow &gt; 28, not red &gt; 32)"
                ),
                "{}",
                s.body
            );
            assert!(s.body.contains("&green door = ON → 1"), "{}", s.body);
        }
        let want = if i % 3 == 0 { "yellow" } else { "green" };
        let s = xymond.wait_for_status(&format!("th-{i:02}.hum"), WAIT, |s| s.color == want);
        assert!(s.body.contains("humidity = "), "{}", s.body);
    }
    let s = xymond.xymondlog("esp00.env").unwrap();
    assert!(
        s.body.contains("&red door = OFF → 0 (red: == 0)"),
        "{}",
        s.body
    );
    assert!(xymond.board("host=bad").trim().is_empty());
    let dropped = bridge.shared.metrics.encode();
    assert!(
        dropped.contains("reason=\"rule_invalid_host\""),
        "{dropped}"
    );
    // ... and named per rule
    assert!(
        dropped.contains("xymon_mqtt_rule_refused_total{rule=\"fleet/{host}/env\",reason=\"rule_invalid_host\"} 1"),
        "{dropped}"
    );
    bridge.stop();
}

/// One sensor: a threshold crossed and recovered, silence past expire_after turns it stale without any
/// message, and after a bridge restart the broker's retained replay is not shown as fresh.
#[test]
fn threshold_stale_and_retained_replay() {
    let xymond = Xymond::start(&["gh1"]);
    let mqtt = Mosquitto::start();
    let tests = r#"
[[test]]
broker = "local"
topic = "sensors/{host}/temp"
host = "{host}"
test = "temp"
expire_after = "3s"
interval = "2s"
  [[test.value]]
  name = "temperature"
  unit = "°C"
  red = "> 32"
  hysteresis = 0.5
"#;
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, tests);
    mqtt.publish("sensors/gh1/temp", "33", true);
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| s.color == "red");
    assert!(
        s.body.contains("&red temperature = 33 °C (red: &gt; 32)"),
        "{}",
        s.body
    );
    mqtt.publish("sensors/gh1/temp", "31.8", true);
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| s.body.contains("31.8"));
    assert_eq!(s.color, "red", "hysteresis holds red: {}", s.body);
    mqtt.publish("sensors/gh1/temp", "21", true);
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| s.color == "green");
    assert!(s.body.contains("&green temperature = 21 °C"), "{}", s.body);
    // silence
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| s.color == "yellow");
    assert!(s.body.contains("(stale: last message"), "{}", s.body);
    assert!(s.body.contains("expire_after 3s"), "{}", s.body);
    bridge.stop();

    // restart: mosquitto replays the retained 21; it must not pass for fresh
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, tests);
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| {
        s.body.contains("retained, age unknown")
    });
    assert_eq!(s.color, "yellow", "{}", s.body);
    assert!(
        s.body
            .contains("temperature = 21 °C (retained, age unknown"),
        "{}",
        s.body
    );
    mqtt.publish("sensors/gh1/temp", "22", false);
    let s = xymond.wait_for_status("gh1.temp", WAIT, |s| s.color == "green");
    assert!(s.body.contains("&green temperature = 22 °C"), "{}", s.body);
    bridge.stop();
}

/// `expect`: a listed host that never published is reported by name (in the stale colour) once the
/// grace period (`expire_after`) has passed; one that did publish gets its normal status.
#[test]
fn expected_host_that_never_published_is_named() {
    let xymond = Xymond::start(&["gh1", "gh2"]);
    let mqtt = Mosquitto::start();
    let tests = r#"
[[test]]
broker = "local"
topic = "gh/{host}/temp"
host = "{host}"
test = "climate"
expire_after = "2s"
expect = ["gh1", "gh2"]
  [[test.value]]
  name = "temperature"
  unit = "°C"
  red = "> 40"
"#;
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, tests);
    mqtt.publish("gh/gh1/temp", "21", false);
    let present = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains("21"));
    assert_ne!(present.color, "red", "{}", present.body);
    let missing = xymond.wait_for_status("gh2.climate", WAIT, |s| s.body.contains("expect"));
    assert_eq!(missing.color, "yellow", "{}", missing.body);
    assert!(
        missing.body.contains("gh2 is listed in `expect`"),
        "{}",
        missing.body
    );
    assert!(
        missing
            .line1()
            .ends_with("climate: expected host has not published"),
        "{}",
        missing.body
    );
    bridge.stop();
}

/// `timestamp_path`: the sensor's own time decides freshness. A message that arrives now but says it was
/// measured an hour ago is stale at once; one measured now is fresh; an unreadable timestamp is named in
/// the status and the arrival time is used instead.
#[test]
fn sensor_timestamp_decides_freshness() {
    let xymond = Xymond::start(&["gh1"]);
    let mqtt = Mosquitto::start();
    let tests = r#"
[[test]]
broker = "local"
topic = "greenhouse/{host}/climate"
host = "{host}"
test = "climate"
expire_after = "10m"
timestamp_path = "$.ts"
# a status per second even when the colour stays (the third step keeps it green)
interval = "1s"
  [[test.value]]
  name = "temperature"
  path = "$.t"
"#;
    let bridge = RunningBridge::start_subscribed(&xymond, &mqtt, tests);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let topic = "greenhouse/gh1/climate";

    mqtt.publish(
        topic,
        &format!(r#"{{"t": 19.5, "ts": {}}}"#, now - 3600),
        false,
    );
    let s = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains("19.5"));
    assert_eq!(
        s.color, "yellow",
        "an hour-old measurement is stale:\n{}",
        s.body
    );
    assert!(s.body.contains("stale: last message 1h"), "{}", s.body);
    assert!(s.body.contains("sensor time"), "{}", s.body);

    mqtt.publish(topic, &format!(r#"{{"t": 20.5, "ts": {now}}}"#), false);
    let s = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains("20.5"));
    assert_eq!(s.color, "green", "{}", s.body);

    mqtt.publish(topic, r#"{"t": 21.5, "ts": "yesterday"}"#, false);
    let s = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains("21.5"));
    assert_eq!(
        s.color, "green",
        "arrival time is used instead:\n{}",
        s.body
    );
    assert!(
        // The payload's text is escaped like every untrusted string.
        s.body
            .contains("timestamp_path: timestamp &quot;yesterday&quot; is not RFC 3339"),
        "{}",
        s.body
    );

    // Numbers no clock or date formatter can hold: named like any bad timestamp, and the bridge carries
    // on. Both once panicked and took the collector down: 1e300 in Duration::from_secs_f64, and 1e16
    // (milliseconds, past chrono's year 262,142) when the status wrote the sensor time.
    for (value, ts) in [("22.5", "1e300"), ("22.75", "1e16")] {
        mqtt.publish(topic, &format!(r#"{{"t": {value}, "ts": {ts}}}"#), false);
        let s = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains(value));
        assert_eq!(s.color, "green", "{}", s.body);
        assert!(s.body.contains("is out of range"), "{}", s.body);
    }
    mqtt.publish(topic, &format!(r#"{{"t": 23.5, "ts": {now}}}"#), false);
    let s = xymond.wait_for_status("gh1.climate", WAIT, |s| s.body.contains("23.5"));
    assert_eq!(s.color, "green", "{}", s.body);
    assert!(!s.body.contains("timestamp_path:"), "{}", s.body);
    drop(bridge);
}
