use super::schema::{DEFAULT_RRD_DIR, DEFAULT_WEB_LISTEN};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_named(text, Path::new("bridge.toml"))
}

fn located(text: &str) -> (usize, String, String) {
    let e = parse(text).expect_err("config should be rejected");
    let l = e.located().expect("located error");
    (l.line, l.key.clone(), e.to_string())
}

const BROKER: &str = "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\n";

#[test]
fn example_config_parses() {
    let c = parse(EXAMPLE).expect("example config");
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.tests.len(), 2);
    let stats = c.tests[0].get_ref();
    assert_eq!(stats.kind, TestKind::BrokerStats);
    assert_eq!(stats.mode(), Mode::Periodic);
    assert_eq!(stats.interval(), Duration::from_secs(300));
    assert_eq!(stats.topic_list().len(), 5);
    let env = c.tests[1].get_ref();
    assert_eq!(env.mode(), Mode::Continuous);
    assert_eq!(env.window, Duration::from_millis(500));
    assert_eq!(
        env.topic_list().iter().map(|t| &**t).collect::<Vec<_>>(),
        [
            "sensors/greenhouse/temperature",
            "sensors/greenhouse/humidity"
        ]
    );
    assert_eq!(c.web.listen.to_string(), "127.0.0.1:8585");
    assert_eq!(c.xymon.server, "127.0.0.1:1984");
}

#[test]
fn defaults_parse() {
    let c = parse(BROKER).unwrap();
    assert_eq!(c.web.listen.to_string(), DEFAULT_WEB_LISTEN);
    assert_eq!(c.web.header_timeout, Duration::from_secs(10));
    assert_eq!(c.web.max_connections, 256);
    assert_eq!(c.xymon.rrd_dir, PathBuf::from(DEFAULT_RRD_DIR));
    let url = |s: &str| BrokerUrl::try_from(s.to_string()).unwrap();
    let local = url("mqtt://127.0.0.1");
    assert_eq!((local.host(), local.port()), ("127.0.0.1", 1883));
    let v6 = url("mqtt://[::1]:1884");
    assert_eq!((v6.host(), v6.port()), ("::1", 1884));
}

/// The largest values the limits allow are taken (the cases above check the first ones refused).
#[test]
fn limits_take_their_largest_values() {
    let text = "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\nkeep_alive = \"65535s\"\nreconnect_max = \"1year\"\n\
         [web]\nmax_connections = 65536\n\
         [[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\nmode = \"periodic\"\ninterval = \"1year\"\ntopics = [\"a\"]\n";
    let c = parse(text).unwrap();
    let year = Duration::from_secs(31_557_600);
    assert_eq!(
        c.brokers[0].get_ref().keep_alive,
        Duration::from_secs(65_535)
    );
    assert_eq!(c.brokers[0].get_ref().reconnect_max, year);
    assert_eq!(c.web.max_connections, 65_536);
    assert_eq!(c.tests[0].get_ref().interval(), year);
    // Derived from the interval: 2 years and 5 minutes, rounded to minutes, without overflow.
    assert_eq!(
        c.tests[0].get_ref().lifetime(),
        Duration::from_secs((2 * 31_557_600 + 300_u64).div_ceil(60) * 60)
    );
}

#[test]
fn lifetime_rounds_up_to_minutes() {
    let text = format!(
        "{BROKER}[[test]]\nhost=\"h\"\ntest=\"t\"\nbroker=\"local\"\nmode=\"periodic\"\ninterval=\"90s\"\ntopics=[\"a\"]\n"
    );
    let c = parse(&text).unwrap();
    // 2 × 90 s + 300 s = 480 s = 8 min
    assert_eq!(c.tests[0].get_ref().lifetime(), Duration::from_secs(480));
}

