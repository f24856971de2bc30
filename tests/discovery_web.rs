//! The devices Home Assistant discovery found, on the dashboard and in `/api/v1/devices`: a real
//! mosquitto with the fixtures' announcements (tests/fixtures/discovery/), a real xymond, the bridge
//! in-process with its web server; schemathesis on the API with devices in it, headless Chromium on the
//! page.

mod common;

use common::bridge::{config, RunningBridge};
use common::web::{get, ChromeDriver};
use common::{free_port, wait_until, Mosquitto, Xymond};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const XSS: &str = "<script>alert(1)</script>";

struct Setup {
    mqtt: Mosquitto,
    _xymond: Xymond,
    bridge: RunningBridge,
    web: u16,
}

/// Publishes every message of a fixture, retained.
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

/// A device whose every string is markup, and a state that is too.
fn publish_hostile(mqtt: &Mosquitto) {
    let config = serde_json::json!({
        "name": XSS,
        "state_topic": "evil/state",
        "unit_of_measurement": "<i>u</i>",
        "device": {"identifiers": ["evil1"], "name": "evil <b>device</b>", "model": XSS,
                   "manufacturer": "\"quoted\" & 'single'"}
    });
    mqtt.publish(
        "homeassistant/sensor/evil/thing/config",
        &config.to_string(),
        true,
    );
    mqtt.publish("evil/state", XSS, true);
}

fn setup() -> Setup {
    let xymond = Xymond::start(&["weather_sensor", "front_door", "garage"]);
    let mqtt = Mosquitto::start();
    for f in ["zigbee2mqtt", "tasmota"] {
        publish_fixture(&mqtt, f);
    }
    publish_hostile(&mqtt);
    let web = free_port();
    let extra = format!(
        "[web]\nlisten = \"127.0.0.1:{web}\"\n\n[[discovery]]\nbroker = \"local\"\n\n\
         [[discovery.threshold]]\nclass = \"temperature\"\nyellow = \"> 28\"\nred = \"> 30\"\n"
    );
    let toml = config(&xymond, &[("local", &mqtt)], &extra);
    let bridge = RunningBridge::start(&toml);
    wait_until(WAIT, "web server", || common::port_is_open(web));
    Setup {
        mqtt,
        _xymond: xymond,
        bridge,
        web,
    }
}

fn devices_until(
    web: u16,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(WAIT, what, || {
        let r = get(web, "/api/v1/devices");
        assert_eq!(r.status, 200);
        last = r.json();
        pred(&last)
    });
    last
}

fn device<'a>(all: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    all.as_array()?.iter().find(|d| d["name"] == name)
}

fn entity<'a>(d: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    d["entities"].as_array()?.iter().find(|e| e["name"] == name)
}

/// The API lists each device with its model, maker, software, host and columns, availability and
/// since when, and each entity's last value, unit, class, colour and reason; it follows an offline
/// device and a value over its class threshold; then schemathesis finds no 5xx and no schema violation.
#[test]
fn api_lists_devices_entities_and_availability() {
    let s = setup();
    let all = devices_until(s.web, "the fixtures' devices", |v| {
        device(v, "weather_sensor")
            .and_then(|d| entity(d, "humidity"))
            .is_some_and(|e| e["value"] == "41.6")
            && device(v, "Garage")
                .and_then(|d| entity(d, "Garage BME280 Pressure"))
                .is_some_and(|e| e["value"] == "1002.6")
    });
    let w = device(&all, "weather_sensor").unwrap();
    assert_eq!(w["host"], "weather_sensor");
    assert_eq!(w["manufacturer"], "Aqara");
    assert_eq!(w["model"], "Temperature and humidity sensor");
    assert_eq!(w["identifiers"][0], "zigbee2mqtt_0x0017880104e45522", "{w}");
    assert_eq!(w["columns"][0]["column"], "sensors");
    assert_eq!(w["columns"][0]["colour"], "green");
    assert_eq!(w["availability"]["state"], "online", "{w}");
    assert!(w["availability"]["since"].is_string(), "{w}");
    let h = entity(w, "humidity").unwrap();
    assert_eq!(h["unit"], "%");
    assert_eq!(h["device_class"], "humidity");
    assert_eq!(h["component"], "sensor");
    assert_eq!(h["colour"], "green");
    assert_eq!(h["column"], "sensors");
    assert!(h["updated_at"].is_string(), "{h}");
    let t = entity(w, "temperature").unwrap();
    assert!(
        t["reason"].as_str().unwrap().contains("not red > 30"),
        "{t}"
    );

    let g = device(&all, "Garage").unwrap();
    assert_eq!(g["sw_version"], "14.3.0(tasmota)", "{g}");

    // The hostile device: its strings come back as they were sent (JSON-escaped, not altered).
    let e = all
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "evil <b>device</b>")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(e["model"], XSS);
    assert_eq!(entity(e, XSS).unwrap()["value"], XSS);

    // A value over the class threshold, and the Tasmota device going offline.
    s.mqtt.publish(
        "zigbee2mqtt/weather_sensor",
        r#"{"temperature":31.2,"humidity":40}"#,
        true,
    );
    s.mqtt.publish("tele/tasmota_A1B2C3/LWT", "Offline", true);
    let all = devices_until(s.web, "red and offline", |v| {
        device(v, "weather_sensor").is_some_and(|d| d["columns"][0]["colour"] == "red")
            && device(v, "Garage").is_some_and(|d| d["availability"]["state"] == "offline")
    });
    let t = entity(device(&all, "weather_sensor").unwrap(), "temperature").unwrap();
    assert_eq!(t["value"], "31.2");
    assert_eq!(t["colour"], "red");
    let g = device(&all, "Garage").unwrap();
    assert!(g["availability"]["since"].is_string(), "{g}");
    assert!(
        entity(g, "Garage BME280 Pressure").unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("offline since"),
        "{g}"
    );

    schemathesis(s.web);
    s.bridge.stop();
}

