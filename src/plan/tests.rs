use super::*;
use crate::config::fixtures;
use crate::config::{Config, ConfigError};
use std::path::Path;

const BROKER: &str = "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\n";

fn parse(text: &str) -> Result<Plan, ConfigError> {
    Plan::compile(&Config::from_str_named(text, Path::new("bridge.toml"))?)
}

fn located(text: &str) -> (usize, String, String) {
    let e = parse(text).expect_err("config should be rejected");
    let l = e.located().expect("located error");
    (l.line, l.key.clone(), e.to_string())
}

/// Rule tests: every bad key is reported with file, line and key.
#[test]
fn rule_errors_name_line_and_key() {
    let rule = |extra_test: &str, value: &str| {
        format!(
            "{BROKER}\n[[test]]\nbroker = \"local\"\ntopic = \"sensors/{{host}}/env\"\nhost = \"{{host}}\"\ntest = \"env\"\n{extra_test}\n  [[test.value]]\n  name = \"t\"\n{value}\n"
        )
    };
    // (config, line, key, message fragment)
    let cases = [
        (rule("", "  path = \"$.t\""), None, "", ""),
        (
            rule("", "  yellow = \"> warm\""),
            Some(13),
            "test[0].value[0].yellow",
            "not a number",
        ),
        (
            rule("", "  red = \"28\""),
            Some(13),
            "test[0].value[0].red",
            "is not a threshold",
        ),
        (
            rule("", "  path = \"temperature\""),
            Some(13),
            "test[0].value[0].path",
            "not a JSONPath",
        ),
        (
            rule("", "  hits = 0"),
            Some(13),
            "test[0].value[0].hits",
            "1 to 1000",
        ),
        (
            rule("", "  [[test.value]]\n  name = \"t\""),
            Some(14),
            "test[0].value[1].name",
            "defined twice",
        ),
        (
            rule("expect = [\"a b\"]", ""),
            Some(10),
            "test[0].expect",
            "host name",
        ),
        (
            rule("", "").replace(
                "topic = \"sensors/{host}/env\"",
                "topic = \"sensors/#/env\"",
            ),
            Some(7),
            "test[0].topic",
            "last level",
        ),
        (
            rule("", "").replace("test = \"env\"", "test = \"{room}\""),
            Some(9),
            "test[0].test",
            "{room} is not a capture",
        ),
        (
            rule("", "").replace("host = \"{host}\"", "host = \"x-{host\""),
            Some(8),
            "test[0].host",
            "without",
        ),
        (
            rule("", "  name = \"Bad Name\"").replace("  name = \"t\"\n", ""),
            Some(12),
            "test[0].value[0].name",
            "may contain only",
        ),
    ];
    for (text, line, key, msg) in cases {
        match line {
            None => {
                parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            Some(line) => {
                let (l, k, m) = located(&text);
                assert_eq!((l, k.as_str()), (line, key), "{m}\n{text}");
                assert!(m.contains(msg), "{m}");
                assert!(m.starts_with("bridge.toml:"), "{m}");
            }
        }
    }
}

/// A password file is read into the plan (its first line); one that cannot be read is an error that
/// names the file, the line and the key, so `check` catches it.
#[test]
fn password_files_are_read_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\nignored\n").unwrap();
    let text = |f: &Path| {
        format!(
            "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\nusername = \"u\"\npassword_file = {:?}\n",
            f.display().to_string()
        )
    };
    let plan = parse(&text(&file)).unwrap();
    let c = plan.brokers[0].credentials.as_ref().unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "s3cret"));
    assert!(!format!("{c:?}").contains("s3cret"), "Debug masks it");
    let (line, key, msg) = located(&text(&dir.path().join("missing")));
    assert_eq!(
        (line, key.as_str()),
        (5, "broker[0].password_file"),
        "{msg}"
    );
    assert!(msg.contains("cannot read"), "{msg}");
}

/// Slots are the non-rule tests in config order, each tied to its broker by index; the exact topics
/// are routed in config order, the highest QoS winning.
#[test]
fn tests_rules_and_routing() {
    let text = format!(
        "{BROKER}[[broker]]\nname = \"other\"\nurl = \"mqtt://127.0.0.1:1884\"\n\
         [[test]]\nbroker = \"other\"\nhost = \"a\"\ntest = \"t\"\ntopics = [\"x\", \"y\"]\n\
         [[test]]\nbroker = \"local\"\ntopic = \"s/{{host}}\"\nhost = \"{{host}}\"\ntest = \"env\"\n  [[test.value]]\n  name = \"v\"\n  rrd = true\n\
         [[test]]\nbroker = \"other\"\nhost = \"b\"\ntest = \"t\"\nqos = 2\ntopics = [\"y\"]\n"
    );
    let plan = parse(&text).unwrap();
    assert_eq!(plan.test_count(), 3);
    let slots: Vec<(usize, usize)> = plan.tests.iter().map(|t| (t.index, t.broker)).collect();
    assert_eq!(slots, [(0, 1), (2, 1)]);
    assert_eq!((plan.rules[0].index, plan.rules[0].broker), (1, 0));
    let other = &plan.routing[1];
    let names: Vec<(&str, rumqttc::QoS)> = other.exact.iter().map(|t| (&*t.name, t.qos)).collect();
    assert_eq!(
        names,
        [
            ("x", rumqttc::QoS::AtMostOnce),
            ("y", rumqttc::QoS::ExactlyOnce)
        ]
    );
    assert_eq!(other.exact[1].feeds.as_slice(), [(0, 1), (1, 0)]);
    assert_eq!(
        plan.routing[0].filter_subscriptions,
        [("s/+".to_string(), rumqttc::QoS::AtMostOnce)]
    );
    let rrd = plan.rrd.as_ref().expect("a value with rrd = true");
    assert_eq!(rrd.rule_rrds, ["env.v"]);
    assert!(!rrd.broker_stats);
    assert_eq!(plan.web.brokers, ["local", "other"]);
    assert_eq!(plan.web.tests.len(), 3);
    assert!(parse(BROKER).unwrap().rrd.is_none(), "no RRDs, no rrd_dir");
    let _ = fixtures::TOPICS_AND_BROKER_STATS;
}
