//! Routing (who gets which topic) and the collector's sample path, without a broker.

use super::*;
use crate::colour::Colour;
use crate::config::fixtures;
use crate::mqtt::Wanted;
use crate::plan::Plan;
use crate::store::Incoming;
use bytes::Bytes;
use rumqttc::QoS;

/// A rule before the `topics` tests (slots are numbered without it), two tests sharing a topic at
/// different QoS, and a periodic test that must not be subscribed permanently.
const CONFIG: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
broker = "local"
topic = "sensors/{host}/env"
host = "{host}"
test = "env"
  [[test.value]]
  name = "t"
  path = "$.t"

[[test]]
broker = "local"
host = "room1"
test = "power"
topics = ["room1/volts", "shared/clock"]

[[test]]
broker = "local"
host = "room2"
test = "power"
qos = 1
topics = ["shared/clock"]

[[test]]
broker = "local"
host = "room3"
test = "slow"
mode = "periodic"
topics = ["room3/slow"]
"#;

/// A config's plan, its store (the exact topics registered) and each broker's subscriptions and routes,
/// as the bridge builds them at start-up.
pub(super) struct Routed {
    config: crate::config::Config,
    plan: Plan,
    pub(super) store: Store,
    wanted: Vec<Wanted>,
    routes: Vec<RouteTable>,
}

pub(super) fn routed(text: &str) -> Routed {
    let config = fixtures::config(text);
    let plan = Plan::compile(&config).expect("plan");
    let store = Store::for_plan(&plan);
    let wanted = plan.routing.iter().map(Wanted::new).collect();
    let routes = plan
        .routing
        .iter()
        .map(|r| RouteTable::new(&r.exact))
        .collect();
    Routed {
        config,
        plan,
        store,
        wanted,
        routes,
    }
}

/// What ingest's store lookup finds for `topic` on broker 0 (a message with an empty payload).
fn ingest(store: &Store, topic: &str) -> Option<(Arc<str>, RouteId)> {
    let msg = Incoming {
        topic,
        payload: b"",
        qos: 0,
        retained: false,
        at: SystemTime::now(),
    };
    store.ingest(0, &msg, None).registered
}

/// A collector for the plan's tests on one broker ("local") that no snapshot can reach (nothing serves
/// its snapshot requests), with its outbox.
pub(super) fn collector_for(r: Routed) -> (Collector, Arc<Outbox>) {
    let outbox = Arc::new(Outbox::new());
    let (snapshots, _) = mpsc::channel(1);
    let sinks = Sinks {
        outbox: outbox.clone(),
        metrics: Arc::new(Metrics::new()),
        rrd: None,
        snapshots,
    };
    let collector = Collector::new(r.plan.tests, r.plan.rules, r.routes, r.store, sinks, 512);
    (collector, outbox)
}

#[test]
fn routing_numbers_slots_without_rules_and_shares_names() {
    let Routed {
        config: c,
        store,
        wanted,
        routes,
        ..
    } = routed(CONFIG);
    let w = &wanted[0];

    let mut exact: Vec<String> = store
        .registered_names(0, 0, 10)
        .iter()
        .map(|n| n.to_string())
        .collect();
    exact.sort_unstable();
    assert_eq!(
        exact,
        ["room1/volts", "shared/clock"],
        "periodic topics are not permanent"
    );
    assert_eq!(store.topic_count(), 0, "registered topics have no value");
    let route_of = |t: &str| store.register(0, Arc::from(t)).unwrap();
    assert_eq!(
        w.exact_qos[route_of("shared/clock") as usize],
        QoS::AtLeastOnce,
        "highest QoS wins"
    );

    // room1.power is slot 0 and room2.power slot 1, although the rule comes first in the config.
    let route = |t: &str| routes[0].get(route_of(t)).unwrap().to_vec();
    assert_eq!(route("room1/volts"), [(0, 0)]);
    assert_eq!(route("shared/clock"), [(0, 1), (1, 0)]);

    // Ingest gets the config's own copy of the name, not a new one, and the collector's route.
    let (name, r) = ingest(&store, "room1/volts").expect("registered");
    let configured = c.tests[1].get_ref().topics[0].shared();
    assert!(Arc::ptr_eq(&name, &configured));
    assert_eq!(r, route_of("room1/volts"));
    assert!(ingest(&store, "sensors/a/env").is_none());
    assert!(w.matches_filter("sensors/a/env"));
    assert!(!w.matches_filter("sensors/a/other"));
}