#[test]
fn errors_name_file_line_and_key() {
    struct Case {
        name: &'static str,
        text: String,
        line: usize,
        key: &'static str,
        says: &'static str,
    }
    let test = |extra: &str| {
        format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopics = [\"a\"]\n{extra}")
    };
    let cases = [
        Case {
            name: "unknown top-level key",
            text: format!("bogus = 1\n{BROKER}"),
            line: 1,
            key: "bogus",
            says: "unknown field `bogus`",
        },
        Case {
            name: "unknown key in a test",
            text: test("colour = \"red\"\n"),
            line: 9,
            key: "test[0].colour",
            says: "unknown field `colour`",
        },
        Case {
            name: "bad duration",
            text: test("window = \"soon\"\n"),
            line: 9,
            key: "test[0].window",
            says: "",
        },
        Case {
            name: "bad test name",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"mqtt.sub\"\nbroker = \"local\"\ntopics = [\"a\"]\n"),
            line: 6,
            key: "test[0].test",
            says: "may contain only",
        },
        Case {
            name: "unknown broker",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"nope\"\ntopics = [\"a\"]\n"),
            line: 7,
            key: "test[0].broker",
            says: "no [[broker]] is named \"nope\"",
        },
        Case {
            name: "wildcard in topics",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopics = [\"a/+\"]\n"),
            line: 8,
            key: "test[0].topics[0]",
            says: "wildcard",
        },
        Case {
            name: "periodic window longer than interval",
            text: test("mode = \"periodic\"\ninterval = \"5s\"\nwindow = \"6s\"\n"),
            line: 11,
            key: "test[0].window",
            says: "shorter than `interval`",
        },
        Case {
            name: "bad broker url",
            text: "[[broker]]\nname = \"x\"\nurl = \"http://h\"\n".into(),
            line: 3,
            key: "broker[0].url",
            says: "not supported",
        },
        Case {
            name: "zero web header timeout",
            text: format!("{BROKER}[web]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"0s\"\n"),
            line: 6,
            key: "web.header_timeout",
            says: "longer than 0",
        },
        Case {
            name: "no web connections",
            text: format!("{BROKER}[web]\nmax_connections = 0\n"),
            line: 5,
            key: "web.max_connections",
            says: "at least 1",
        },
        Case {
            name: "too many web connections",
            text: format!("{BROKER}[web]\nmax_connections = 10000000000000000000\n"),
            line: 5,
            key: "web.max_connections",
            says: "at most 65536",
        },
        Case {
            name: "a duration longer than a year",
            text: test("interval = \"1000years\"\n"),
            line: 9,
            key: "test[0].interval",
            says: "1000years is too long: at most 1year",
        },
        Case {
            name: "an optional duration longer than a year",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopic = \"a/b\"\nexpire_after = \"400d\"\n  [[test.value]]\n  name = \"v\"\n"),
            line: 9,
            key: "test[0].expire_after",
            says: "too long",
        },
        Case {
            name: "keep-alive beyond MQTT's 16 bits",
            text: "[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\nkeep_alive = \"20h\"\n".into(),
            line: 4,
            key: "broker[0].keep_alive",
            says: "at most 65535s",
        },
        Case {
            name: "a store budget below a megabyte",
            text: format!("{BROKER}[limits]\nstore_bytes = 1000\n"),
            line: 5,
            key: "limits.store_bytes",
            says: "at least 1048576",
        },
        Case {
            name: "an MQTT 5 keep-alive below the client's minimum",
            text: "[[broker]]\nname = \"b\"\nurl = \"mqtt://h\"\nkeep_alive = \"2s\"\n".into(),
            line: 4,
            key: "broker[0].keep_alive",
            says: "at least 5s with protocol = \"5\"",
        },
        Case {
            name: "a TLS key on a plain url",
            text: "[[broker]]\nname = \"b\"\nurl = \"mqtt://h\"\nca_file = \"/ca.pem\"\n".into(),
            line: 4,
            key: "broker[0].ca_file",
            says: "use an mqtts:// url",
        },
        Case {
            name: "a client certificate without its key",
            text: "[[broker]]\nname = \"b\"\nurl = \"mqtts://h\"\nclient_cert_file = \"/c.pem\"\n".into(),
            line: 1,
            key: "broker[0].client_key_file",
            says: "needs its private key",
        },
        Case {
            name: "a password without a user name under 3.1.1",
            text: "[[broker]]\nname = \"b\"\nurl = \"mqtt://h\"\nprotocol = \"3.1.1\"\npassword_file = \"/pw\"\n".into(),
            line: 5,
            key: "broker[0].password_file",
            says: "MQTT 3.1.1 sends a password only with a user name",
        },
        Case {
            name: "an unknown protocol",
            text: "[[broker]]\nname = \"b\"\nurl = \"mqtt://h\"\nprotocol = \"4\"\n".into(),
            line: 4,
            key: "broker[0].protocol",
            says: "unknown variant",
        },
        Case {
            name: "a shared subscription in topics",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopics = [\"a\", \"$share/g/a\"]\n"),
            line: 8,
            key: "test[0].topics[1]",
            says: "shared subscription",
        },
        Case {
            name: "a shared subscription as a rule's filter",
            text: format!("{BROKER}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopic = \"$share/g/s/{{x}}\"\n  [[test.value]]\n  name = \"v\"\n"),
            line: 8,
            key: "test[0].topic",
            says: "a test's topics must meet in one",
        },
        Case {
            name: "a packet limit below a SUBACK",
            text: format!("{BROKER}[limits]\nmax_packet_bytes = 100\n"),
            line: 5,
            key: "limits.max_packet_bytes",
            says: "must be 1024 to 268435460",
        },
        Case {
            name: "syntax error",
            text: "[xymon\nserver = 1\n".into(),
            line: 1,
            key: "",
            says: "",
        },
        Case {
            name: "duplicate column",
            text: format!("{}[[test]]\nhost = \"h\"\ntest = \"t\"\nbroker = \"local\"\ntopics = [\"b\"]\n", test("")),
            line: 11,
            key: "test[1].test",
            says: "defined twice",
        },
    ];
    for c in cases {
        let (line, key, display) = located(&c.text);
        assert_eq!(line, c.line, "{}: line in {display}", c.name);
        assert_eq!(key, c.key, "{}: key in {display}", c.name);
        assert!(display.starts_with("bridge.toml:"), "{}: {display}", c.name);
        assert!(display.contains(c.says), "{}: {display}", c.name);
    }
}

