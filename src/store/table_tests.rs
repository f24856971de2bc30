//! Tests of the per-broker table: packing, registration order, lookups through growth, and the update
//! order of seen topics (touch, eviction, removal from the middle) with pinned topics left out of it.

use super::super::entry::{Entry, Message, Named, Stamp};
use super::*;
use std::hash::RandomState;
use std::time::{Duration, SystemTime};

fn message(payload: &[u8]) -> Message<'_> {
    Message {
        kept: payload,
        size: payload.len() as u32,
        qos: 1,
        retained: false,
        at: Stamp::from(SystemTime::now()),
    }
}

fn named(name: &str) -> Named {
    Named {
        name: Arc::from(name),
        entry: Entry::empty(),
    }
}

/// The memory figures of BENCHMARKS.md count on these sizes.
#[test]
fn entries_stay_packed() {
    assert_eq!(std::mem::size_of::<Entry>(), 48);
    assert_eq!(std::mem::size_of::<Named>(), 64);
    assert_eq!(std::mem::size_of::<Pos>(), 4);
}

#[test]
fn registered_topics_are_numbered_in_order_and_once() {
    let h = RandomState::new();
    let mut t = Table::default();
    assert_eq!(t.register(&h, Arc::from("a")), Some(0));
    assert_eq!(t.register(&h, Arc::from("b")), Some(1));
    assert_eq!(
        t.register(&h, Arc::from("a")),
        Some(0),
        "already registered"
    );
    assert!(t.insert_seen(&h, hash(&h, "s"), named("s")).is_some());
    assert_eq!(t.register(&h, Arc::from("s")), None, "came as a seen topic");
    assert_eq!(t.register(&h, Arc::from("c")), Some(2));
    let names: Vec<String> = t
        .registered_names(1, 5)
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, ["b", "c"]);
    t.shrink_to_fit(&h);
    for (topic, route) in [("a", Some(0)), ("b", Some(1)), ("c", Some(2)), ("s", None)] {
        let (n, r) = t.find(hash(&h, topic), topic).unwrap();
        assert_eq!((&*n.name, r), (topic, route));
    }
    assert!(t.find(hash(&h, "x"), "x").is_none());
}

#[test]
fn a_registered_topic_has_no_value_until_its_first_message() {
    let h = RandomState::new();
    let mut t = Table::default();
    t.register(&h, Arc::from("a"));
    assert_eq!(t.values().count(), 0);
    let (n, _) = t.find(hash(&h, "a"), "a").unwrap();
    assert!(n.entry.value().is_none());
    let (n, _) = t.find_mut(hash(&h, "a"), "a").unwrap();
    assert!(
        n.entry.record(&message(b"")),
        "the first message is a change"
    );
    assert!(!n.entry.record(&message(b"")));
    let v = n.entry.value().unwrap();
    assert_eq!((v.count, v.qos, v.payload.len()), (2, 1, 0));
    assert_eq!(t.values().count(), 1);
}

/// Seen topics that outgrow the index many times over are all still found by their text.
#[test]
fn lookups_survive_growth() {
    let h = RandomState::new();
    let mut t = Table::default();
    for i in 0..1000 {
        t.register(&h, Arc::from(format!("r/{i}")));
        let s = format!("s/{i}");
        assert!(t.insert_seen(&h, hash(&h, &s), named(&s)).is_some());
    }
    for i in 0..1000 {
        let r = format!("r/{i}");
        assert_eq!(t.find(hash(&h, &r), &r).unwrap().1, Some(i));
        let s = format!("s/{i}");
        assert_eq!(t.find(hash(&h, &s), &s).unwrap().1, None);
    }
}

/// A seen topic `name` whose last message came at second `t`.
fn seen_at(name: &str, t: u64) -> Named {
    let mut n = named(name);
    n.entry.record(&Message {
        kept: b"x",
        size: 1,
        qos: 0,
        retained: false,
        at: Stamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(t)),
    });
    n
}

fn insert(t: &mut Table, h: &RandomState, name: &str, at: u64) -> u32 {
    t.insert_seen(h, hash(h, name), seen_at(name, at)).unwrap()
}

