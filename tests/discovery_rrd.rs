//! RRDs of discovered sensors: a real mosquitto with the Zigbee2MQTT fixture's announcements, a real
//! xymond, the bridge in-process writing through librrd; read back with the real rrdtool. And the
//! graph definitions `xymon-config` prints for them.

mod common;

use common::bridge::{config, RunningBridge};
use common::rrd::rrdtool;
use common::{wait_until, Mosquitto, Xymond};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

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

/// `ds[value].last_ds` of an RRD file, once it exists.
fn last_ds(file: &Path) -> Option<String> {
    if !file.exists() {
        return None;
    }
    let info = rrdtool(&["info", file.to_str().unwrap()]);
    info.lines()
        .find_map(|l| l.strip_prefix("ds[value].last_ds = "))
        .map(|v| v.trim_matches('"').to_string())
}

/// `rrd_classes = ["temperature"]`: the temperature sensor's values go to
/// `<host>/sensors.<object_id>.rrd` in the `value` layout, each new value in turn; the humidity sensor
/// of the same device gets no file, nor does the binary contact sensor.
#[test]
fn a_discovered_temperature_goes_to_its_rrd_and_other_classes_do_not() {
    let xymond = Xymond::start(&["weather_sensor", "front_door"]);
    let mqtt = Mosquitto::start();
    publish_fixture(&mqtt, "zigbee2mqtt");
    let toml = config(
        &xymond,
        &[("local", &mqtt)],
        "[[discovery]]\nbroker = \"local\"\nrrd_classes = [\"temperature\"]\n",
    );
    let bridge = RunningBridge::start(&toml);
    let host_dir = xymond.dir().join("rrd/weather_sensor");
    let file = host_dir.join("sensors.temperature.rrd");
    wait_until(WAIT, "the retained temperature in its RRD", || {
        last_ds(&file).as_deref() == Some("21.3")
    });
    let info = rrdtool(&["info", file.to_str().unwrap()]);
    assert!(info.contains("ds[value].type = \"GAUGE\""), "{info}");

    // A later value (a later second, so the writer does not fold it into the first update).
    std::thread::sleep(Duration::from_millis(1100));
    mqtt.publish(
        "zigbee2mqtt/weather_sensor",
        r#"{"temperature":23.25,"humidity":40,"linkquality":120}"#,
        true,
    );
    wait_until(WAIT, "the new temperature in its RRD", || {
        last_ds(&file).as_deref() == Some("23.25")
    });
    let mut names: Vec<String> = std::fs::read_dir(&host_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["sensors.temperature.rrd"]);
    assert!(
        !xymond.dir().join("rrd/front_door").exists(),
        "a binary_sensor got an RRD"
    );
    bridge.stop();
}

/// `xymon-config` names the column for xymond (TEST2RRD, GRAPHS) and gives it a graph with a line per
/// discovered file; with `{device_class}` columns, one per class in `rrd_classes` (and a warning for
/// `temperature`, an xymond_rrd handler id).
#[test]
fn xymon_config_prints_graphs_for_discovered_columns() {
    use xymon_mqtt::cli::xymon_config::{generate, graphs_part};
    use xymon_mqtt::config::Config;
    use xymon_mqtt::plan::Plan;
    let plan = |extra: &str| {
        let toml = format!(
            "[[broker]]\nname = \"l\"\nurl = \"mqtt://127.0.0.1:1\"\n\
             [[discovery]]\nbroker = \"l\"\n{extra}"
        );
        Plan::compile(&Config::from_str_named(&toml, Path::new("t.toml")).unwrap()).unwrap()
    };
    let text = generate(&plan("rrd = true\n"));
    assert!(text.contains("TEST2RRD+=\",sensors=sensors\""), "{text}");
    assert!(text.contains("GRAPHS+=\",sensors\""), "{text}");
    assert!(
        text.contains("[sensors]\n\tFNPATTERN ^sensors\\.(.+)\\.rrd$\n"),
        "{text}"
    );
    assert!(
        text.contains("\tDEF:v@RRDIDX@=@RRDFN@:value:AVERAGE\n"),
        "{text}"
    );
    assert!(
        text.contains("/etc/xymon/graphs.d/xymon-mqtt-discovery.cfg"),
        "{text}"
    );
    // The dashboard's part (rule graphs only) leaves them out.
    assert_eq!(graphs_part(&plan("rrd = true\n")), "");

    let text = generate(&plan(
        "column = \"{device_class}\"\nrrd_classes = [\"temperature\", \"humidity\"]\n",
    ));
    assert!(text.contains("TEST2RRD+=\",humidity=humidity\""), "{text}");
    assert!(
        text.contains("# WARNING: \"temperature\" is an xymond_rrd handler id"),
        "{text}"
    );

    let text = generate(&plan(""));
    assert!(text.contains("nothing to install"), "{text}");
}
