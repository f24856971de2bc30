//! Tests of `crate::store`: the latest value per broker and topic, payload cuts, the topic cap,
//! watchers, registered topics and `select`.

use super::*;

fn store(max_topics: usize, max_payload: usize) -> Store {
    Store::new(
        &[
            ("a".into(), "mqtt://a".into()),
            ("b".into(), "mqtt://b".into()),
        ],
        max_topics,
        max_payload,
    )
}

fn msg<'a>(topic: &'a str, payload: &'a [u8]) -> Incoming<'a> {
    Incoming {
        topic,
        payload,
        qos: 0,
        retained: false,
        at: SystemTime::now(),
    }
}

#[test]
fn keeps_latest_per_broker_and_topic() {
    let s = store(10, 100);
    assert_eq!(s.update(0, &msg("t", b"1")), Ok(true));
    assert_eq!(s.update(0, &msg("t", b"1")), Ok(false));
    assert_eq!(s.update(0, &msg("t", b"2")), Ok(true));
    s.update(1, &msg("t", b"other")).unwrap();
    let v = s.get(0, "t").unwrap();
    assert_eq!(v.payload.as_ref(), b"2");
    assert_eq!(v.count, 3);
    assert_eq!(s.get(1, "t").unwrap().payload.as_ref(), b"other");
    assert_eq!(s.topic_count(), 2);
    assert_eq!(s.brokers()[0].messages, 3);
}

#[test]
fn payload_is_cut_and_size_remembered() {
    let s = store(10, 4);
    s.update(0, &msg("t", &[b'x'; 1 << 20])).unwrap();
    let v = s.get(0, "t").unwrap();
    assert_eq!(v.payload.len(), 4);
    assert_eq!(v.size, 1 << 20);
}

#[test]
fn topic_cap_rejects_new_topics_only() {
    let s = store(2, 10);
    s.update(0, &msg("a", b"1")).unwrap();
    s.update(1, &msg("b", b"1")).unwrap();
    assert_eq!(s.update(0, &msg("c", b"1")), Err(Rejected::Full));
    assert_eq!(s.update(0, &msg("a", b"2")), Ok(true));
    assert!(s.get(0, "c").is_none());
}

#[test]
fn watchers_get_keys_after_the_value_is_stored() {
    let s = store(1, 10);
    s.update(0, &msg("unwatched", b"1")).unwrap();
    let mut rx = s.subscribe();
    s.update(0, &msg("unwatched", b"2")).unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        Change::Topic {
            broker: 0,
            topic: "unwatched".into()
        }
    );
    assert!(s.update(1, &msg("rejected", b"1")).is_err());
    s.set_connected(1, true, None);
    assert_eq!(rx.try_recv().unwrap(), Change::Broker(1));
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_new_topic_is_keyed_by_the_shared_name_and_times_survive_packing() {
    let s = store(10, 10);
    let mut rx = s.subscribe();
    let name: Arc<str> = Arc::from("room/t");
    let mut m = msg("room/t", b"1");
    m.at = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_790_000_000, 123_456_789);
    s.ingest(0, &m, Some(&name)).stored.unwrap();
    let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
        panic!("no change");
    };
    assert!(Arc::ptr_eq(&topic, &name), "the key is the caller's copy");
    let v = s.get(0, "room/t").unwrap();
    assert_eq!((v.received_at, v.changed_at), (m.at, m.at));
    // Later updates find it by its text, whoever sends them.
    s.update(0, &msg("room/t", b"2")).unwrap();
    let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
        panic!("no change");
    };
    assert!(Arc::ptr_eq(&topic, &name));
    assert_eq!(s.get(0, "room/t").unwrap().count, 2);
}

/// An unregistered topic's ingest hands back the store's own copy of its name, the same one every
/// time (a rule filter's samples share it); a new topic the store refuses has none.
#[test]
fn an_unregistered_topic_hands_back_the_stores_name() {
    let s = store(1, 10);
    let first = s.ingest(0, &msg("a/b", b"1"), None);
    assert!(first.registered.is_none());
    let name = first.name.expect("the store's copy");
    assert_eq!(&*name, "a/b");
    let again = s.ingest(0, &msg("a/b", b"2"), None).name.expect("again");
    assert!(Arc::ptr_eq(&name, &again));
    let refused = s.ingest(0, &msg("c/d", b"1"), None);
    assert_eq!(refused.stored, Err(Rejected::Full));
    assert!(refused.name.is_none());
}

