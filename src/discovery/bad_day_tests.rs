//! The discovery core on a bad day: refused announcements, hostile payloads and templates, config
//! errors, availability modes, staleness, restarts. The harness is in `tests`.

use super::tests::{config, feed, fixture, s};
use super::*;
use crate::colour::Colour::*;

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
    // Moving the last reader of `a` to `c` drops `a`.
    let out = f.send(
        "homeassistant/sensor/n/a/config",
        r#"{"stat_t":"c","dev":{"ids":"d"}}"#,
    );
    assert_eq!(
        (out.subscribe, out.unsubscribe),
        (vec!["c".to_string()], vec!["a".to_string()])
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

/// Devices that come and go (new identifiers each time) do not pile up: the list stays within
/// `max_entities` + 1, and the kept entities keep their devices.
#[test]
fn device_churn_stays_bounded() {
    let mut f = feed("max_entities = 3\n");
    f.send(
        "homeassistant/sensor/keep/t/config",
        r#"{"stat_t":"keep/t","dev":{"ids":"keeper","name":"Keeper"}}"#,
    );
    for i in 0..200 {
        let cfg = format!(r#"{{"stat_t":"s/{i}","dev":{{"ids":"dev{i}"}}}}"#);
        assert_eq!(
            f.send("homeassistant/sensor/n/o/config", &cfg).refused,
            None
        );
        f.send_bytes("homeassistant/sensor/n/o/config", b"", true);
    }
    assert!(f.state.devices.len() <= 4, "{}", f.state.devices.len());
    f.send("keep/t", "5");
    assert_eq!(f.summary(), s(&[("keeper", "sensors", Green)]));
    // One device announcing ever more identifiers keeps a bounded list.
    for i in 0..200 {
        let cfg = format!(r#"{{"stat_t":"keep/t","dev":{{"ids":["keeper","x{i}"]}}}}"#);
        f.send("homeassistant/sensor/keep/t/config", &cfg);
    }
    assert!(f.state.devices.iter().all(|d| d.identifiers.len() <= 64));
}

/// A fleet announcing one template compiles it once; changed, removed and refused announcements give
/// their uses back, so churn cannot grow the compiled set and a shared template outlives any one user.
#[test]
fn templates_are_shared_and_given_back() {
    let mut f = feed("max_entities = 1000\n");
    let cfg = |i: usize, tpl: &str| {
        format!(
            r#"{{"stat_t":"s/{i}","val_tpl":"{tpl}","avty":[{{"t":"a/{i}","val_tpl":"{{{{ value_json.state }}}}"}}],"dev":{{"ids":"d{i}","name":"dev{i}"}}}}"#
        )
    };
    let topic = |i: usize| format!("homeassistant/sensor/n{i}/t/config");
    for i in 0..500 {
        f.send(&topic(i), &cfg(i, "{{ value_json.t }}"));
    }
    assert_eq!(f.state.templates.len(), 2);
    // 500 state topics read the same way share one pass over their payloads.
    assert_eq!(f.state.scans.len(), 1);
    // One device changes its template; the others keep theirs.
    f.send(&topic(0), &cfg(0, "{{ value_json.t | float * 2 }}"));
    assert_eq!(f.state.templates.len(), 3);
    f.send("s/0", r#"{"t":2}"#);
    f.send("s/1", r#"{"t":2}"#);
    let values: Vec<_> = f
        .state
        .columns(tokio::time::Instant::now(), std::time::SystemTime::now())
        .into_iter()
        .filter(|c| c.host.as_str() == "dev0" || c.host.as_str() == "dev1")
        .map(|c| c.entities[0].value.clone())
        .collect();
    assert_eq!(values, [Some("4".to_string()), Some("2".to_string())]);
    // A refused re-announcement (a syntax error in the availability template) takes no use and keeps
    // the entity as it was.
    let bad = cfg(1, "{{ value_json.t }}").replace("value_json.state", "value_json[");
    assert!(f.send(&topic(1), &bad).refused.is_some());
    assert_eq!(f.state.templates.len(), 3);
    for i in 0..500 {
        f.send_bytes(&topic(i), b"", true);
    }
    assert_eq!(f.state.templates.len(), 0);
    assert_eq!(f.state.scans.len(), 0);
    assert_eq!(f.state.entity_count(), 0);
}

/// Entities sharing a state topic have their `{{ value_json.a.b }}` values selected in one pass over
/// each payload; what that pass cannot print (a missing key, an array, a payload that is not JSON) goes
/// to the engine, so every entity reads exactly what its template alone would.
#[test]
fn one_pass_over_a_shared_topic_reads_as_each_template_alone() {
    let mut f = feed("max_entities = 100\n");
    let templates = [
        ("a", "{{ value_json.t }}"),
        ("b", "{{ value_json['t'] }}"),
        ("c", "{{ value_json.o.v }}"),
        ("d", "{{ value_json.t | float * 2 }}"),
        ("e", "{{ value_json.l }}"),
        ("g", "{{ value_json.missing }}"),
    ];
    for (id, tpl) in templates {
        let cfg = format!(
            r#"{{"name":"{id}","stat_t":"s/shared","val_tpl":"{tpl}","dev":{{"ids":"d","name":"dev"}}}}"#
        );
        assert_eq!(
            f.send(&format!("homeassistant/sensor/n/{id}/config"), &cfg)
                .refused,
            None
        );
    }
    let value = |f: &super::tests::Feed, id: &str| f.entity("dev", id).value;
    // The last of duplicate members wins, as in the parsed document.
    f.send("s/shared", r#"{"t":1.5,"o":{"v":"x"},"l":[1,2],"t":2.5}"#);
    let got: Vec<Option<String>> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| value(&f, id))
        .collect();
    let want = ["2.5", "2.5", "x", "5", "[1, 2]"].map(|s| Some(s.to_string()));
    assert_eq!(got, want);
    // A missing member prints "": no value, as HA ignores an empty result.
    assert_eq!(value(&f, "g"), None);
    // Not JSON: every template fails in the engine, with its reason, and keeps its last value.
    assert_eq!(f.send("s/shared", "not json").template_errors, 6);
    assert_eq!(value(&f, "a").as_deref(), Some("2.5"));
    assert!(f
        .entity("dev", "a")
        .judged
        .reason
        .contains("template failed"));
    // An entity leaving the topic leaves the others' pass intact.
    f.send_bytes("homeassistant/sensor/n/b/config", b"", true);
    f.send("s/shared", r#"{"t":7,"o":{"v":"y"}}"#);
    assert_eq!(value(&f, "a").as_deref(), Some("7"));
    assert_eq!(value(&f, "c").as_deref(), Some("y"));
}
