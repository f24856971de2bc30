//! The bridge's own column: colour rules and text, from fixed inputs.

use super::self_status::*;
use crate::colour::Colour;
use crate::metrics::{GhostHost, GhostReport};
use crate::names::{HostName, TestName};
use crate::store::{BrokerState, Refused, Usage};
use std::time::{Duration, SystemTime};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn ago(secs: u64) -> SystemTime {
    now() - Duration::from_secs(secs)
}

fn broker(connected: bool, since_secs: u64) -> BrokerLine {
    BrokerLine {
        state: BrokerState {
            name: "local".into(),
            url: "mqtt://127.0.0.1:1883".into(),
            connected,
            subscribed: connected,
            since: Some(ago(since_secs)),
            last_message: None,
            messages: 1234,
            last_error: (!connected).then(|| "connection refused".to_string()),
            refused: Vec::new(),
        },
        per_minute: Some(12.0),
    }
}

struct Inputs {
    host: HostName,
    column: TestName,
    brokers: Vec<BrokerLine>,
    delivery: Delivery,
    drops: Vec<Drops>,
    rrd: Vec<RrdFailure>,
    store: Usage,
    ghosts: GhostReport,
}

fn healthy() -> Inputs {
    Inputs {
        host: HostName::try_from("xymon.example.com".to_string()).unwrap(),
        column: TestName::try_from("xymon-mqtt".to_string()).unwrap(),
        brokers: vec![broker(true, 3600)],
        delivery: Delivery {
            server: "127.0.0.1:1984".into(),
            sent: 42,
            failures: 0,
            pending: 0,
            failing: None,
            last_error: None,
        },
        drops: vec![Drops {
            reason: "payload_cut".into(),
            total: 3,
            recent: 0,
        }],
        rrd: Vec::new(),
        store: Usage {
            topics: 10,
            bytes: 1 << 20,
            budget: 64 << 20,
            ..Usage::default()
        },
        ghosts: GhostReport {
            checked_at: Some(ago(5)),
            ..GhostReport::default()
        },
    }
}

fn build(i: &Inputs) -> crate::xymon::Status {
    self_status(&SelfReport {
        host: &i.host,
        column: &i.column,
        lifetime: Duration::from_secs(420),
        now: now(),
        started: ago(7200),
        version: "1.2.3",
        config_file: "/etc/xymon-mqtt/xymon-mqtt.toml",
        grace: Duration::from_secs(120),
        interval: Duration::from_secs(60),
        brokers: &i.brokers,
        delivery: &i.delivery,
        drops: &i.drops,
        rrd_failing: &i.rrd,
        store: &i.store,
        ghosts: &i.ghosts,
    })
}

/// The `&colour` lines (the reasons) of a status body.
fn reasons(body: &str) -> Vec<&str> {
    body.lines()
        .filter(|l| l.starts_with("&red") || l.starts_with("&yellow"))
        .collect()
}

#[test]
fn healthy_bridge_is_green_with_every_fact() {
    let s = build(&healthy());
    assert_eq!(s.colour, Colour::Green, "{}", s.body);
    assert_eq!(s.key(), "xymon.example.com.xymon-mqtt");
    assert!(
        s.summary.ends_with("xymon-mqtt: all is well"),
        "{}",
        s.summary
    );
    assert!(reasons(&s.body).is_empty(), "{}", s.body);
    for fact in [
        "local mqtt://127.0.0.1:1883: connected since",
        "; messages: 1234, 12.0/min\n",
        "Delivery to xymond at 127.0.0.1:1984",
        "statuses sent: 42, failed deliveries: 0, pending: 0",
        "ghost hosts (xymond drops them): 0 (asked 5s ago)",
        "payload_cut: 3 (0 in the last 1m)",
        "RRD files failing: 0",
        "Topic store: 10 topics, 1.0 MiB of 64.0 MiB (1 % of limits.store_bytes)",
        "xymon-mqtt 1.2.3, up 2h",
        "config /etc/xymon-mqtt/xymon-mqtt.toml",
    ] {
        assert!(s.body.contains(fact), "{fact:?} missing from:\n{}", s.body);
    }
    // A lifetime in whole minutes, as sent.
    assert!(s
        .to_wire()
        .starts_with("status+7 xymon,example,com.xymon-mqtt green "));
}

#[test]
fn broker_down_is_red_only_after_the_grace() {
    let mut i = healthy();
    i.brokers = vec![broker(false, 60)];
    let s = build(&i);
    assert_eq!(s.colour, Colour::Green, "within the grace: {}", s.body);
    assert!(s
        .body
        .contains("local mqtt://127.0.0.1:1883: disconnected since"));
    assert!(s.body.contains("last error: connection refused"));

    i.brokers = vec![broker(false, 300)];
    let s = build(&i);
    assert_eq!(s.colour, Colour::Red);
    assert_eq!(
        reasons(&s.body),
        ["&red Broker local (mqtt://127.0.0.1:1883) disconnected for 5m (grace 2m): connection refused"]
    );
    assert!(
        s.summary.ends_with("xymon-mqtt: broker local down"),
        "{}",
        s.summary
    );
}