fn seen_index(t: &mut Table, h: &RandomState, name: &str) -> u32 {
    match t.find_mut(hash(h, name), name).unwrap().1 {
        Kind::Seen(i) => i,
        k => panic!("{name} is {k:?}"),
    }
}

/// Eviction takes the least recently updated seen topic; an update moves a topic to the end; registered
/// and pinned topics are never in the order; removing from the middle keeps the links and the index.
#[test]
fn seen_topics_leave_least_recently_updated_first() {
    let h = RandomState::new();
    let mut t = Table::default();
    t.register(&h, Arc::from("r"));
    t.pin(&h, Arc::from("p"));
    t.pin(&h, Arc::from("r"));
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        insert(&mut t, &h, name, i as u64);
    }
    assert_eq!(t.update_order(), ["a", "b", "c", "d"]);
    assert_eq!(
        t.find_mut(hash(&h, "p"), "p").unwrap().1,
        Kind::Pinned,
        "pinned"
    );
    assert_eq!(
        t.find_mut(hash(&h, "r"), "r").unwrap().1,
        Kind::Registered(0),
        "pinning a registered topic leaves it registered"
    );
    let a = seen_index(&mut t, &h, "a");
    t.touch(a);
    let c = seen_index(&mut t, &h, "c");
    t.touch(c);
    t.touch(c);
    assert_eq!(t.update_order(), ["b", "d", "a", "c"]);
    assert_eq!(
        t.oldest_update(),
        Some(Stamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(1)))
    );
    assert_eq!(&*t.evict_oldest(&h).unwrap().name, "b");
    // From the middle, then the newest: the last `Vec` entry moves into the hole each time.
    let a = seen_index(&mut t, &h, "a");
    assert_eq!(&*t.remove_seen(&h, a).unwrap().name, "a");
    assert_eq!(t.update_order(), ["d", "c"]);
    let c = seen_index(&mut t, &h, "c");
    assert_eq!(&*t.remove_seen(&h, c).unwrap().name, "c");
    assert_eq!(t.update_order(), ["d"]);
    let p = match t.position(hash(&h, "p"), "p") {
        Some(pos) => pos.0 & !SEEN,
        None => panic!("p lost"),
    };
    assert!(t.remove_seen(&h, p).is_none(), "a pinned topic stays");
    for name in ["r", "p", "d"] {
        assert_eq!(&*t.find(hash(&h, name), name).unwrap().0.name, name);
    }
    for gone in ["a", "b", "c"] {
        assert!(t.find(hash(&h, gone), gone).is_none(), "{gone}");
    }
    assert_eq!(&*t.evict_oldest(&h).unwrap().name, "d");
    assert!(t.evict_oldest(&h).is_none());
    assert!(t.oldest_update().is_none());
    assert!(t.find(hash(&h, "p"), "p").is_some());
}

/// Many insertions, touches and evictions in a mixed order agree with a plain list kept beside them.
#[test]
fn update_order_matches_a_reference_list() {
    let h = RandomState::new();
    let mut t = Table::default();
    let mut reference: Vec<String> = Vec::new();
    let mut next = 0u64;
    // A fixed pseudo-random walk (xorshift), so a failure repeats.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for step in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 | 1 => {
                let name = format!("t{next}");
                next += 1;
                insert(&mut t, &h, &name, step);
                reference.push(name);
            }
            2 if !reference.is_empty() => {
                let k = (x >> 8) as usize % reference.len();
                let name = reference.remove(k);
                let i = seen_index(&mut t, &h, &name);
                t.touch(i);
                reference.push(name);
            }
            _ if !reference.is_empty() => {
                if x & 0x100 == 0 {
                    let gone = t.evict_oldest(&h).unwrap();
                    assert_eq!(*gone.name, *reference.remove(0));
                } else {
                    let k = (x >> 9) as usize % reference.len();
                    let name = reference.remove(k);
                    let i = seen_index(&mut t, &h, &name);
                    assert_eq!(*t.remove_seen(&h, i).unwrap().name, *name);
                }
            }
            _ => {}
        }
        assert_eq!(t.update_order(), reference, "step {step}");
    }
    for name in &reference {
        assert!(t.find(hash(&h, name), name).is_some());
    }
}
