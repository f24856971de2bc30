//! The discovery core fed what ESPHome, Zigbee2MQTT and Tasmota really publish
//! (tests/fixtures/discovery/*.json, each citing its source), and everything a bad day brings.

use super::*;
use crate::colour::Colour::{self, *};
use crate::config::DiscoveryConfig;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

pub(super) struct Feed {
    pub(super) state: DiscoveryState,
    t0: Instant,
    wall0: SystemTime,
    /// Seconds since t0 of the next message.
    pub(super) at: u64,
    pub(super) subscribed: Vec<String>,
}

pub(super) fn config(extra: &str) -> DiscoveryConfig {
    let text = format!("broker = \"home\"\n{extra}");
    toml::from_str(&text).unwrap()
}

pub(super) fn feed(extra: &str) -> Feed {
    Feed {
        state: DiscoveryState::new(compile(&config(extra)).unwrap()),
        t0: Instant::now(),
        wall0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        at: 0,
        subscribed: Vec::new(),
    }
}

pub(super) fn fixture(name: &str) -> Vec<(String, Vec<u8>, bool)> {
    let text = match name {
        "esphome" => include_str!("../../tests/fixtures/discovery/esphome.json"),
        "zigbee2mqtt" => include_str!("../../tests/fixtures/discovery/zigbee2mqtt.json"),
        _ => include_str!("../../tests/fixtures/discovery/tasmota.json"),
    };
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let payload = match &m["payload"] {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            };
            (
                m["topic"].as_str().unwrap().to_string(),
                payload,
                m["retained"] == true,
            )
        })
        .collect()
}

impl Feed {
    pub(super) fn send(&mut self, topic: &str, payload: &str) -> Offered {
        self.send_bytes(topic, payload.as_bytes(), false)
    }
    pub(super) fn send_bytes(&mut self, topic: &str, payload: &[u8], retained: bool) -> Offered {
        self.at += 1;
        let out = self
            .state
            .offer(topic, payload, retained, self.now(), self.wall());
        for t in &out.subscribe {
            if !self.subscribed.contains(t) {
                self.subscribed.push(t.clone());
            }
        }
        self.subscribed.retain(|t| !out.unsubscribe.contains(t));
        out
    }
    pub(super) fn load(&mut self, name: &str) {
        for (topic, payload, retained) in fixture(name) {
            let out = self.send_bytes(&topic, &payload, retained);
            assert_eq!(out.refused, None, "{topic}");
            assert_eq!(out.template_errors, 0, "{topic}");
        }
    }
    pub(super) fn now(&self) -> Instant {
        self.t0 + Duration::from_secs(self.at)
    }
    pub(super) fn wall(&self) -> SystemTime {
        self.wall0 + Duration::from_secs(self.at)
    }
    pub(super) fn columns(&self) -> Vec<ColumnView> {
        self.state.columns(self.now(), self.wall())
    }
    /// (host, column, colour) of every column.
    pub(super) fn summary(&self) -> Vec<(String, String, Colour)> {
        self.columns()
            .into_iter()
            .map(|c| (c.host.to_string(), c.column.to_string(), c.colour))
            .collect()
    }
    pub(super) fn entity(&self, host: &str, name: &str) -> EntityView {
        self.columns()
            .into_iter()
            .filter(|c| c.host.as_str() == host)
            .flat_map(|c| c.entities)
            .find(|e| &*e.name == name)
            .unwrap_or_else(|| panic!("no {name} on {host}: {:?}", self.columns()))
    }
}

pub(super) fn s(v: &[(&str, &str, Colour)]) -> Vec<(String, String, Colour)> {
    v.iter()
        .map(|(h, c, col)| (h.to_string(), c.to_string(), *col))
        .collect()
}

#[test]
fn esphome_device_becomes_a_column() {
    let mut f = feed("[[threshold]]\nclass = \"temperature\"\nyellow = \"> 28\"\nred = \"> 32\"\n");
    f.load("esphome");
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Green)]));
    let col = &f.columns()[0];
    assert_eq!(col.entities.len(), 3);
    let t = f.entity("greenhouse", "Air Temperature");
    assert_eq!(t.value.as_deref(), Some("21.4"));
    assert_eq!(t.unit.as_deref(), Some("°C"));
    assert_eq!(t.device_class.as_deref(), Some("temperature"));
    assert!(t.retained);
    let mut want = vec![
        "greenhouse/status",
        "greenhouse/sensor/air_temperature/state",
        "greenhouse/sensor/soil_humidity/state",
        "greenhouse/binary_sensor/water_leak/state",
    ];
    want.sort();
    let mut got = f.subscribed.clone();
    got.sort();
    assert_eq!(got, want);
    // Over the class threshold: the column turns.
    f.send("greenhouse/sensor/air_temperature/state", "33.1");
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Red)]));
    assert_eq!(
        f.entity("greenhouse", "Air Temperature").judged.reason,
        "red: > 32"
    );
    f.send("greenhouse/sensor/air_temperature/state", "22");
    // A leak: moisture "on" is red by default.
    f.send("greenhouse/binary_sensor/water_leak/state", "ON");
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Red)]));
    f.send("greenhouse/binary_sensor/water_leak/state", "OFF");
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Green)]));
    // The will: offline, red, with the time.
    f.send("greenhouse/status", "offline");
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Red)]));
    let e = f.entity("greenhouse", "Air Temperature");
    assert!(
        e.judged.reason.starts_with("offline since 2027-01-15"),
        "{}",
        e.judged.reason
    );
    // Online again: the colour waits for the next value.
    f.send("greenhouse/status", "online");
    assert_eq!(
        f.entity("greenhouse", "Air Temperature").judged.reason,
        "online again, waiting for the next value"
    );
    f.send("greenhouse/sensor/air_temperature/state", "21");
    assert_eq!(
        f.entity("greenhouse", "Air Temperature").judged.colour,
        Green
    );
}