/// A configured topic registered at start-up is nowhere until its first message: not in `get`,
/// `select` or `topic_count`, and no watcher hears of it.
#[test]
fn a_registered_topic_is_invisible_until_published() {
    let s = store(10, 10);
    let mut rx = s.subscribe();
    let name: Arc<str> = Arc::from("room/t");
    assert_eq!(s.register(0, name.clone()), Some(0));
    assert!(s.get(0, "room/t").is_none());
    assert!(s.select(|_, _| true).is_empty());
    assert_eq!(s.topic_count(), 0);
    assert!(rx.try_recv().is_err());

    let got = s.ingest(0, &msg("room/t", b"1"), None);
    assert_eq!(got.stored, Ok(true));
    assert!(
        got.name.is_none(),
        "a registered topic's name is in `registered`"
    );
    let (shared, route) = got.registered.expect("registered");
    assert!(
        Arc::ptr_eq(&shared, &name),
        "the registered copy, not a new one"
    );
    assert_eq!(route, 0);
    let Ok(Change::Topic { topic, .. }) = rx.try_recv() else {
        panic!("no change");
    };
    assert!(Arc::ptr_eq(&topic, &name));
    let v = s.get(0, "room/t").expect("visible once published");
    assert_eq!((v.payload.as_ref(), v.count), (&b"1"[..], 1));
    assert_eq!(s.select(|_, _| true).len(), 1);
    assert_eq!(s.topic_count(), 1);
    assert_eq!(s.ingest(0, &msg("room/t", b"1"), None).stored, Ok(false));
}

/// Each broker has its own registered topics and route ids; the same name on another broker is a
/// topic of its own.
#[test]
fn registered_topics_are_per_broker() {
    let s = store(10, 10);
    assert_eq!(s.register(0, Arc::from("a")), Some(0));
    assert_eq!(s.register(0, Arc::from("b")), Some(1));
    assert_eq!(s.register(0, Arc::from("a")), Some(0), "once per name");
    assert_eq!(s.register(1, Arc::from("b")), Some(0));
    assert_eq!(s.register(2, Arc::from("b")), None, "no such broker");
    s.shrink_to_fit();

    let route = |b, t| s.ingest(b, &msg(t, b"1"), None).registered.map(|r| r.1);
    assert_eq!(route(0, "b"), Some(1));
    assert_eq!(route(1, "b"), Some(0));
    assert_eq!(route(1, "a"), None, "registered on broker 0 only");
    assert!(s.get(1, "a").is_some(), "but stored like any topic");
    assert!(s.get(0, "a").is_none());

    let names = |b| -> Vec<String> {
        s.registered_names(b, 0, 10)
            .iter()
            .map(|n| n.to_string())
            .collect()
    };
    assert_eq!(names(0), ["a", "b"]);
    assert_eq!(names(1), ["b"]);
    assert_eq!(s.registered_names(0, 1, 10).len(), 1);
}

/// `max_topics` counts topics with a value: registered topics count from their first message, and
/// topics only a filter brought are bounded as before. A registered topic over the bound still
/// reports its route, so the collector gets the message.
#[test]
fn max_topics_counts_values_not_registrations() {
    let s = store(2, 10);
    for t in ["r1", "r2", "r3"] {
        s.register(0, Arc::from(t));
    }
    assert_eq!(s.update(0, &msg("f1", b"1")), Ok(true));
    assert_eq!(s.update(0, &msg("r1", b"1")), Ok(true));
    assert_eq!(s.topic_count(), 2);
    let got = s.ingest(0, &msg("r2", b"1"), None);
    assert_eq!(got.stored, Err(Rejected::Full));
    assert_eq!(got.registered.map(|r| r.1), Some(1));
    assert!(s.get(0, "r2").is_none());
    assert_eq!(s.update(0, &msg("f2", b"1")), Err(Rejected::Full));
    assert_eq!(
        s.update(0, &msg("r1", b"2")),
        Ok(true),
        "known topics update"
    );
    assert_eq!(s.topic_count(), 2);
}

