use super::extract::Payload;
use super::*;
use crate::colour::Colour;
use crate::config::fixtures;
use std::time::SystemTime;
use tokio::time::Instant;

const ISSUE_EXAMPLE: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
broker = "local"
topic = "sensors/{host}/env"
host = "{host}"
test = "env"
expire_after = "10m"
  [[test.value]]
  name = "temperature"
  path = "$.temperature"
  unit = "°C"
  yellow = "> 28"
  red = "> 32"
  hits = 3
  hysteresis = 0.5
  rrd = true
  [[test.value]]
  name = "door"
  path = "$.contact"
  map = { ON = 1, OFF = 0 }
  red = "== 0"
"#;

fn rule() -> Rule {
    let c = fixtures::config(ISSUE_EXAMPLE);
    assert_eq!(c.tests[0].get_ref().kind, crate::config::TestKind::Rule);
    Rule::compile(c.tests[0].get_ref()).unwrap()
}

fn colours(st: &RuleState, now: Instant) -> Vec<(String, Colour)> {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut out = Vec::new();
    let mut keys: Vec<_> = st.instances.keys().collect();
    keys.sort();
    for k in keys {
        let i = &st.instances[k];
        for l in i.evaluate(&st.rule, now, wall) {
            out.push((format!("{}.{}", k.0, l.name), l.colour));
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn instances_thresholds_staleness_and_retained() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut st = RuleState::new(rule(), Instant::now());
    let offer = |st: &mut RuleState, topic: &str, payload: &str, retained: bool| {
        let caps = st.rule.filter.match_topic(topic).unwrap();
        st.offer(
            topic,
            caps,
            payload.as_bytes(),
            retained,
            Instant::now(),
            wall,
        )
    };
    let g = |h: &str, v: &str, c: Colour| (format!("{h}.{v}"), c);
    use Colour::*;

    let o = offer(
        &mut st,
        "sensors/gh1/env",
        r#"{"temperature": 21.5, "contact": "ON"}"#,
        false,
    )
    .unwrap();
    assert!(o.created);
    assert_eq!(o.numbers, [(0, 21.5), (1, 1.0)]);
    offer(
        &mut st,
        "sensors/gh2/env",
        r#"{"temperature": 40, "contact": "OFF"}"#,
        false,
    )
    .unwrap();
    // gh2: door red at once (hits 1), temperature needs 3 hits
    assert_eq!(
        colours(&st, Instant::now()),
        [
            g("gh1", "temperature", Green),
            g("gh1", "door", Green),
            g("gh2", "temperature", Green),
            g("gh2", "door", Red)
        ]
    );
    for _ in 0..2 {
        offer(
            &mut st,
            "sensors/gh2/env",
            r#"{"temperature": 40, "contact": "ON"}"#,
            false,
        )
        .unwrap();
    }
    assert_eq!(
        colours(&st, Instant::now())[2],
        g("gh2", "temperature", Red)
    );

    // unparsable
    offer(&mut st, "sensors/gh1/env", "<b>oops</b>", false).unwrap();
    assert_eq!(
        colours(&st, Instant::now())[0],
        g("gh1", "temperature", Yellow)
    );

    // silence: stale after expire_after
    offer(
        &mut st,
        "sensors/gh1/env",
        r#"{"temperature": 21.5, "contact": "ON"}"#,
        false,
    )
    .unwrap();
    tokio::time::advance(Duration::from_secs(601)).await;
    offer(
        &mut st,
        "sensors/gh2/env",
        r#"{"temperature": 20, "contact": "ON"}"#,
        false,
    )
    .unwrap();
    let c = colours(&st, Instant::now());
    assert_eq!(c[0], g("gh1", "temperature", Yellow));
    assert_eq!(c[3], g("gh2", "door", Green));

    // retained replay: not fresh, and does not step hits
    offer(
        &mut st,
        "sensors/gh3/env",
        r#"{"temperature": 20, "contact": "ON"}"#,
        true,
    )
    .unwrap();
    let lines = st
        .instances
        .values()
        .find(|i| i.host.as_str() == "gh3")
        .unwrap()
        .evaluate(&st.rule, Instant::now(), wall);
    assert_eq!(lines[0].colour, Yellow);
    assert!(
        lines[0].reason.starts_with("retained, age unknown"),
        "{}",
        lines[0].reason
    );
    assert!(lines[0].shown.as_deref() == Some("20 °C"));
}

#[test]
fn bad_names_and_caps_are_refused() {
    let text = ISSUE_EXAMPLE.replace(
        "expire_after = \"10m\"",
        "expire_after = \"10m\"\nmax_instances = 2",
    );
    let c = fixtures::config(&text);
    let mut st = RuleState::new(Rule::compile(c.tests[0].get_ref()).unwrap(), Instant::now());
    let wall = SystemTime::now();
    let mut offer = |topic: &str| {
        let caps = st.rule.filter.match_topic(topic).unwrap();
        st.offer(topic, caps, b"{}", false, Instant::now(), wall)
            .map(|_| ())
    };
    assert!(matches!(
        offer("sensors/bad host/env"),
        Err(Skip::BadHost(..))
    ));
    assert!(matches!(offer("sensors/../env"), Err(Skip::BadHost(..))));
    assert_eq!(offer("sensors/a/env"), Ok(()));
    assert_eq!(offer("sensors/b/env"), Ok(()));
    assert_eq!(offer("sensors/c/env"), Err(Skip::MaxInstances(2)));
    assert_eq!(offer("sensors/a/env"), Ok(()));
}

#[test]
fn sensor_timestamps() {
    let p = |s: &'static str| Payload::new(s.as_bytes());
    let path = JsonPath::parse("$.ts").unwrap();
    let t = |s| sensor_time(&p(s), &path, "$.ts");
    let want = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(t(r#"{"ts": 1700000000}"#), Ok(want));
    assert_eq!(t(r#"{"ts": 1700000000000}"#), Ok(want));
    assert_eq!(t(r#"{"ts": "2023-11-14T22:13:20Z"}"#), Ok(want));
    assert!(t(r#"{"ts": "yesterday"}"#).is_err());
    assert!(t(r#"{"x": 1}"#).is_err());
    // Hostile numbers are errors, not panics (Duration::from_secs_f64 panics on these).
    for huge in [
        r#"{"ts": 1e300}"#,
        r#"{"ts": 1.7976931348623157e308}"#,
        r#"{"ts": 1e25}"#,
        // Milliseconds past chrono's year 262,142: a SystemTime, but no formatter can write it.
        r#"{"ts": 1e16}"#,
        r#"{"ts": 253402300800000}"#,
    ] {
        assert_eq!(
            t(huge).map_err(|e| e.contains("out of range")),
            Err(true),
            "{huge}"
        );
    }
    assert!(t(r#"{"ts": -1}"#).is_err());
    // The last second of 9999 is taken (in milliseconds: above 10^11 a number is milliseconds).
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    assert_eq!(t(r#"{"ts": 253402300799000}"#), Ok(last));
}
