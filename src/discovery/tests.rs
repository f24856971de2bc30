//! The discovery core fed what ESPHome, Zigbee2MQTT and Tasmota really publish
//! (tests/fixtures/discovery/*.json, each citing its source), and everything a bad day brings.

use super::*;
use crate::colour::Colour::{self, *};
use crate::config::DiscoveryConfig;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

struct Feed {
    state: DiscoveryState,
    t0: Instant,
    wall0: SystemTime,
    /// Seconds since t0 of the next message.
    at: u64,
    subscribed: Vec<String>,
}

fn config(extra: &str) -> DiscoveryConfig {
    let text = format!("broker = \"home\"\n{extra}");
    toml::from_str(&text).unwrap()
}

fn feed(extra: &str) -> Feed {
    Feed {
        state: DiscoveryState::new(compile(&config(extra)).unwrap()),
        t0: Instant::now(),
        wall0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        at: 0,
        subscribed: Vec::new(),
    }
}

fn fixture(name: &str) -> Vec<(String, Vec<u8>, bool)> {
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
    fn send(&mut self, topic: &str, payload: &str) -> Offered {
        self.send_bytes(topic, payload.as_bytes(), false)
    }
    fn send_bytes(&mut self, topic: &str, payload: &[u8], retained: bool) -> Offered {
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
    fn load(&mut self, name: &str) {
        for (topic, payload, retained) in fixture(name) {
            let out = self.send_bytes(&topic, &payload, retained);
            assert_eq!(out.refused, None, "{topic}");
            assert_eq!(out.template_errors, 0, "{topic}");
        }
    }
    fn now(&self) -> Instant {
        self.t0 + Duration::from_secs(self.at)
    }
    fn wall(&self) -> SystemTime {
        self.wall0 + Duration::from_secs(self.at)
    }
    fn columns(&self) -> Vec<ColumnView> {
        self.state.columns(self.now(), self.wall())
    }
    /// (host, column, colour) of every column.
    fn summary(&self) -> Vec<(String, String, Colour)> {
        self.columns()
            .into_iter()
            .map(|c| (c.host.to_string(), c.column.to_string(), c.colour))
            .collect()
    }
    fn entity(&self, host: &str, name: &str) -> EntityView {
        self.columns()
            .into_iter()
            .filter(|c| c.host.as_str() == host)
            .flat_map(|c| c.entities)
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} on {host}: {:?}", self.columns()))
    }
}