#[test]
fn select_filters_and_sorts() {
    let s = store(10, 10);
    for t in ["z", "a", "m"] {
        s.update(0, &msg(t, b"1")).unwrap();
    }
    let topics: Vec<_> = s
        .select(|_, t| t != "m")
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(topics, ["a", "z"]);
}

/// A store over brokers "a" and "b" with a budget of `n` topics whose name is 2 bytes and payload 10.
fn budget_store(n: usize) -> Store {
    Store::with_limits(
        &[
            ("a".into(), "mqtt://a".into()),
            ("b".into(), "mqtt://b".into()),
        ],
        Limits {
            max_topics: 1000,
            max_payload: 1000,
            budget: n * (ENTRY_OVERHEAD + 2 + 10),
        },
    )
}

const TEN: &[u8] = b"0123456789";

/// The budget holds: new topics evict the least recently updated seen topics, across brokers; an update
/// keeps a topic; registered and pinned topics are never evicted; every figure is counted.
#[test]
fn the_budget_evicts_least_recently_updated_seen_topics() {
    let s = budget_store(4);
    s.register(0, Arc::from("r0"));
    s.pin(1, Arc::from("p1"));
    for t in ["r0", "s1", "s2"] {
        s.update(0, &msg(t, TEN)).unwrap();
    }
    s.update(1, &msg("p1", TEN)).unwrap();
    assert_eq!(s.usage().bytes, 4 * (ENTRY_OVERHEAD + 12));
    // s1 is updated, so s2 is now the least recently updated one.
    s.update(0, &msg("s1", TEN)).unwrap();
    s.update(1, &msg("s3", TEN)).unwrap();
    assert!(s.get(0, "s2").is_none(), "s2 evicted");
    for (b, t) in [(0, "r0"), (0, "s1"), (1, "p1"), (1, "s3")] {
        assert!(s.get(b, t).is_some(), "{t} kept");
    }
    s.update(0, &msg("s4", TEN)).unwrap();
    assert!(s.get(0, "s1").is_none(), "then s1");
    s.update(1, &msg("s5", TEN)).unwrap();
    assert!(s.get(1, "s3").is_none(), "then s3, on the other broker");
    let u = s.usage();
    assert_eq!(
        (u.topics, u.bytes, u.evicted_topics, u.evicted_bytes),
        (
            4,
            4 * (ENTRY_OVERHEAD + 12),
            3,
            3 * (ENTRY_OVERHEAD + 12) as u64
        )
    );
    // Only registered and pinned topics left to evict from: a new topic does not fit.
    let t = budget_store(2);
    t.register(0, Arc::from("r0"));
    t.pin(0, Arc::from("p0"));
    t.update(0, &msg("r0", TEN)).unwrap();
    t.update(0, &msg("p0", TEN)).unwrap();
    assert_eq!(t.update(0, &msg("s1", TEN)), Err(Rejected::Budget));
    assert_eq!(t.usage().over_budget, 1);
    assert!(t.get(0, "r0").is_some() && t.get(0, "p0").is_some());
}

