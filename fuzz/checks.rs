//! The invariants the fuzz targets check, one function per target, each taking the raw fuzz input.
//!
//! Included by path in every target of fuzz/fuzz_targets (run with `fuzz/run`, nightly features through
//! RUSTC_BOOTSTRAP) and in tests/fuzz_corpus.rs, which feeds the kept corpus (fuzz/corpus/TARGET/) through
//! the same functions on stable, so `cargo test` checks every input the fuzzers found interesting. A
//! broken invariant panics, which the fuzzer reports as a crash and the test as a failure.
//!
//! An input with several fields splits them at byte 0xFF, which never occurs in UTF-8 text.

#![allow(dead_code)] // each target uses one function

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use xymon_mqtt::config::Config;
use xymon_mqtt::filter::{Template, TopicFilter};
use xymon_mqtt::names::TopicName;
use xymon_mqtt::plan::Plan;
use xymon_mqtt::rules::extract::{Extractor, Payload};
use xymon_mqtt::rules::RuleState;
use xymon_mqtt::status::{self, Closed, Context, Reading};
use xymon_mqtt::store::TopicValue;
use xymon_mqtt::text::{is_format, line1, short, shown_as_code, untrusted, visible};
use xymon_mqtt::xymon::message::{combo, MAX_STATUS_BYTES};

/// The fields of an input: split at 0xFF, always `n` of them (missing ones empty).
fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.splitn(n, |b| *b == 0xFF).collect();
    parts.resize(n, &[]);
    parts
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A line that would start a message inside a combo, or make xymond rewrite the sender.
fn starts_a_message(line: &str) -> bool {
    line.starts_with("status") || line.starts_with("Status message received from")
}

/// Topic filters with captures, plain MQTT filters and name templates: parsing never panics, and a filter
/// that parses agrees with itself: `matches` is `match_topic(..).is_ok()`, a match yields one capture per
/// name, none containing a level separator, and the subscription sent to the broker (captures as `+`) is
/// a valid MQTT filter that matches the topic too. A template expands to its literal parts and the captures.
pub fn filter(data: &[u8]) {
    let f = fields(data, 3);
    let (raw, topic, template) = (text(f[0]), text(f[1]), text(f[2]));
    if let Ok(mqtt) = TopicFilter::parse_mqtt(&raw) {
        assert_eq!(mqtt.matches(&topic), mqtt.match_topic(&topic).is_ok());
        assert!(mqtt.capture_names().is_empty());
    }
    let Ok(filter) = TopicFilter::parse(&raw) else {
        let _ = Template::parse(&template);
        return;
    };
    assert_eq!(filter.as_str(), raw);
    let subscription = TopicFilter::parse_mqtt(&filter.subscription())
        .unwrap_or_else(|e| panic!("subscription of {raw:?} is not a filter: {e}"));
    let caps = filter.match_topic(&topic);
    assert_eq!(filter.matches(&topic), caps.is_ok(), "{raw:?} on {topic:?}");
    if let Ok(caps) = &caps {
        assert!(subscription.matches(&topic), "{raw:?} on {topic:?}");
        let names: Vec<&str> = caps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, filter.capture_names());
        assert!(caps.iter().all(|(_, v)| !v.contains('/')), "{caps:?}");
        if filter.is_exact() {
            assert_eq!(topic, raw);
        }
    }
    if let Ok(t) = Template::parse(&template) {
        let caps = caps.unwrap_or_default();
        let expanded = t.expand(&caps);
        let _ = t.sample();
        if t.is_literal() {
            assert_eq!(expanded, template);
        }
        let budget =
            template.len() + caps.iter().map(|(_, v)| v.len()).sum::<usize>() * template.len();
        assert!(expanded.len() <= budget);
    }
}

/// Value extraction: a JSONPath (or a plain number when empty), a string map (`key=value` lines) and a
/// payload. Never panics; a value read is a finite number, and a text the map knows reads as its number.
pub fn extract(data: &[u8]) {
    let f = fields(data, 3);
    let path = text(f[0]);
    let mut map = BTreeMap::new();
    for line in text(f[1]).lines() {
        if let Some((k, v)) = line.split_once('=') {
            if let Ok(v) = v.parse::<f64>() {
                map.insert(k.to_string(), v);
            }
        }
    }
    let path = (!path.is_empty()).then_some(path.as_str());
    let Ok(extractor) = Extractor::new(path, map.clone()) else {
        return;
    };
    let payload = Payload::new(f[2]);
    if let Ok(x) = extractor.extract(&payload) {
        assert!(x.number.is_finite() || map.values().any(|v| v.to_bits() == x.number.to_bits()));
        if let Some(v) = map.get(&*x.text.as_text()) {
            assert_eq!(v.to_bits(), x.number.to_bits(), "{x:?}");
        }
    }
    // Twice: the parsed JSON is cached per payload, and the second read must agree with the first.
    assert_eq!(
        extractor.extract(&payload).map(|x| x.number.to_bits()),
        extractor.extract(&payload).map(|x| x.number.to_bits())
    );
}