#[test]
fn subscriptions_come_in_chunks_that_cover_everything_once() {
    let Routed { store, wanted, .. } = routed(CONFIG);
    let w = &wanted[0];
    assert_eq!(w.subscription_count(), 3);
    let mut all = Vec::new();
    let mut start = 0;
    loop {
        let chunk = w.subscriptions(&store, 0, start, 2);
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 2);
        start += chunk.len();
        all.extend(chunk);
    }
    assert_eq!(all[0].0, "sensors/+/env", "rule filters first");
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        [
            ("room1/volts".to_string(), QoS::AtMostOnce),
            ("sensors/+/env".to_string(), QoS::AtMostOnce),
            ("shared/clock".to_string(), QoS::AtLeastOnce),
        ]
    );
}

/// Before routing numbered slots itself, a rule ahead of a `topics` test sent that test's samples to the
/// wrong slot (or past the end of the slot list).
#[tokio::test]
async fn a_round_after_a_rule_completes_into_its_own_status() {
    let r = routed(CONFIG);
    let store = r.store.clone();
    let (collector, outbox) = collector_for(r);
    let (tx, rx) = mpsc::channel(16);
    let run = tokio::spawn(collector.run(rx, mpsc::channel(1).1));
    for (topic, payload) in [("room1/volts", "230"), ("shared/clock", "12:00")] {
        let Some((name, route)) = ingest(&store, topic) else {
            panic!("{topic} not wanted");
        };
        tx.send(Sample {
            broker: 0,
            topic: name,
            route: Some(route),
            payload: Bytes::from(payload),
            retained: false,
            at: SystemTime::now(),
            queued: None,
        })
        .await
        .unwrap();
    }
    drop(tx);
    run.await.unwrap();
    let tests = outbox.tests();
    let room1 = tests
        .iter()
        .find(|t| t.host == "room1")
        .expect("room1.power sent");
    assert_eq!(room1.colour, Colour::Green, "{}", room1.message);
    assert!(
        room1.message.contains("room1/volts = 230"),
        "{}",
        room1.message
    );
    assert!(
        room1.message.contains("shared/clock = 12:00"),
        "{}",
        room1.message
    );
    // room2.power's round got the clock too and was closed at shutdown, missing nothing.
    let room2 = tests
        .iter()
        .find(|t| t.host == "room2")
        .expect("room2.power sent");
    assert_eq!(room2.colour, Colour::Green, "{}", room2.message);
}

/// Exact-filter rules: one on a topic two `topics` tests also list (placed first, so its route exists
/// before they add their destinations), one on a topic nothing else wants (a route with no destination).
const EXACT_RULES: &str = r#"
[[broker]]
name = "local"
url = "mqtt://127.0.0.1:1883"

[[test]]
broker = "local"
topic = "shared/clock"
host = "clock"
test = "clock"
  [[test.value]]
  name = "t"

[[test]]
broker = "local"
topic = "solo/temp"
host = "solo"
test = "temp"
  [[test.value]]
  name = "t"

[[test]]
broker = "local"
host = "room1"
test = "power"
topics = ["room1/volts", "shared/clock"]

[[test]]
broker = "local"
host = "room2"
test = "power"
topics = ["shared/clock"]
"#;

