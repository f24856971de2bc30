//! `[[discovery]]` in a config file: accepted with its defaults, and every mistake reported with the
//! file, the line and the key, as the rest of the config is.

use std::path::Path;
use xymon_mqtt::config::Config;
use xymon_mqtt::plan::Plan;

const BROKER: &str = "[[broker]]\nname = \"home\"\nurl = \"mqtt://127.0.0.1:1883\"\n\n";

fn compile(discovery: &str) -> Result<Plan, String> {
    let text = format!("{BROKER}{discovery}");
    let config =
        Config::from_str_named(&text, Path::new("site.toml")).map_err(|e| e.to_string())?;
    Plan::compile(&config).map_err(|e| e.to_string())
}

#[test]
fn a_full_block_compiles() {
    let plan = compile(
        r#"[[discovery]]
broker = "home"
prefix = "homeassistant"
components = ["sensor", "binary_sensor"]
include = ["zigbee2mqtt_*", "greenhouse"]
exclude = ["*_bridge_*"]
host = "{device}"
column = "{device_class}"
offline_colour = "red"
stale_colour = "clear"
hosts = { "a4cf12b7c3d9" = "greenhouse.example.com" }
on_colour = { door = "yellow", moisture = "red" }

[[discovery.threshold]]
class = "temperature"
yellow = "> 28"
red = "> 32"
hits = 2
hysteresis = 0.5

[[discovery.threshold]]
class = "temperature"
device = "freezer*"
red = "> -15"
"#,
    )
    .unwrap();
    assert_eq!(plan.discovery.len(), 1);
    let (broker, d) = &plan.discovery[0];
    assert_eq!(*broker, 0);
    assert_eq!(d.prefix, "homeassistant");
    assert_eq!(d.policy.thresholds.len(), 2);
    // Defaults.
    let plan = compile("[[discovery]]\nbroker = \"home\"\n").unwrap();
    let d = &plan.discovery[0].1;
    assert_eq!(
        (d.prefix.as_str(), d.components.len(), d.max_entities),
        ("homeassistant", 2, 10_000)
    );
}

#[test]
fn mistakes_name_file_line_and_key() {
    for (block, want) in [
        (
            "[[discovery]]\nbroker = \"nope\"\n",
            "site.toml:6:1: key `discovery[0].broker`: no [[broker]] is named \"nope\"",
        ),
        (
            "[[discovery]]\nbroker = \"home\"\ncolumn = \"Sensors\"\n",
            "site.toml:7:1: key `discovery[0].column`",
        ),
        (
            "[[discovery]]\nbroker = \"home\"\n\n[[discovery.threshold]]\nclass = \"humidity\"\nred = \"over 9000\"\n",
            "site.toml:10:1: key `discovery[0].threshold[0].red`: \"over 9000\" is not a threshold",
        ),
        (
            "[[discovery]]\nbroker = \"home\"\npefix = \"ha\"\n",
            "site.toml:7:1: key `discovery[0].pefix`: unknown field `pefix`",
        ),
    ] {
        let got = compile(block).map(|_| ()).unwrap_err();
        assert!(got.contains(want), "want {want:?}\n got {got:?}");
    }
}

/// `explain` on an announcement: the entity's host, column, topics and the status it would make; on a
/// bad one, the reason it is refused.
#[test]
fn explain_shows_what_an_announcement_makes() {
    let plan = compile(
        "[[discovery]]\nbroker = \"home\"\nexclude = [\"garage*\"]\n\n[[discovery.threshold]]\nclass = \"temperature\"\nred = \"> 30\"\n",
    )
    .unwrap();
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let explain = |topic: &str, payload: &str| {
        xymon_mqtt::cli::explain::explain(&plan, topic, payload.as_bytes(), now)
    };
    let got = explain(
        "homeassistant/sensor/greenhouse/air_temperature/config",
        r#"{"dev_cla":"temperature","unit_of_meas":"°C","name":"Air Temperature","stat_t":"greenhouse/sensor/air_temperature/state","avty_t":"greenhouse/status","dev":{"ids":"a4cf12b7c3d9","name":"Greenhouse"}}"#,
    );
    assert!(
        got.contains("discovery[0] prefix homeassistant (broker home): ANNOUNCEMENT"),
        "{got}"
    );
    assert!(
        got.contains("subscribes: greenhouse/status, greenhouse/sensor/air_temperature/state"),
        "{got}"
    );
    assert!(got.contains("host greenhouse column sensors:"), "{got}");
    assert!(got.contains("status+7 greenhouse.sensors clear"), "{got}");
    assert!(
        got.contains("&clear Air Temperature [temperature]: availability not reported yet"),
        "{got}"
    );
    assert!(got.contains("Result: 1 test(s) match."), "{got}");
    let got = explain(
        "homeassistant/sensor/n/o/config",
        r#"{"name":"no state topic"}"#,
    );
    assert!(
        got.contains("REFUSED: homeassistant/sensor/n/o/config: key `state_topic` is required"),
        "{got}"
    );
    let got = explain("homeassistant/sensor/n/o/config", "");
    assert!(got.contains("an empty config: removes the entity"), "{got}");
    let got = explain("homeassistant/light/n/o/config", "{}");
    assert!(
        got.contains("not an announcement this block reads"),
        "{got}"
    );
    assert!(got.contains("Result: no test matches"), "{got}");
    let got = explain(
        "homeassistant/sensor/garage/t/config",
        r#"{"stat_t":"x","dev":{"name":"garage"}}"#,
    );
    assert!(
        got.contains("a device left out by include/exclude"),
        "{got}"
    );
}