/// A registered topic's value always goes in (the test needs it), making room by evicting seen topics
/// and going over the budget only when none is left; a seen topic that outgrows the budget alone goes;
/// a message larger than the whole budget evicts nothing.
#[test]
fn configured_topics_are_kept_and_oversized_ones_go() {
    let s = budget_store(2);
    s.register(0, Arc::from("r0"));
    s.register(0, Arc::from("r1"));
    s.register(0, Arc::from("r2"));
    s.update(0, &msg("s1", TEN)).unwrap();
    s.update(0, &msg("r0", TEN)).unwrap();
    s.update(0, &msg("r1", TEN)).unwrap();
    assert!(s.get(0, "s1").is_none(), "evicted for r1");
    s.update(0, &msg("r2", TEN)).unwrap();
    assert!(s.usage().bytes > s.usage().budget, "configured topics only");
    for t in ["r0", "r1", "r2"] {
        assert!(s.get(0, t).is_some());
    }

    let s = budget_store(2);
    s.update(0, &msg("s1", TEN)).unwrap();
    let huge = vec![b'x'; 2 * (ENTRY_OVERHEAD + 12)];
    assert_eq!(s.update(1, &msg("s2", &huge)), Err(Rejected::Budget));
    assert!(s.get(0, "s1").is_some(), "nothing evicted for it");
    assert_eq!(s.update(0, &msg("s1", &huge)), Err(Rejected::Budget));
    assert!(s.get(0, "s1").is_none(), "too large even alone");
    assert_eq!(s.usage().bytes, 0);
    assert_eq!(s.usage().topics, 0);
}

/// A refused topic keeps its name and counts, not its payload; no reader sees it; its bytes come back to
/// the budget; registered topics cannot be refused.
#[test]
fn refused_topics_keep_no_payload() {
    let s = budget_store(10);
    s.register(0, Arc::from("r0"));
    s.update(0, &msg("r0", TEN)).unwrap();
    s.update(0, &msg("s1", TEN)).unwrap();
    s.refuse(0, "s1");
    s.refuse(0, "r0");
    s.refuse(0, "unknown");
    assert!(s.get(0, "s1").is_none());
    assert!(s.get(0, "r0").is_some(), "a registered topic is wanted");
    assert_eq!(s.update(0, &msg("s1", TEN)), Err(Rejected::Refused));
    assert_eq!(s.select(|_, _| true).len(), 1);
    let u = s.usage();
    assert_eq!(
        u.bytes,
        2 * (ENTRY_OVERHEAD + 2) + 10,
        "s1 holds no payload"
    );
    assert_eq!((u.topics, u.refused_topics, u.refused_messages), (2, 1, 1));
    // Its name can still be evicted like any seen topic.
    let ingested = s.ingest(0, &msg("s1", TEN), None);
    assert_eq!(
        ingested.name.as_deref(),
        Some("s1"),
        "the store's name for the sample"
    );
}

/// The budget's figures as `/metrics` shows them.
#[test]
fn usage_is_encoded_for_prometheus() {
    let s = budget_store(1);
    s.update(0, &msg("s1", TEN)).unwrap();
    s.update(0, &msg("s2", TEN)).unwrap();
    let mut registry = prometheus_client::registry::Registry::with_prefix("xymon_mqtt");
    registry.register_collector(Box::new(UsageCollector(s.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "xymon_mqtt_store_topics 1",
        &format!("xymon_mqtt_store_bytes {}", ENTRY_OVERHEAD + 12),
        "xymon_mqtt_store_evicted_topics_total 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

/// Refused filters: kept sorted, a repeat changes nothing, a grant takes one back, and watchers hear of
/// each change.
#[test]
fn refused_filters_per_broker() {
    let s = store(10, 100);
    let mut changes = s.subscribe();
    assert!(s.set_refused(0, "b/#", Some("not authorized".into())));
    assert!(s.set_refused(0, "a", Some("quota".into())));
    assert!(!s.set_refused(0, "a", Some("quota".into())));
    assert!(s.set_refused(0, "a", Some("other".into())));
    assert!(!s.set_refused(0, "never", None));
    assert!(!s.set_refused(9, "x", Some("no such broker".into())));
    let filters = |b: usize| -> Vec<(String, String)> {
        s.brokers()[b]
            .refused
            .iter()
            .map(|r| (r.filter.clone(), r.reason.clone()))
            .collect()
    };
    assert_eq!(
        filters(0),
        [
            ("a".to_string(), "other".to_string()),
            ("b/#".to_string(), "not authorized".to_string())
        ]
    );
    assert!(filters(1).is_empty());
    assert!(s.set_refused(0, "b/#", None));
    assert_eq!(filters(0).len(), 1);
    let mut heard = 0;
    while changes.try_recv().is_ok() {
        heard += 1;
    }
    assert_eq!(heard, 4);
}
