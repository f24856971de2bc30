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