/// Rule keys on a topics test, and captures outside rules, are config errors.
#[test]
fn rule_keys_outside_rule_tests_name_line_and_key() {
    // rule keys on a topics test, and captures outside rules
    let t = format!("{BROKER}\n[[test]]\nbroker = \"local\"\nhost = \"h\"\ntest = \"t\"\ntopics = [\"a\"]\nexpire_after = \"1m\"\n");
    assert_eq!(located(&t).1, "test[0].expire_after");
    let t = format!("{BROKER}\n[[test]]\nbroker = \"local\"\nhost = \"{{h}}\"\ntest = \"t\"\ntopics = [\"a\"]\n");
    assert_eq!(located(&t).1, "test[0].host");
}

/// Column ownership the config alone can decide: reserved columns, a rule's `tests` list, the columns of
/// a rule's expected hosts; and `outage_colour` where it means nothing. File, line and key each.
#[test]
fn column_ownership_errors_name_line_and_key() {
    let rule = |names: &str, extra: &str| {
        format!("{BROKER}[[test]]\nbroker = \"local\"\ntopic = \"s/{{h}}/{{t}}\"\n{names}{extra}  [[test.value]]\n  name = \"v\"\n")
    };
    let topics = |host: &str, test: &str| {
        format!("[[test]]\nbroker = \"local\"\nhost = \"{host}\"\ntest = \"{test}\"\ntopics = [\"a\"]\n")
    };
    let cases = [
        (
            format!("{BROKER}{}", topics("h", "trends")),
            (7, "test[0].test", "reserved"),
        ),
        (
            format!("{BROKER}{}", topics("h", "xymon-mqtt")),
            (7, "test[0].test", "the bridge's"),
        ),
        (
            rule("host = \"h\"\ntest = \"info\"\n", ""),
            (8, "test[0].test", "reserved"),
        ),
        (
            rule(
                "host = \"{h}\"\ntest = \"{t}\"\n",
                "tests = [\"env\", \"trends\"]\n",
            ),
            (9, "test[0].tests", "reserved"),
        ),
        (
            rule(
                "host = \"{h}\"\ntest = \"{t}\"\n",
                "tests = [\"env\", \"env\"]\n",
            ),
            (9, "test[0].tests", "listed twice"),
        ),
        (
            rule("host = \"{h}\"\ntest = \"t\"\n", "tests = [\"t\"]\n"),
            (9, "test[0].tests", "no capture"),
        ),
        (
            format!("{BROKER}{}tests = [\"env\"]\n", topics("h", "t")),
            (9, "test[0].tests", "belongs to rule tests"),
        ),
        (
            format!(
                "{}{}",
                rule("host = \"{h}\"\ntest = \"env\"\n", "expect = [\"gh\"]\n"),
                topics("gh", "env")
            ),
            (9, "test[0].expect", "another test writes"),
        ),
        (
            format!(
                "{BROKER}{}mode = \"periodic\"\noutage_colour = \"red\"\n",
                topics("h", "t")
            ),
            (10, "test[0].outage_colour", "periodic"),
        ),
    ];
    for (text, (line, key, says)) in cases {
        let (l, k, display) = located(&text);
        assert_eq!((l, k.as_str()), (line, key), "{display}\n{text}");
        assert!(display.contains(says), "{display}");
    }
    // The same names where they are fine: a capture may produce `env` and `power`; an expected host's
    // column is the rule's own literal one; outage_colour on a continuous test.
    parse(&rule(
        "host = \"{h}\"\ntest = \"{t}\"\n",
        "tests = [\"env\", \"power\"]\n",
    ))
    .unwrap();
    let own = format!("{BROKER}[[test]]\nbroker = \"local\"\ntopic = \"s/gh\"\nhost = \"gh\"\ntest = \"env\"\nexpect = [\"gh\"]\n  [[test.value]]\n  name = \"v\"\n");
    parse(&own).unwrap();
    parse(&format!(
        "{BROKER}{}outage_colour = \"red\"\n",
        topics("h", "t")
    ))
    .unwrap();
}
