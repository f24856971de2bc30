//! Tests of `rules::state`: a payload read in one pass gives what the document gives (values, sensor
//! times, error texts), the colour that decides a send is the colour of the status, and topics become
//! instances in one place.

use super::super::extract::Payload;
use super::super::instance::{sensor_time, sensor_time_at};
use super::*;
use crate::colour::Colour;
use crate::config::fixtures;
use std::time::Duration;

fn rule(tests: &str) -> Rule {
    let text = format!("[[broker]]\nname = \"local\"\nurl = \"mqtt://127.0.0.1:1883\"\n{tests}");
    let c = fixtures::config(&text);
    Rule::compile(c.tests[0].get_ref()).unwrap()
}

const SIMPLE: &str = r#"
[[test]]
broker = "local"
topic = "z2m/{host}"
host = "{host}"
test = "z2m"
timestamp_path = "$.ts"
  [[test.value]]
  name = "temperature"
  path = "$.temperature"
  yellow = "> 28"
  [[test.value]]
  name = "humidity"
  path = "$['env'].h"
  [[test.value]]
  name = "door"
  path = "$.contact"
  map = { ON = 1, OFF = 0, "2" = 5 }
  [[test.value]]
  name = "again"
  path = "$.temperature"
"#;

fn payloads() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        r#"{"temperature": 21.5, "env": {"h": 40}, "contact": "ON", "ts": 1700000000}"#,
        r#"{"temperature": 2, "env": {"h": "55.5"}, "contact": 2, "ts": "2023-11-14T22:13:20Z"}"#,
        r#"{"temperature": true, "env": {"h": null}, "contact": false, "ts": -1}"#,
        r#"{"temperature": [1], "env": [{"h": 1}], "contact": {}, "ts": 1e300}"#,
        r#"{"temperature": 1, "temperature": 30, "env": {"h": 1}, "env": 7}"#,
        r#"{"temperature": "NaN", "contact": "MAYBE", "ts": "yesterday"}"#,
        r#"{"temperature": 18446744073709551615, "env": {"h": -0.0}}"#,
        r#"{"temperature": 1e400}"#,
        r#"{"temperature": 1} trailing"#,
        r#"{"temperature": "\ud800"}"#,
        r#"[21.5]"#,
        r#"21.5"#,
        "",
        "<b>oops</b>",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(vec![0xff, 0xfe, b'{']);
    v.push(format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes());
    v.push(
        format!(
            r#"{{"x": {}1{}, "temperature": 3}}"#,
            "[".repeat(127),
            "]".repeat(127)
        )
        .into_bytes(),
    );
    v
}