/// `explain --announce CONFIG=PAYLOAD TOPIC PAYLOAD`: with the announcements read first, a state topic
/// shows the entity, the template's result with unit and class, the colour and the status; a template
/// that fails says so; an availability message shows the device offline; without the announcement the
/// topic is unknown. The fixture's retained messages (announcements, availability, earlier states) are
/// all given with `--announce`, as a session reads them at its start. Through the built binary, as an admin runs it.
#[test]
fn explain_a_state_topic_with_its_announcements() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("site.toml");
    std::fs::write(
        &config,
        format!(
            "{BROKER}[[discovery]]\nbroker = \"home\"\n\n[[discovery.threshold]]\nclass = \"temperature\"\nyellow = \"> 28\"\nred = \"> 30\"\n"
        ),
    )
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/discovery/zigbee2mqtt.json").unwrap(),
    )
    .unwrap();
    let announce: Vec<String> = fixture["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let payload = match &m["payload"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}={payload}", m["topic"].as_str().unwrap())
        })
        .collect();
    let run = |extra: &[&str], topic: &str, payload: &str| {
        let mut args = vec!["explain", "--config", config.to_str().unwrap()];
        for a in &announce {
            if extra.contains(&"all") {
                args.extend(["--announce", a.as_str()]);
            }
        }
        args.extend([topic, payload]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xymon-mqtt"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let got = run(
        &["all"],
        "zigbee2mqtt/weather_sensor",
        r#"{"temperature":31.5,"humidity":41.6,"linkquality":120}"#,
    );
    assert!(
        got.contains("discovery[0] prefix homeassistant (broker home): STATE of 2 entity(ies)"),
        "{got}"
    );
    assert!(
        got.contains("entity sensor/0x0017880104e45522/temperature (\"temperature\") on host weather_sensor column sensors:"),
        "{got}"
    );
    assert!(got.contains("    value: 31.5 °C [temperature]\n"), "{got}");
    assert!(got.contains("    colour: red (red: > 30"), "{got}");
    assert!(got.contains("    value: 41.6 % [humidity]\n"), "{got}");
    assert!(got.contains("status+7 weather_sensor.sensors red"), "{got}");
    assert!(got.contains("Result: 1 test(s) match."), "{got}");

    // A payload the value_json template cannot read.
    let got = run(&["all"], "zigbee2mqtt/weather_sensor", "not json");
    assert!(got.contains("template failed on this message"), "{got}");
    assert!(got.contains("colour: yellow (template failed:"), "{got}");

    // Availability: the bridge says offline.
    let got = run(
        &["all"],
        "zigbee2mqtt/bridge/state",
        r#"{"state":"offline"}"#,
    );
    assert!(got.contains("colour: red (offline since"), "{got}");

    // Without the announcements, nothing reads the state topic.
    let got = run(&[], "zigbee2mqtt/weather_sensor", "{}");
    assert!(got.contains("Result: no test matches"), "{got}");
    // A malformed --announce is a usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xymon-mqtt"))
        .args([
            "explain",
            "--config",
            config.to_str().unwrap(),
            "--announce",
            "no-equals",
            "t",
            "p",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONFIG_TOPIC=PAYLOAD"));
}
