//! Home Assistant discovery end to end, with a real mosquitto and a real xymond: the announcements
//! ESPHome, Zigbee2MQTT and Tasmota publish (tests/fixtures/discovery/, each citing its source) make
//! device columns by themselves.

mod common;

use common::bridge::{config, RunningBridge};
use common::{Mosquitto, Xymond};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

const DISCOVERY: &str = r#"
[[discovery]]
broker = "local"
on_colour = { door = "yellow" }

[[discovery.threshold]]
class = "temperature"
yellow = "> 28"
red = "> 30"
"#;

/// Publishes every message of a fixture, retained (so the order against the bridge's subscriptions does
/// not matter: the broker replays retained states when the bridge subscribes to an announced topic).
fn publish_fixture(mqtt: &Mosquitto, name: &str) {
    let text = std::fs::read_to_string(format!("tests/fixtures/discovery/{name}.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for m in v["messages"].as_array().unwrap() {
        let payload = match &m["payload"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        mqtt.publish(m["topic"].as_str().unwrap(), &payload, true);
    }
}

#[test]
fn devices_appear_turn_go_offline_lose_entities_and_survive_a_restart() {
    let xymond = Xymond::start(&["greenhouse", "weather_sensor", "front_door", "garage"]);
    let mqtt = Mosquitto::start();
    for f in ["esphome", "zigbee2mqtt", "tasmota"] {
        publish_fixture(&mqtt, f);
    }
    let toml = config(&xymond, &[("local", &mqtt)], DISCOVERY);
    let bridge = RunningBridge::start(&toml);

    // Every device appears as a column, with its entities, units and classes.
    let s = xymond.wait_for_status("greenhouse.sensors", WAIT, |s| {
        s.color == "green" && s.body.contains("Water Leak")
    });
    assert!(
        s.body.contains("&green Air Temperature [temperature] = 21.4 °C (ok: not yellow &gt; 28, not red &gt; 30, retained)"),
        "{}",
        s.body
    );
    assert!(s.body.contains("Model: esp32dev"), "{}", s.body);
    let s = xymond.wait_for_status("weather_sensor.sensors", WAIT, |s| {
        s.color == "green" && s.body.contains("humidity [humidity] = 41.6 %")
    });
    assert!(
        s.body.contains("temperature [temperature] = 21.3 °C"),
        "{}",
        s.body
    );
    xymond.wait_for_status("front_door.sensors", WAIT, |s| {
        s.color == "green" && s.body.contains("door] = off")
    });
    // Tasmota: the device name comes with the status entity; the BME280 entities follow it.
    let s = xymond.wait_for_status("garage.sensors", WAIT, |s| {
        s.color == "green"
            && s.body
                .contains("Garage BME280 Pressure [pressure] = 1002.6 hPa")
    });
    assert!(s.body.contains("Software: 14.3.0(tasmota)"), "{}", s.body);

    // A value over its class threshold turns the column.
    mqtt.publish("greenhouse/sensor/air_temperature/state", "31.5", true);
    xymond.wait_for_status("greenhouse.sensors", WAIT, |s| {
        s.color == "red" && s.body.contains("= 31.5 °C (red: &gt; 30")
    });
    // The door opens: yellow, as configured for the class.
    mqtt.publish("zigbee2mqtt/front_door", r#"{"contact":false}"#, true);
    xymond.wait_for_status("front_door.sensors", WAIT, |s| s.color == "yellow");

    // Offline (Tasmota's LWT) and back: red with the time, then green at the next value.
    mqtt.publish("tele/tasmota_A1B2C3/LWT", "Offline", true);
    xymond.wait_for_status("garage.sensors", WAIT, |s| {
        s.color == "red" && s.body.contains("offline since")
    });
    mqtt.publish("tele/tasmota_A1B2C3/LWT", "Online", true);
    xymond.wait_for_status("garage.sensors", WAIT, |s| {
        s.body.contains("online again, waiting for the next value")
    });
    mqtt.publish(
        "tele/tasmota_A1B2C3/SENSOR",
        r#"{"BME280":{"Temperature":20.5,"Pressure":1001.0}}"#,
        false,
    );
    mqtt.publish("tele/tasmota_A1B2C3/HASS_STATE", r#"{"RSSI":"70"}"#, false);
    xymond.wait_for_status("garage.sensors", WAIT, |s| s.color == "green");

    // An entity removed by an empty retained config.
    mqtt.publish(
        "homeassistant/binary_sensor/greenhouse/water_leak/config",
        "",
        true,
    );
    xymond.wait_for_status("greenhouse.sensors", WAIT, |s| {
        !s.body.contains("Water Leak")
    });

    // A template that cannot be evaluated: shown with the reason, counted.
    mqtt.publish("zigbee2mqtt/weather_sensor", "not json <b>", false);
    let s = xymond.wait_for_status("weather_sensor.sensors", WAIT, |s| s.color == "yellow");
    assert!(
        s.body.contains("template failed: undefined value"),
        "{}",
        s.body
    );
    assert!(s.body.contains("template errors: 1"), "{}", s.body);
    let metrics = bridge.shared.metrics.encode();
    assert!(
        metrics.contains("reason=\"discovery_template\""),
        "{metrics}"
    );
    bridge.stop();

    // While the bridge is away, a device reports a new retained value; the restarted bridge finds every
    // device again from the retained announcements and shows it.
    mqtt.publish("greenhouse/sensor/air_temperature/state", "29", true);
    let bridge = RunningBridge::start(&toml);
    xymond.wait_for_status("greenhouse.sensors", WAIT, |s| {
        s.color == "yellow" && s.body.contains("= 29 °C") && !s.body.contains("Water Leak")
    });
    xymond.wait_for_status("garage.sensors", WAIT, |s| s.body.contains("Garage status"));
    bridge.stop();
}

/// Bad announcements on a live broker: refused, counted, and the bridge carries on.
#[test]
fn bad_announcements_are_refused_and_counted() {
    let xymond = Xymond::start(&["probe"]);
    let mqtt = Mosquitto::start();
    let toml = config(
        &xymond,
        &[("local", &mqtt)],
        "[[discovery]]\nbroker = \"local\"\n",
    );
    let bridge = RunningBridge::start(&toml);
    bridge.wait_connected(0);
    mqtt.publish("homeassistant/sensor/probe/x/config", "{not json", true);
    mqtt.publish(
        "homeassistant/sensor/probe/y/config",
        &"x".repeat(20_000),
        true,
    );
    mqtt.publish(
        "homeassistant/sensor/probe/z/config",
        r#"{"stat_t":"probe/z","val_tpl":"{{ value_json[ }}","dev":{"ids":"probe"}}"#,
        true,
    );
    mqtt.publish(
        "homeassistant/sensor/probe/ok/config",
        r#"{"stat_t":"probe/ok","name":"<script>","unit_of_meas":"&red","dev":{"ids":"probe"}}"#,
        true,
    );
    mqtt.publish("probe/ok", "42", true);
    let s = xymond.wait_for_status("probe.sensors", WAIT, |s| s.body.contains("= 42"));
    assert!(
        s.body.contains("&green &lt;script&gt; = 42 &amp;red"),
        "{}",
        s.body
    );
    let metrics = bridge.shared.metrics.encode();
    assert!(
        metrics.contains("xymon_mqtt_dropped_total{reason=\"discovery_refused\"} 3"),
        "{metrics}"
    );
    bridge.stop();
}

/// More devices than one turn of a check builds (`COLUMNS_PER_TURN`, 256): the checks after start-up
/// send every device's column, first as announced (clear) and then with its own value, and xymond has
/// them all.
#[test]
fn a_fleet_larger_than_one_turn_reaches_xymond_whole() {
    const DEVICES: usize = 300;
    let hosts: Vec<String> = (0..DEVICES).map(|i| format!("fleet{i:03}")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let xymond = Xymond::start(&names);
    let mqtt = Mosquitto::start();
    for (i, host) in hosts.iter().enumerate() {
        mqtt.publish(
            &format!("homeassistant/sensor/{host}/temp/config"),
            &format!(
                r#"{{"stat_t":"{host}/temp","unit_of_meas":"°C","dev_cla":"temperature","uniq_id":"{host}_t","dev":{{"ids":"{host}","name":"{host}"}}}}"#
            ),
            true,
        );
        mqtt.publish(&format!("{host}/temp"), &format!("{}.5", i % 20), true);
    }
    let toml = config(&xymond, &[("local", &mqtt)], DISCOVERY);
    let bridge = RunningBridge::start(&toml);
    // Well under the minute in which every column has its turn to be sent again anyway, so a column
    // that a check left out would not have come back by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let board = loop {
        let board = xymond.board("test=sensors fields=hostname,color,line1");
        let green = board.lines().filter(|l| l.contains("|green|")).count();
        if green >= DEVICES || std::time::Instant::now() > deadline {
            break board;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(board.lines().count(), DEVICES, "{board}");
    for (i, host) in hosts.iter().enumerate() {
        let line = board
            .lines()
            .find(|l| l.starts_with(&format!("{host}|")))
            .unwrap_or_else(|| panic!("no column for {host}:\n{board}"));
        assert!(line.contains("|green|"), "{line}");
        let s = xymond.xymondlog(&format!("{host}.sensors")).unwrap();
        assert!(
            s.body.contains(&format!("= {}.5 °C", i % 20)),
            "{host}: {}",
            s.body
        );
    }
    bridge.stop();
}
