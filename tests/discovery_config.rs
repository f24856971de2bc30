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
