//! Tests of `crate::filter`: parsing and matching MQTT filters with captures, mismatch reasons and
//! name templates.

use super::*;

#[test]
fn parse_table() {
    for (raw, ok) in [
        ("sensors/{host}/env", true),
        ("a/+/b/#", true),
        ("#", true),
        ("+", true),
        ("a/{x}/{y}", true),
        ("", false),
        ("a/#/b", false),
        ("a/b+/c", false),
        ("a/#b", false),
        ("a/sensor-{id}/c", false),
        ("a/{}/c", false),
        ("a/{x-y}/c", false),
        ("a/{x}/{x}", false),
        ("a/{x/c", false),
    ] {
        assert_eq!(TopicFilter::parse(raw).is_ok(), ok, "{raw:?}");
    }
    let f = TopicFilter::parse("sensors/{host}/+/{kind}/#").unwrap();
    assert_eq!(f.subscription(), "sensors/+/+/+/#");
    assert_eq!(f.capture_names(), ["host", "kind"]);
}

#[test]
fn match_table() {
    struct Case {
        filter: &'static str,
        topic: &'static str,
        caps: Option<&'static [(&'static str, &'static str)]>,
    }
    let cases = [
        Case {
            filter: "sensors/{host}/env",
            topic: "sensors/gh1/env",
            caps: Some(&[("host", "gh1")]),
        },
        Case {
            filter: "sensors/{host}/env",
            topic: "sensors/gh1/env/x",
            caps: None,
        },
        Case {
            filter: "sensors/{host}/env",
            topic: "sensors/gh1",
            caps: None,
        },
        Case {
            filter: "sensors/{host}/env",
            topic: "other/gh1/env",
            caps: None,
        },
        Case {
            filter: "sensors/{host}/env",
            topic: "sensors//env",
            caps: Some(&[("host", "")]),
        },
        Case {
            filter: "tele/{host}/+/{metric}",
            topic: "tele/plug/SENSOR/power",
            caps: Some(&[("host", "plug"), ("metric", "power")]),
        },
        Case {
            filter: "home/{room}/#",
            topic: "home/kitchen",
            caps: Some(&[("room", "kitchen")]),
        },
        Case {
            filter: "home/{room}/#",
            topic: "home/kitchen/a/b/c",
            caps: Some(&[("room", "kitchen")]),
        },
        Case {
            filter: "#",
            topic: "$SYS/broker/uptime",
            caps: None,
        },
        Case {
            filter: "+/broker/uptime",
            topic: "$SYS/broker/uptime",
            caps: None,
        },
        Case {
            filter: "$SYS/{what}/uptime",
            topic: "$SYS/broker/uptime",
            caps: Some(&[("what", "broker")]),
        },
        Case {
            filter: "a/b",
            topic: "a/b",
            caps: Some(&[]),
        },
    ];
    for c in cases {
        let f = TopicFilter::parse(c.filter).unwrap();
        let got = f.match_topic(c.topic).ok();
        let want = c.caps.map(|caps| {
            caps.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Captures>()
        });
        assert_eq!(got, want, "{} on {}", c.filter, c.topic);
        assert_eq!(
            f.matches(c.topic),
            want.is_some(),
            "{} on {}",
            c.filter,
            c.topic
        );
    }
}

#[test]
fn plain_mqtt_filters() {
    for (raw, ok) in [
        ("a/+/c", true),
        ("#", true),
        ("$SYS/#", true),
        ("a/{x}/c", true), // literal braces, as a broker reads them
        ("", false),
        ("a/#/b", false),
        ("a/b+/c", false),
        ("a/#b", false),
        ("a\0b", false),
    ] {
        assert_eq!(TopicFilter::parse_mqtt(raw).is_ok(), ok, "{raw:?}");
    }
    for (topic, filter, want) in [
        ("a/b/c", "a/+/c", true),
        ("a/b/c", "a/#", true),
        ("a", "a/#", true),
        ("a/b", "a/+", true),
        ("a/b/c", "a/+", false),
        ("a/b", "a/b/c", false),
        ("$SYS/x", "#", false),
        ("$SYS/x", "+/x", false),
        ("$SYS/x", "$SYS/#", true),
        ("$SYS/x", "$SYS/+", true),
        ("a/{x}/c", "a/{x}/c", true),
        ("a/b/c", "a/{x}/c", false),
    ] {
        let f = TopicFilter::parse_mqtt(filter).unwrap();
        assert_eq!(f.matches(topic), want, "{topic} {filter}");
    }
}

#[test]
fn mismatch_reasons() {
    let f = TopicFilter::parse("sensors/{host}/env").unwrap();
    assert!(f
        .match_topic("sensors/gh1/air")
        .unwrap_err()
        .contains("level 3 is \"air\", the filter wants \"env\""));
    assert!(f
        .match_topic("sensors/gh1/env/x")
        .unwrap_err()
        .contains("/#"));
}

#[test]
fn templates() {
    let caps: Captures = vec![("host".into(), "gh1".into()), ("k".into(), "t".into())];
    for (raw, want) in [
        ("{host}", Some("gh1")),
        ("sensor-{host}.lan", Some("sensor-gh1.lan")),
        ("env", Some("env")),
        ("{host}-{k}", Some("gh1-t")),
        ("{host", None),
        ("host}", None),
        ("{a b}", None),
    ] {
        let t = Template::parse(raw);
        assert_eq!(
            t.as_ref().ok().map(|t| t.expand(&caps)).as_deref(),
            want,
            "{raw}"
        );
    }
    assert_eq!(Template::parse("s-{host}").unwrap().sample(), "s-x");
    assert!(Template::parse("env").unwrap().is_literal());
}