/// The config loader: any text either loads (and then compiles into a plan, unless it names a password
/// file, which `Plan::compile` reads) or fails with an error that names the file.
pub fn config(data: &[u8]) {
    let Ok(toml) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match Config::from_str_named(toml, path) {
        Ok(config) => {
            if config
                .brokers
                .iter()
                .any(|b| b.get_ref().password_file.is_some())
            {
                return;
            }
            if let Err(e) = Plan::compile(&config) {
                let msg = e.to_string();
                assert!(msg.starts_with("fuzz.toml"), "{msg}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml"), "{msg}");
        }
    }
}

/// The sanitiser of untrusted text: the first two bytes give the bound, the rest is the text. The output
/// of `untrusted` has no control character but tab and line feed, no format character, no raw `<`, `>`,
/// `"`, `'`, and `&` only in an entity; each continuation line is indented, so none starts a message; its
/// content is bounded. `line1` is one line without `|`, control or format characters; `visible` leaves
/// nothing a display hides; `short` keeps its bound.
pub fn sanitise(data: &[u8]) {
    let (bound, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % 2048, rest),
        _ => (16, data),
    };
    let raw = text(rest);
    for indent in ["    ", ""] {
        let out = untrusted(&raw, bound, indent);
        check_untrusted(&out, indent);
        // A content character becomes at most a 10-byte code point or a line break plus the indent; the
        // note about the cut is short.
        assert!(
            out.len() <= bound * 10.max(1 + indent.len()) + 64,
            "{} bytes for a bound of {bound}",
            out.len()
        );
    }
    let l1 = line1(&raw);
    assert!(!l1.contains(['|', '\n', '\r']), "{l1:?}");
    assert!(
        !l1.chars().any(|c| c.is_control() || is_format(c)),
        "{l1:?}"
    );
    let shown = visible(&raw);
    assert!(!shown.chars().any(shown_as_code), "{shown:?}");
    if !raw.chars().any(shown_as_code) {
        assert_eq!(shown, raw);
    }
    assert!(short(&raw, bound).chars().count() <= bound + 1);
}

fn check_untrusted(out: &str, indent: &str) {
    assert!(
        !out.chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_format(c)),
        "{out:?}"
    );
    assert!(!out.contains(['<', '>', '"', '\'']), "{out:?}");
    for (i, _) in out.match_indices('&') {
        let entity = &out[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#x27;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "bare & in {out:?}"
        );
    }
    for line in out.split('\n').skip(1) {
        assert!(line.starts_with(indent), "{line:?} is not indented");
        if !indent.is_empty() {
            assert!(!starts_a_message(line), "{line:?}");
        }
    }
}

/// One status as sent to xymond: it starts with `status+`, no other line starts a message, line 1 has no
/// `|`, there is no NUL, no control or format character, no raw `<` or `>` (every untrusted string is
/// escaped, and the bridge's own words have none), and it fits xymond's limit.
pub fn check_wire(wire: &str) {
    assert!(wire.starts_with("status+"), "{wire:?}");
    assert!(wire.len() <= MAX_STATUS_BYTES, "{} bytes", wire.len());
    let mut lines = wire.split('\n');
    let first = lines.next().unwrap_or_default();
    assert!(!first.contains('|'), "{first:?}");
    for line in lines {
        assert!(!starts_a_message(line), "line {line:?} of {wire:?}");
    }
    assert!(
        !wire
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || is_format(c)),
        "{wire:?}"
    );
    assert!(!wire.contains(['<', '>']), "{wire:?}");
}

/// A `combo` of the statuses splits back, at xymond's separator `\n\nstatus`, into exactly those.
fn check_combo(wires: &[String]) {
    let msg = combo(wires);
    if wires.len() == 1 {
        assert_eq!(msg, wires[0]);
        return;
    }
    let body = msg.strip_prefix("combo\n").expect("combo header");
    assert_eq!(body.split("\n\nstatus").count(), wires.len(), "{msg:?}");
}