fn schemathesis(web: u16) {
    let bin = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let out = Command::new(&bin)
        .args([
            "run",
            &format!("http://127.0.0.1:{web}/api/v1/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--include-path",
            "/api/v1/devices",
            "--max-examples",
            "5",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} ({e}); run-tests installs it"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    // `--include-path` selected the one operation, and it was run.
    assert!(
        text.contains("Selected: 1/") && text.contains("Tested: 1"),
        "devices not tested:\n{text}"
    );
}

/// Headless Chromium: the devices page lists every device with its entities, values and units, shows
/// the hostile device's markup as text (no script runs, no element from it), and the header links to it.
#[test]
fn browser_shows_devices_and_escapes_their_strings() {
    let s = setup();
    devices_until(s.web, "devices listed", |v| {
        device(v, "weather_sensor")
            .and_then(|d| entity(d, "humidity"))
            .is_some_and(|e| e["value"] == "41.6")
            && v.to_string().contains("evil <b>device</b>")
    });
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let wd = driver.session(profile.path());
    wd.goto(&format!("http://127.0.0.1:{}/", s.web));
    assert_eq!(
        wd.eval("return document.querySelector('nav a[href=\"/devices\"]').textContent"),
        "Devices"
    );
    wd.goto(&format!("http://127.0.0.1:{}/devices", s.web));
    let headings = wd.eval(
        "return Array.from(document.querySelectorAll('section.device h2')).map(h => h.textContent)",
    );
    let headings = headings.to_string();
    assert!(headings.contains("weather_sensor"), "{headings}");
    assert!(headings.contains("Garage"), "{headings}");
    assert!(headings.contains("evil <b>device</b>"), "{headings}");
    let value = wd.eval(
        "for (const tr of document.querySelectorAll('tr[data-entity]')) \
           if (tr.children[1].textContent === 'humidity') return tr.querySelector('td.value').textContent; \
         return null;",
    );
    assert_eq!(value, "41.6 %");
    let evil = wd.eval(
        "for (const tr of document.querySelectorAll('tr[data-entity]')) \
           if (tr.dataset.entity === 'sensor/evil/thing') return tr.querySelector('td.value').textContent; \
         return null;",
    );
    assert_eq!(evil, format!("{XSS} <i>u</i>"));
    assert_eq!(
        wd.eval("return document.querySelectorAll('script').length"),
        1,
        "only app.js"
    );
    assert_eq!(
        wd.eval("return document.querySelectorAll('main b, main i, main img').length"),
        0
    );
    let model =
        wd.eval("return Array.from(document.querySelectorAll('.model')).map(m => m.textContent)");
    assert!(model.to_string().contains("alert(1)"), "{model}");
    std::fs::write(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/devices.png"),
        wd.screenshot(),
    )
    .unwrap();
    s.bridge.stop();
}