#[test]
fn exact_rules_share_routes_with_topics_tests_and_slots_share_the_config_lists() {
    let r = routed(EXACT_RULES);
    let (store, wanted, routes) = (&r.store, &r.wanted, &r.routes);
    let route_of = |t: &str| store.register(0, Arc::from(t)).unwrap();
    let route = |t: &str| routes[0].get(route_of(t)).map(|r| r.to_vec());
    assert_eq!(route("shared/clock").unwrap(), [(0, 1), (1, 0)]);
    assert_eq!(route("room1/volts").unwrap(), [(0, 0)]);
    assert!(
        route("solo/temp").is_none_or(|r| r.is_empty()),
        "only a rule wants it"
    );
    assert_eq!(wanted[0].exact_qos.len(), 3);
    assert_eq!(store.registered_names(0, 0, 10).len(), 3);

    let config = r.config.clone();
    let (collector, _) = collector_for(r);
    // The slots hold the config's own lists (memory), not copies.
    assert_eq!(collector.slots.len(), 2);
    for (slot, cfg) in collector.slots.iter().zip(&config.tests[2..]) {
        assert!(Arc::ptr_eq(&slot.topics, &cfg.get_ref().topics));
    }
}

/// A refusal from the permanent session: the continuous test that reads the refused topic gets a yellow
/// status at once (it might never complete a round), the rule whose filter is refused says so in its
/// instances' statuses, and the round that closes later names the refusal beside the missing topic.
#[tokio::test]
async fn refused_filters_are_in_the_statuses_of_the_tests_that_read_them() {
    let r = routed(CONFIG);
    let store = r.store.clone();
    let (collector, outbox) = collector_for(r);
    let (tx, rx) = mpsc::channel(16);
    let (refusals_tx, refusals) = mpsc::channel(4);
    let run = tokio::spawn(collector.run(rx, refusals));
    // The rule has an instance before its filter is refused.
    tx.send(Sample {
        broker: 0,
        topic: Arc::from("sensors/kitchen/env"),
        route: None,
        payload: Bytes::from_static(br#"{"t": 21}"#),
        retained: false,
        at: SystemTime::now(),
        queued: None,
    })
    .await
    .unwrap();
    for filter in ["room1/volts", "sensors/+/env"] {
        refusals_tx
            .send(Refusal {
                broker: 0,
                filter: filter.into(),
                reason: Some("not authorized (0x87)".into()),
            })
            .await
            .unwrap();
    }
    let refused = |filter: &str| {
        format!("&yellow The broker refuses the subscription to {filter}: not authorized (0x87)")
    };
    let wait = |host: &'static str, want: String| {
        let outbox = outbox.clone();
        async move {
            for _ in 0..200 {
                if let Some(t) = outbox.tests().into_iter().find(|t| t.host == host) {
                    if t.message.contains(&want) {
                        return t;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{host}: no status with {want:?}: {:?}", outbox.tests());
        }
    };
    let room1 = wait("room1", refused("room1/volts")).await;
    assert_eq!(room1.colour, Colour::Yellow);
    assert!(
        room1.message.contains("the broker refuses 1 of 2 topics"),
        "{}",
        room1.message
    );
    let kitchen = wait("kitchen", refused("sensors/+/env")).await;
    assert_eq!(kitchen.colour, Colour::Yellow, "{}", kitchen.message);
    // room2.power does not read room1/volts: nothing for it yet.
    assert!(outbox.tests().iter().all(|t| t.host != "room2"));

    // A round of room1.power without the refused topic.
    let (name, route) = ingest(&store, "shared/clock").expect("routed");
    tx.send(Sample {
        broker: 0,
        topic: name,
        route: Some(route),
        payload: Bytes::from_static(b"12:00"),
        retained: false,
        at: SystemTime::now(),
        queued: None,
    })
    .await
    .unwrap();
    drop(tx);
    run.await.unwrap();
    let room1 = outbox
        .tests()
        .into_iter()
        .find(|t| t.host == "room1")
        .unwrap();
    assert!(
        room1.message.contains("Missing topic: room1/volts")
            && room1.message.contains(&refused("room1/volts")),
        "{}",
        room1.message
    );
}