#[test]
fn zigbee2mqtt_templates_availability_list_and_boolean_payloads() {
    let mut f = feed("column = \"{device_class}\"\n[on_colour]\ndoor = \"yellow\"\n[[threshold]]\nclass = \"humidity\"\nred = \"> 80\"\n");
    f.load("zigbee2mqtt");
    assert_eq!(
        f.summary(),
        s(&[
            ("front_door", "door", Green),
            ("weather_sensor", "humidity", Green),
            ("weather_sensor", "temperature", Green),
        ])
    );
    assert_eq!(
        f.entity("weather_sensor", "temperature").value.as_deref(),
        Some("21.3")
    );
    assert_eq!(
        f.entity("weather_sensor", "humidity").value.as_deref(),
        Some("41.6")
    );
    // contact true = closed = payload_off ("True", as HA's cv.string makes it).
    assert_eq!(f.entity("front_door", "door").value.as_deref(), Some("off"));
    f.send("zigbee2mqtt/front_door", r#"{"contact":false}"#);
    assert_eq!(f.entity("front_door", "door").judged.colour, Yellow);
    f.send(
        "zigbee2mqtt/weather_sensor",
        r#"{"temperature":21.0,"humidity":85}"#,
    );
    assert_eq!(f.entity("weather_sensor", "humidity").judged.colour, Red);
    // availability_mode all: the device's own topic going offline is enough.
    f.send(
        "zigbee2mqtt/front_door/availability",
        r#"{"state":"offline"}"#,
    );
    assert_eq!(f.entity("front_door", "door").judged.colour, Red);
    // The bridge going offline takes every device (latest mode on the weather sensor).
    f.send("zigbee2mqtt/bridge/state", r#"{"state":"offline"}"#);
    assert_eq!(f.entity("weather_sensor", "temperature").judged.colour, Red);
}

#[test]
fn tasmota_device_info_merged_by_identifier_and_lwt() {
    let mut f = feed("[[threshold]]\nclass = \"temperature\"\nred = \"> 30\"\n");
    f.load("tasmota");
    // The sensors carry only `ids`; the status entity names the device, and every column follows.
    assert_eq!(f.summary(), s(&[("garage", "sensors", Green)]));
    assert_eq!(
        f.entity("garage", "Garage BME280 Temperature")
            .value
            .as_deref(),
        Some("21.4")
    );
    // `~SENSOR` expanded.
    assert_eq!(
        f.entity("garage", "Garage BME280 Pressure")
            .value
            .as_deref(),
        Some("1002.6")
    );
    assert_eq!(
        f.entity("garage", "Garage status").value.as_deref(),
        Some("76")
    );
    f.send("tele/tasmota_A1B2C3/LWT", "Offline");
    assert_eq!(f.summary(), s(&[("garage", "sensors", Red)]));
    f.send("tele/tasmota_A1B2C3/LWT", "Online");
    assert_eq!(f.summary(), s(&[("garage", "sensors", Red)]));
    f.send(
        "tele/tasmota_A1B2C3/SENSOR",
        r#"{"BME280":{"Temperature":22,"Pressure":1000}}"#,
    );
    f.send("tele/tasmota_A1B2C3/HASS_STATE", r#"{"RSSI":"70"}"#);
    assert_eq!(f.summary(), s(&[("garage", "sensors", Green)]));
}

#[test]
fn empty_config_removes_an_entity_and_its_topics() {
    let mut f = feed("");
    f.load("esphome");
    let out = f.send_bytes(
        "homeassistant/binary_sensor/greenhouse/water_leak/config",
        b"",
        true,
    );
    assert_eq!(
        out.unsubscribe,
        ["greenhouse/binary_sensor/water_leak/state"]
    );
    assert_eq!(f.state.entity_count(), 2);
    // A later state message cannot bring it back.
    f.send("greenhouse/binary_sensor/water_leak/state", "ON");
    assert_eq!(f.columns()[0].entities.len(), 2);
    assert_eq!(f.summary(), s(&[("greenhouse", "sensors", Green)]));
    // Removing the rest drops the shared availability topic too.
    f.send_bytes(
        "homeassistant/sensor/greenhouse/air_temperature/config",
        b"",
        true,
    );
    let out = f.send_bytes(
        "homeassistant/sensor/greenhouse/soil_humidity/config",
        b"",
        true,
    );
    assert!(
        out.unsubscribe.contains(&"greenhouse/status".to_string()),
        "{out:?}"
    );
    assert!(f.subscribed.is_empty(), "{:?}", f.subscribed);
    assert!(f.columns().is_empty());
}

#[test]
fn template_error_is_shown_counted_and_clears() {
    let mut f = feed("");
    let cfg =
        r#"{"stat_t":"t/state","val_tpl":"{{ value | float }}","dev":{"ids":"x1","name":"probe"}}"#;
    assert_eq!(
        f.send("homeassistant/sensor/probe/t/config", cfg).refused,
        None
    );
    f.send("t/state", "20.5");
    let out = f.send("t/state", "n/a");
    assert_eq!(out.template_errors, 1);
    let e = f.entity("probe", "t");
    assert_eq!(e.judged.colour, Yellow);
    assert!(
        e.judged
            .reason
            .starts_with("template failed: invalid operation"),
        "{}",
        e.judged.reason
    );
    assert_eq!(
        e.value.as_deref(),
        Some("20.5"),
        "the last good value is kept"
    );
    assert_eq!(e.template_errors, 1);
    f.send("t/state", "21");
    let e = f.entity("probe", "t");
    assert_eq!((e.judged.colour, e.template_errors), (Green, 1));
}