#[test]
fn failing_deliveries_are_red_and_the_last_error_stays() {
    let mut i = healthy();
    i.delivery.failing = Some((ago(90), "cannot connect to xymond: refused".into()));
    i.delivery.last_error = Some((ago(10), "cannot connect to xymond: refused".into()));
    i.delivery.pending = 3;
    let s = build(&i);
    assert_eq!(s.colour, Colour::Red);
    let r = reasons(&s.body);
    assert_eq!(r.len(), 1, "{}", s.body);
    assert!(r[0].starts_with("&red Deliveries to xymond at 127.0.0.1:1984 fail since "));
    assert!(r[0]
        .ends_with("(1m 30s): cannot connect to xymond: refused; 3 statuses wait, this one too"));
    // Recovered: green again, the last error still shown as a fact.
    i.delivery.failing = None;
    let s = build(&i);
    assert_eq!(s.colour, Colour::Green);
    assert!(s.body.contains("last delivery error: "), "{}", s.body);
    assert!(s
        .body
        .contains("(10s ago): cannot connect to xymond: refused"));
}

#[test]
fn ghosts_are_yellow_with_tests_origin_and_hint() {
    let mut i = healthy();
    i.ghosts.hosts = vec![GhostHost {
        host: "sensro-kitchen".into(),
        tests: vec!["env".into(), "power".into()],
        origin: "test[2]: the rule on topic sensors/{host}/env, host sensro-{host}".into(),
        last_seen: ago(20),
    }];
    let s = build(&i);
    assert_eq!(s.colour, Colour::Yellow);
    let r = reasons(&s.body);
    assert_eq!(r.len(), 1, "{}", s.body);
    assert!(r[0].starts_with("&yellow Host sensro-kitchen is not in xymond's hosts.cfg"));
    assert!(s.body.contains("\n    tests: env, power\n"), "{}", s.body);
    assert!(
        s.body.contains(
            "\n    made by test[2]: the rule on topic sensors/{host}/env, host sensro-{host}\n"
        ),
        "{}",
        s.body
    );
    assert!(
        s.body.contains("\n    add sensro-kitchen to hosts.cfg"),
        "{}",
        s.body
    );
    assert!(
        s.summary.ends_with("xymon-mqtt: 1 ghost host"),
        "{}",
        s.summary
    );
}

#[test]
fn refusals_rrd_failures_and_a_full_store_are_yellow_each_on_its_line() {
    let mut i = healthy();
    i.drops = vec![
        Drops {
            reason: "store_budget".into(),
            total: 10,
            recent: 4,
        },
        Drops {
            reason: "payload_cut".into(),
            total: 3,
            recent: 0,
        },
    ];
    i.rrd = vec![RrdFailure {
        host: "greenhouse".into(),
        rrd: "env.temp".into(),
        error: "No space left on device".into(),
    }];
    i.store.bytes = i.store.budget * 95 / 100 + 1;
    i.brokers[0].state.refused = vec![Refused {
        filter: "secret/#".into(),
        reason: "not authorized".into(),
    }];
    let s = build(&i);
    assert_eq!(s.colour, Colour::Yellow);
    let r = reasons(&s.body);
    assert_eq!(r.len(), 4, "{}", s.body);
    assert_eq!(
        r[0],
        "&yellow Broker local refuses the subscription to secret/#: not authorized"
    );
    assert_eq!(
        r[1],
        "&yellow 4 messages refused in the last 1m (10 since start-up): reason store_budget"
    );
    assert_eq!(
        r[2],
        "&yellow RRD file greenhouse/env.temp.rrd fails: No space left on device"
    );
    assert!(
        r[3].starts_with("&yellow The topic store holds 60.8 MiB of 64.0 MiB (95 %"),
        "{}",
        r[3]
    );
    assert!(s
        .body
        .contains("refused subscription: secret/#: not authorized"));
    // A payload cut to max_payload_bytes is kept, not refused: listed, not yellow.
    let mut i = healthy();
    i.drops[0].recent = 2;
    let s = build(&i);
    assert_eq!(s.colour, Colour::Green, "{}", s.body);
    assert!(
        s.body.contains("payload_cut: 3 (2 in the last 1m)"),
        "{}",
        s.body
    );
    // Exactly 90 % is not over.
    let mut i = healthy();
    i.store.bytes = i.store.budget * 90 / 100;
    assert_eq!(build(&i).colour, Colour::Green);
}

#[test]
fn untrusted_text_cannot_forge_markers_or_lines() {
    let mut i = healthy();
    i.brokers = vec![broker(false, 600)];
    i.brokers[0].state.last_error =
        Some("&green fine\nStatus message received from 10.9.8.7\n\nstatus x.y red".into());
    let s = build(&i);
    assert_eq!(s.colour, Colour::Red);
    assert!(!s.body.contains("\n&green"), "{}", s.body);
    assert!(!s.body.contains("\nStatus message received"), "{}", s.body);
    assert!(!s.body.contains("\n\nstatus"), "{}", s.body);
    assert!(s.body.contains("&amp;green fine"), "{}", s.body);
}