const RULES: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
host = "greenhouse"
test = "env"
broker = "local"
topics = ["sensors/greenhouse/temperature", "sensors/greenhouse/humidity"]

[[test]]
broker = "local"
topic = "sensors/{host}/env"
host = "{host}"
test = "env"
expire_after = "10m"
timestamp_path = "$.time"
  [[test.value]]
  name = "temperature"
  path = "$.temperature"
  unit = "°C"
  yellow = "> 28"
  red = "> 32"
  hits = 2
  hysteresis = 0.5
  [[test.value]]
  name = "door"
  path = "$.contact"
  map = { ON = 1, OFF = 0 }
  red = "== 0"

[[test]]
broker = "local"
topic = "tele/{id}/+/{what}"
host = "{id}"
test = "{what}"
  [[test.value]]
  name = "value"
  yellow = "outside 10..90"
"#;

thread_local! {
    static PLAN: Plan = Plan::compile(
        &Config::from_str_named(RULES, Path::new("rules.toml")).expect("the fuzz config loads"),
    )
    .expect("the fuzz config compiles");
}

/// The Xymon message builder, fed as the collector feeds it: fields are two topics, three payloads and an
/// error text; the first byte of the last field picks the bound and which topics came. Every status built
/// (a topics test's round with missing and changed topics and an RRD problem, a broker that is down, each
/// rule instance the topic and payloads make, twice to pass `hits`) passes [`check_wire`], and their combo
/// splits back into them. `explain` on the same message does not panic.
pub fn message(data: &[u8]) {
    let f = fields(data, 7);
    let (t1, t2) = (text(f[0]), text(f[1]));
    let payloads = [
        Bytes::copy_from_slice(f[2]),
        Bytes::copy_from_slice(f[3]),
        Bytes::copy_from_slice(f[4]),
    ];
    let error = text(f[5]);
    let knobs = f[6].first().copied().unwrap_or(0);
    let max_value_chars = [1, 16, 512, 4096][usize::from(knobs & 3)];
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let mut wires = Vec::new();
    PLAN.with(|plan| {
        let test = &plan.tests[0].config;
        let topic = |t: &str, default: &'static str| {
            TopicName::try_from(t.to_string()).unwrap_or_else(|_| TopicName::from_static(default))
        };
        let topics = [topic(&t1, "a"), topic(&t2, "b")];
        let reading = |p: &Bytes| Reading {
            payload: p.clone(),
            retained: knobs & 8 != 0,
            at: now,
        };
        let closed = Closed {
            opened_at: now,
            took: Duration::from_millis(3),
            window: Duration::from_millis(500),
            values: vec![
                Some(reading(&payloads[0])),
                (knobs & 4 != 0).then(|| reading(&payloads[1])),
            ],
            changed: vec![status::Changed {
                topic: 0,
                first: payloads[0].clone(),
                then: payloads[2].clone(),
            }],
        };
        let last_known = |_: usize| {
            Some(TopicValue {
                payload: payloads[1].clone(),
                size: payloads[1].len(),
                received_at: now - Duration::from_secs(300),
                changed_at: now - Duration::from_secs(600),
                qos: 0,
                retained: false,
                count: 1,
            })
        };
        let ctx = Context {
            now,
            max_value_chars,
            last_known: &last_known,
        };
        let mut s = status::topics_status(test, &topics, &closed, &ctx);
        status::add_rrd_problem(&mut s, "env.temperature.rrd", &error);
        wires.push(s.to_wire());
        wires.push(status::broker_down_status(test, Some(&error), now).to_wire());

        let t0 = tokio::time::Instant::now();
        for topic in [&t1, &t2] {
            for r in &plan.rules {
                let Ok(caps) = r.rule.filter.match_topic(topic) else {
                    continue;
                };
                let mut st = RuleState::new(r.rule.clone(), t0);
                for p in &payloads {
                    let Ok(offered) = st.offer(topic, caps.clone(), p, knobs & 8 != 0, t0, now)
                    else {
                        continue;
                    };
                    let Some(inst) = st.instances.get(&offered.key) else {
                        continue;
                    };
                    let lines = inst.evaluate(&st.rule, t0, now);
                    let s = status::rule_status(&st.rule, inst, &lines, now, max_value_chars);
                    wires.push(s.to_wire());
                }
            }
            let _ = xymon_mqtt::cli::explain::explain(plan, topic, &payloads[0], now);
        }
    });
    for w in &wires {
        check_wire(w);
    }
    check_combo(&wires);
}