fn s(v: &[(&str, &str, Colour)]) -> Vec<(String, String, Colour)> {
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

#[test]
fn bad_announcements_are_refused_with_a_reason() {
    let mut f = feed("max_config_bytes = 300\nmax_entities = 2\n");
    let ok = r#"{"stat_t":"a","dev":{"ids":"d"}}"#;
    let big = format!(r#"{{"stat_t":"a","name":"{}"}}"#, "x".repeat(400));
    for (topic, payload, want) in [
        ("homeassistant/sensor/a/b/c/config", ok, "is not <prefix>"),
        ("homeassistant/sensor/bad id/config", ok, "is not <prefix>"),
        (
            "homeassistant/sensor/n/o/config",
            big.as_str(),
            "over the 300-byte limit",
        ),
        (
            "homeassistant/sensor/n/o/config",
            "{not json",
            "not a JSON object",
        ),
        (
            "homeassistant/sensor/n/o/config",
            "[1]",
            "not a JSON object",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"name":"x"}"#,
            "`state_topic` is required",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a/#/b"}"#,
            "`+` and `#` must fill a level",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","avty_t":"b","avty":[{"t":"c"}]}"#,
            "are both set",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","avty_mode":"most"}"#,
            "not all, any or latest",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","exp_aft":-1}"#,
            "expire_after",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","val_tpl":"{{ value_json[ }}","dev":{"ids":"d"}}"#,
            "value_template: syntax error",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","dev":{"ids":[{"x":1}]}}"#,
            "device.identifiers",
        ),
        (
            "homeassistant/sensor/n/o/config",
            r#"{"stat_t":"a","dev":{"name":"!!!"}}"#,
            "no value for {device}",
        ),
    ] {
        let out = f.send(topic, payload);
        let got = out.refused.unwrap_or_default();
        assert!(got.contains(want), "{payload}: {got}");
    }
    assert_eq!(f.state.refused, 13);
    assert_eq!(f.state.entity_count(), 0);
    // Not ours: other components, device discovery, other topics under the prefix, HA's status.
    for topic in [
        "homeassistant/light/x/config",
        "homeassistant/device/x/config",
        "homeassistant/status",
        "homeassistant/sensor/x/state",
    ] {
        assert_eq!(f.send(topic, "{").refused, None, "{topic}");
    }
    // The cap on entities.
    f.send("homeassistant/sensor/n/a/config", ok);
    f.send("homeassistant/sensor/n/b/config", ok);
    let out = f.send("homeassistant/sensor/n/c/config", ok);
    assert!(out
        .refused
        .unwrap_or_default()
        .contains("2 entities are kept already"));
    // A changed announcement of a kept entity still goes through.
    assert_eq!(
        f.send(
            "homeassistant/sensor/n/b/config",
            r#"{"stat_t":"b","dev":{"ids":"d"}}"#
        )
        .refused,
        None
    );
}

#[test]
fn hostile_payloads_never_panic() {
    let mut f = feed("");
    f.send("homeassistant/sensor/n/o/config", r#"{"stat_t":"s","val_tpl":"{% for i in range(100000) %}{{ i }}{% endfor %}","dev":{"ids":"d"}}"#);
    let out = f.send("s", "1");
    assert_eq!(out.template_errors, 1);
    assert!(
        f.entity("d", "o").judged.reason.contains("fuel")
            || f.entity("d", "o").judged.reason.contains("longer than")
    );
    for payload in [
        "",
        "\u{0}",
        "\u{202e}",
        "9e999",
        "NaN",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ] {
        f.send("homeassistant/sensor/n/p/config", payload);
        f.send("s", payload);
    }
    let deep = "[".repeat(10_000);
    f.send("homeassistant/sensor/n/q/config", &deep);
    f.send("s", &deep);
    f.send_bytes("s", &[0xff, 0xfe, 0x00], false);
}

#[test]
fn include_exclude_and_host_map() {
    let mut f = feed("include = [\"zigbee2mqtt_*\", \"greenhouse\"]\nexclude = [\"front_*\"]\n[hosts]\nzigbee2mqtt_0x0017880104e45522 = \"weather.example.com\"\n");
    f.load("esphome");
    f.load("zigbee2mqtt");
    f.load("tasmota");
    assert_eq!(
        f.summary(),
        s(&[
            ("greenhouse", "sensors", Green),
            ("weather.example.com", "sensors", Green)
        ])
    );
}

#[test]
fn thresholds_most_specific_wins_with_hits_and_hysteresis() {
    let mut f = feed(concat!(
        "[[threshold]]\nclass = \"temperature\"\nred = \"> 30\"\n",
        "[[threshold]]\nclass = \"temperature\"\ndevice = \"greenhouse\"\nred = \"> 40\"\nhits = 2\nhysteresis = 1\n",
        "[[threshold]]\nentity = \"ESPsensorsoil_*\"\nyellow = \"< 20\"\n",
    ));
    f.load("esphome");
    let temp = "greenhouse/sensor/air_temperature/state";
    let mut colours = Vec::new();
    for v in ["35", "41", "41", "39.5", "38.9"] {
        f.send(temp, v);
        colours.push(f.entity("greenhouse", "Air Temperature").judged.colour);
    }
    assert_eq!(colours, [Green, Green, Red, Red, Red]);
    f.send(temp, "38.9");
    assert_eq!(
        f.entity("greenhouse", "Air Temperature").judged.colour,
        Green
    );
    f.send("greenhouse/sensor/soil_humidity/state", "12");
    assert_eq!(
        f.entity("greenhouse", "Soil Humidity").judged.colour,
        Yellow
    );
}

#[test]
fn expire_after_makes_a_value_stale() {
    let mut f = feed("stale_colour = \"clear\"\n");
    f.load("esphome");
    f.send("greenhouse/sensor/soil_humidity/state", "50");
    f.at += 601;
    let e = f.entity("greenhouse", "Soil Humidity");
    assert_eq!(e.judged.colour, Clear);
    assert!(
        e.judged.reason.starts_with("stale: no value for 10m"),
        "{}",
        e.judged.reason
    );
    f.send("greenhouse/sensor/soil_humidity/state", "50");
    assert_eq!(f.entity("greenhouse", "Soil Humidity").judged.colour, Green);
}

#[test]
fn availability_modes_and_never_seen() {
    let cfg = |mode: &str| {
        format!(
            r#"{{"stat_t":"v","avty_mode":"{mode}","avty":[{{"t":"a1"}},{{"t":"a2","pl_avail":"up","pl_not_avail":"down"}}],"dev":{{"ids":"d","name":"dev"}}}}"#
        )
    };
    for (mode, msgs, want) in [
        ("latest", &[][..], Clear),
        ("latest", &[("a1", "online"), ("a2", "down")][..], Red),
        ("latest", &[("a2", "down"), ("a1", "online")][..], Green),
        ("all", &[("a1", "online")][..], Clear),
        ("all", &[("a1", "online"), ("a2", "up")][..], Green),
        ("all", &[("a1", "online"), ("a2", "down")][..], Red),
        ("any", &[("a1", "offline")][..], Red),
        ("any", &[("a1", "offline"), ("a2", "up")][..], Green),
        ("any", &[("a2", "sideways")][..], Clear),
    ] {
        let mut f = feed("");
        f.send("homeassistant/sensor/n/o/config", &cfg(mode));
        for (t, p) in msgs {
            f.send(t, p);
        }
        f.send("v", "1");
        assert_eq!(f.entity("dev", "o").judged.colour, want, "{mode} {msgs:?}");
    }
}

/// A restarted bridge gets every retained announcement and state again, in any order.
#[test]
fn retained_replay_finds_everything_again() {
    let mut first = feed("[[threshold]]\nclass = \"temperature\"\nred = \"> 20\"\n");
    first.load("esphome");
    let mut again = feed("[[threshold]]\nclass = \"temperature\"\nred = \"> 20\"\n");
    let mut msgs = fixture("esphome");
    msgs.reverse();
    for (topic, payload, retained) in &msgs {
        again.send_bytes(topic, payload, *retained);
    }
    // States before their announcements are not seen (not subscribed yet); the broker replays the
    // retained states when the bridge subscribes, after the announcements.
    for (topic, payload, retained) in msgs.iter().filter(|m| !m.0.ends_with("/config")) {
        again.send_bytes(topic, payload, *retained);
    }
    assert_eq!(first.summary(), again.summary());
    assert_eq!(again.summary(), s(&[("greenhouse", "sensors", Red)]));
    // An unchanged re-announcement changes nothing.
    let out = again.send_bytes(&msgs[msgs.len() - 1].0, &msgs[msgs.len() - 1].1, true);
    assert_eq!(out, Offered::default());
}

#[test]
fn config_errors_name_the_key() {
    for (extra, key) in [
        ("prefix = \"a/#\"\n", "prefix"),
        ("components = [\"light\"]\n", "components[0]"),
        ("include = [\"[\"]\n", "include[0]"),
        ("host = \"bad host {device}\"\n", "host"),
        ("column = \"Sensors\"\n", "column"),
        ("column = \"info\"\n", "column"),
        ("[hosts]\nx = \"a b\"\n", "hosts.x"),
        ("max_entities = 0\n", "max_entities"),
        ("template_fuel = 1\n", "template_fuel"),
        ("[[threshold]]\nred = \"> 1\"\n", "threshold[0].class"),
        (
            "[[threshold]]\nclass = \"t\"\nred = \"> x\"\n",
            "threshold[0].red",
        ),
        ("[[threshold]]\nclass = \"t\"\n", "threshold[0].yellow"),
        (
            "[[threshold]]\nclass = \"t\"\nred = \"> 1\"\nhysteresis = -1.0\n",
            "threshold[0].hysteresis",
        ),
    ] {
        assert_eq!(
            compile(&config(extra)).map(|_| ()).unwrap_err().key,
            key,
            "{extra}"
        );
    }
}
