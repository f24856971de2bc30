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

/// Every other file a broker or the web names is read by the plan: a missing or unusable CA,
/// certificate, key or token file is an error with file, line and key. (Valid certificates are made
/// with `openssl` by the TLS tests, tests/broker_tls.rs and tests/cli.rs.)
#[test]
fn tls_and_token_files_are_read_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let tls = |keys: &str| {
        format!("[[broker]]\nname = \"b\"\nurl = \"mqtts://broker.example:8883\"\n{keys}\n")
    };
    let cases = [
        (
            tls(&format!("ca_file = {:?}", missing.display().to_string())),
            4,
            "broker[0].ca_file",
            "cannot read",
        ),
        (
            tls(&format!("ca_file = {:?}", garbage.display().to_string())),
            4,
            "broker[0].ca_file",
            "holds no PEM certificate",
        ),
        (
            tls(&format!(
                "client_cert_file = {:?}\nclient_key_file = {:?}",
                missing.display().to_string(),
                garbage.display().to_string()
            )),
            4,
            "broker[0].client_cert_file",
            "cannot read",
        ),
        (
            format!(
                "[web]\ntoken_file = {:?}\n{BROKER}",
                missing.display().to_string()
            ),
            2,
            "web.token_file",
            "cannot read",
        ),
    ];
    for (text, line, key, says) in cases {
        let (l, k, msg) = located(&text);
        assert_eq!((l, k.as_str()), (line, key), "{msg}");
        assert!(
            msg.starts_with("bridge.toml:") && msg.contains(says),
            "{msg}"
        );
    }
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let (_, key, msg) = located(&format!(
        "[web]\ntoken_file = {:?}\n{BROKER}",
        empty.display().to_string()
    ));
    assert_eq!(key, "web.token_file");
    assert!(msg.contains("is empty"), "{msg}");
}

/// A clean session's client id holds the process id; a kept session's is stable (host and broker
/// name), so a restarted bridge finds its session; `client_id` wins over both. MQTT 5 may send a
/// password without a user name.
#[test]
fn client_ids_and_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "p\n").unwrap();
    let text = format!(
        "{BROKER}\n[[broker]]\nname = \"kept\"\nurl = \"mqtt://h\"\nsession_expiry = \"1h\"\npassword_file = {:?}\n\
         [[broker]]\nname = \"own\"\nurl = \"mqtts://h\"\nclient_id = \"mine\"\nsession_expiry = \"0s\"\nprotocol = \"3.1.1\"\n",
        pw.display().to_string()
    );
    let plan = parse(&text).unwrap();
    let [clean, kept, own] = &plan.brokers[..] else {
        panic!("three brokers");
    };
    assert_eq!(
        clean.client_id,
        format!("xymon-mqtt-local-{}", std::process::id())
    );
    assert_eq!(clean.session_expiry, None);
    assert_eq!(clean.protocol, crate::config::Protocol::V5);
    assert!(clean.tls.is_none());
    assert!(kept.client_id.starts_with("xymon-mqtt-") && kept.client_id.ends_with("-kept"));
    assert!(!kept.client_id.contains(&std::process::id().to_string()));
    assert_eq!(
        parse(&text).unwrap().brokers[1].client_id,
        kept.client_id,
        "stable"
    );
    assert_eq!(
        kept.session_expiry,
        Some(std::time::Duration::from_secs(3600))
    );
    let c = kept.credentials.as_ref().unwrap();
    assert_eq!((c.username.as_str(), c.password.as_str()), ("", "p"));
    assert_eq!((own.client_id.as_str(), own.session_expiry), ("mine", None));
    assert_eq!(own.protocol, crate::config::Protocol::V311);
    assert_eq!(own.url.port(), 8883);
    assert!(own.tls.is_some(), "the system's CA certificates");
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

/// A secret file is read only as far as its first line, and only when it is a regular file: a device
/// or FIFO named by mistake is refused (it could block or never end), and so is a file whose first line
/// does not end within 64 KiB.
#[test]
fn secret_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\r\nignored\n").unwrap();
    assert_eq!(super::first_line(&file).unwrap(), "s3cret");
    std::fs::write(&file, "no line end").unwrap();
    assert_eq!(super::first_line(&file).unwrap(), "no line end");
    let zero = super::first_line(Path::new("/dev/zero")).unwrap_err();
    assert!(
        zero.contains("/dev/zero") && zero.contains("not a regular file"),
        "{zero}"
    );
    std::fs::write(&file, vec![b'x'; 100 * 1024]).unwrap();
    let long = super::first_line(&file).unwrap_err();
    assert!(long.contains("longer than 64 KiB"), "{long}");
    let mut long_line_then_more = vec![b'x'; 70 * 1024];
    long_line_then_more.push(b'\n');
    std::fs::write(&file, long_line_then_more).unwrap();
    assert!(super::first_line(&file).is_err());
    std::fs::write(&file, [0xff, 0xfe, b'\n']).unwrap();
    assert!(super::first_line(&file).unwrap_err().contains("UTF-8"));
}