/// Every value and the sensor time, read in one pass and from the document: the same results, the same
/// error texts.
#[test]
fn one_pass_reads_what_the_document_reads() {
    let r = rule(SIMPLE);
    let paths = r.simple_paths.as_ref().expect("all paths are simple");
    assert_eq!(paths.len(), 4, "the repeated path shares a slot");
    for raw in payloads() {
        let fast = Payload::with_paths(&raw, Some(paths));
        let full = Payload::new(&raw);
        for v in &r.values {
            assert!(v.extractor.slot.is_some());
            assert_eq!(
                v.extractor.extract(&fast),
                v.extractor.extract(&full),
                "{} on {:?}",
                v.name,
                String::from_utf8_lossy(&raw)
            );
        }
        let (path, text) = r.timestamp.as_ref().unwrap();
        assert_eq!(
            sensor_time_at(&fast, r.timestamp_slot, path, text),
            sensor_time(&full, path, text),
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
    }
}

/// One path the fast reader does not take keeps the whole rule on the document.
#[test]
fn one_complex_path_reads_the_document_for_all() {
    let r = rule(&SIMPLE.replace("$['env'].h", "$.env[0]"));
    assert!(r.simple_paths.is_none());
    assert!(r.values.iter().all(|v| v.extractor.slot.is_none()));
    assert_eq!(r.timestamp_slot, None);
    let raw = br#"{"temperature": 21.5, "env": [40]}"#;
    let got = r.values[1]
        .extractor
        .extract(&Payload::with_paths(raw, None));
    assert_eq!(got.map(|x| x.number), Ok(40.0));
}

/// What decides a send (`colour_now`) is the colour of the status that would be sent, through
/// thresholds with hits and hysteresis, unparsable and retained messages, and staleness.
#[tokio::test(start_paused = true)]
async fn the_colour_that_decides_a_send_is_the_status_colour() {
    let r = rule(
        r#"
[[test]]
broker = "local"
topic = "s/{host}"
host = "{host}"
test = "env"
expire_after = "10m"
unparsable_colour = "red"
stale_colour = "yellow"
  [[test.value]]
  name = "t"
  path = "$.t"
  yellow = "> 28"
  red = "> 32"
  hits = 2
  hysteresis = 0.5
  [[test.value]]
  name = "h"
  path = "$.h"
  red = "outside 10..90"
"#,
    );
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut st = RuleState::new(r, Instant::now());
    let steps: &[(&str, bool, u64)] = &[
        (r#"{"t": 20, "h": 50}"#, false, 0),
        (r#"{"t": 33, "h": 50}"#, false, 1),
        (r#"{"t": 33, "h": 50}"#, false, 1),
        (r#"{"t": 31.8, "h": 95}"#, false, 1),
        (r#"{"t": "x", "h": 50}"#, false, 1),
        ("not json", false, 1),
        (r#"{"t": 20, "h": 50}"#, true, 1),
        (r#"{"t": 29, "h": 50}"#, false, 700),
        (r#"{"h": 50}"#, false, 1),
    ];
    let mut colours = Vec::new();
    for (payload, retained, wait) in steps {
        tokio::time::advance(Duration::from_secs(*wait)).await;
        let caps = st.rule.filter.match_topic("s/a").unwrap();
        let o = st
            .offer(
                "s/a",
                caps,
                payload.as_bytes(),
                *retained,
                Instant::now(),
                wall,
            )
            .unwrap();
        let inst = st.instances.by_id(o.instance).unwrap();
        for later in [0, 599, 601, 3600] {
            let now = Instant::now() + Duration::from_secs(later);
            let lines = inst.evaluate(&st.rule, now, wall);
            assert_eq!(
                inst.colour_now(&st.rule, now, wall),
                Instance::colour(&lines),
                "{payload} +{later}s: {lines:?}"
            );
        }
        colours.push(inst.colour_now(&st.rule, Instant::now(), wall));
    }
    use Colour::*;
    assert_eq!(
        colours,
        [Green, Green, Red, Red, Red, Red, Yellow, Red, Red]
    );
}

/// New topics become instances in `admit` only: a second topic of a host joins its instance (topics in
/// name order), a known topic is found by one lookup, and the caps hold.
#[test]
fn topics_join_their_instance_and_the_caps_hold() {
    let r = rule(
        r#"
[[test]]
broker = "local"
topic = "home/{room}/#"
host = "{room}"
test = "env"
max_topics = 3
  [[test.value]]
  name = "v"
"#,
    );
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut st = RuleState::new(r, now);
    let admit = |st: &mut RuleState, topic: &str| {
        let caps = st.rule.filter.match_topic(topic).unwrap();
        st.admit(Arc::from(topic), &caps, (now, wall), &mut |_| Ok(()))
    };
    let (kitchen, created) = admit(&mut st, "home/kitchen/b").unwrap();
    assert!(created);
    assert_eq!(admit(&mut st, "home/kitchen/a"), Ok((kitchen, false)));
    let (hall, created) = admit(&mut st, "home/hall").unwrap();
    assert!(created && hall != kitchen);
    assert_eq!(admit(&mut st, "home/cellar"), Err(Skip::MaxTopics(3)));
    assert_eq!(st.instance_of("home/kitchen/a"), Some(kitchen));
    assert_eq!(st.instance_of("home/kitchen/b"), Some(kitchen));
    assert_eq!(st.instance_of("home/hall"), Some(hall));
    assert_eq!(st.instance_of("home/cellar"), None);
    let topics: Vec<&str> = st
        .instances
        .by_id(kitchen)
        .unwrap()
        .topics
        .iter()
        .map(|t| &*t.name)
        .collect();
    assert_eq!(topics, ["home/kitchen/a", "home/kitchen/b"]);
    let key = (
        HostName::try_from("kitchen".to_string()).unwrap(),
        TestName::try_from("env".to_string()).unwrap(),
    );
    assert_eq!(st.instances.find(&key.0, &key.1), Some(kitchen));
    assert!(st.instances.contains_key(&key));
    assert_eq!(st.instances.len(), 2);
    let numbers = st.update(kitchen, "home/kitchen/b", b"21.5", false, now, wall);
    assert_eq!(numbers.as_slice(), [(0, 21.5)]);
    // A topic of another instance is not one of this instance's.
    assert!(st
        .update(hall, "home/kitchen/b", b"1", false, now, wall)
        .is_empty());
}

/// The payload text is kept only while one of its values is unparsable: the status shows it then.
#[test]
fn the_payload_is_kept_while_a_value_is_unparsable() {
    let r = rule(SIMPLE);
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut st = RuleState::new(r, now);
    let mut payload_after = |raw: &str| {
        let caps = st.rule.filter.match_topic("z2m/a").unwrap();
        let o = st
            .offer("z2m/a", caps, raw.as_bytes(), false, now, wall)
            .unwrap();
        st.instances.by_id(o.instance).unwrap().topics[0]
            .payload
            .to_string()
    };
    let good = r#"{"temperature": 1, "env": {"h": 2}, "contact": "ON", "again": 1}"#;
    assert_eq!(payload_after(good), "");
    assert_eq!(
        payload_after(r#"{"temperature": 1}"#),
        r#"{"temperature": 1}"#
    );
    assert_eq!(payload_after(good), "");
}
