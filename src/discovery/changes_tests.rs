//! The columns taken at each check (`DiscoveryState::take_changes`): only what changed, every column in
//! turn, staleness by time, columns that moved or emptied; and columns kept from the changes alone
//! always equal to every column built anew.

use super::tests::feed;
use super::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn places(c: &Changes, turn: bool) -> BTreeSet<String> {
    c.columns
        .iter()
        .filter(|(_, why)| (*why == Why::Turn) == turn)
        .map(|(c, _)| format!("{}.{}", c.host, c.column))
        .collect()
}

fn announce(f: &mut super::tests::Feed, i: usize, name: &str, extra: &str) {
    let cfg = format!(r#"{{"stat_t":"s/{i}","dev":{{"ids":"d{i}","name":"{name}"}}{extra}}}"#);
    assert_eq!(
        f.send(&format!("homeassistant/sensor/n{i}/v/config"), &cfg)
            .refused,
        None
    );
}

#[test]
fn only_what_changed_and_every_column_in_turn() {
    let mut f = feed("max_entities = 100\n");
    for i in 0..10 {
        announce(&mut f, i, &format!("dev{i}"), "");
    }
    let all = f.state.take_changes(f.now(), f.wall(), 5);
    assert_eq!(places(&all, false).len() + places(&all, true).len(), 10);
    assert!(all.gone.is_empty());
    // Nothing changed: only the turn of 2 of 10 (5 shares), and after 5 checks every column once.
    let mut turns = Vec::new();
    for _ in 0..5 {
        let c = f.state.take_changes(f.now(), f.wall(), 5);
        assert!(places(&c, false).is_empty(), "{:?}", places(&c, false));
        assert_eq!(places(&c, true).len(), 2);
        turns.extend(places(&c, true));
    }
    turns.sort();
    turns.dedup();
    assert_eq!(turns.len(), 10);
    // A value: that column, once.
    f.send("s/3", "7");
    let c = f.state.take_changes(f.now(), f.wall(), 1000);
    assert_eq!(
        places(&c, false),
        BTreeSet::from(["dev3.sensors".to_string()])
    );
    let c = f.state.take_changes(f.now(), f.wall(), 1000);
    assert!(places(&c, false).is_empty());
    // A device renamed moves its column: the new one comes, the old one is gone.
    announce(&mut f, 4, "porch", "");
    let c = f.state.take_changes(f.now(), f.wall(), 1000);
    assert_eq!(
        places(&c, false),
        BTreeSet::from(["porch.sensors".to_string()])
    );
    assert_eq!(c.gone.len(), 1);
    assert_eq!(c.gone[0].0.as_str(), "dev4");
    // An entity removed empties its column.
    f.send_bytes("homeassistant/sensor/n5/v/config", b"", true);
    let c = f.state.take_changes(f.now(), f.wall(), 1000);
    assert_eq!(c.gone.len(), 1);
    assert_eq!(c.gone[0].0.as_str(), "dev5");
}

#[test]
fn a_value_turning_stale_is_taken_once_when_it_does() {
    let mut f = feed("max_entities = 100\n");
    announce(&mut f, 0, "cellar", r#","exp_aft":60"#);
    announce(&mut f, 1, "attic", "");
    f.send("s/0", "5");
    f.send("s/1", "5");
    f.state.take_changes(f.now(), f.wall(), 1000);
    f.at += 30;
    assert!(places(&f.state.take_changes(f.now(), f.wall(), 1000), false).is_empty());
    f.at += 40;
    let c = f.state.take_changes(f.now(), f.wall(), 1000);
    assert_eq!(
        places(&c, false),
        BTreeSet::from(["cellar.sensors".to_string()])
    );
    assert!(c.columns[0].0.entities[0]
        .judged
        .reason
        .starts_with("stale"));
    f.at += 1;
    assert!(places(&f.state.take_changes(f.now(), f.wall(), 1000), false).is_empty());
}

/// Announcements, values, renames, moves between columns and removals in a seeded random order: the
/// columns kept from the changes of each check (what the statuses in Xymon show) are exactly every
/// column built anew.
#[test]
fn columns_kept_from_changes_equal_every_column() {
    let mut f = feed("max_entities = 200\ncolumn = \"{device_class}\"\n");
    let mut kept = std::collections::BTreeMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..300 {
        for _ in 0..5 {
            let (i, dev) = (next(40), next(12));
            let class = ["temperature", "humidity", "battery"][next(3) as usize];
            let topic = format!("homeassistant/sensor/n{i}/v/config");
            match next(10) {
                0 => {
                    f.send_bytes(&topic, b"", true);
                }
                1..=4 => {
                    let cfg = format!(
                        r#"{{"stat_t":"s/{i}","dev_cla":"{class}","dev":{{"ids":"d{dev}","name":"dev{}"}}}}"#,
                        next(8)
                    );
                    f.send(&topic, &cfg);
                }
                _ => {
                    f.send(&format!("s/{i}"), &next(50).to_string());
                }
            }
        }
        f.at += next(3);
        let c = f.state.take_changes(f.now(), f.wall(), 7);
        for p in &c.gone {
            kept.remove(p);
        }
        for (col, _) in c.columns {
            kept.insert((col.host.clone(), col.column.clone()), col);
        }
        let listed: Vec<&ColumnView> = kept.values().collect();
        assert_eq!(
            listed,
            f.columns().iter().collect::<Vec<_>>(),
            "round {round}"
        );
    }
    assert!(f.state.entity_count() > 0);
}

/// Only values: `Value`, whatever they do to the colour (the session compares colours); a value after a
/// template error, availability, staleness and a new announcement: `Changed`.
#[test]
fn why_a_column_is_taken() {
    let mut f = feed("max_entities = 100\n");
    announce(
        &mut f,
        0,
        "cellar",
        r#","val_tpl":"{{ value_json.t }}","avty_t":"a/0","exp_aft":60"#,
    );
    let why = |f: &mut super::tests::Feed| -> Vec<Why> {
        let c = f.state.take_changes(f.now(), f.wall(), 1000);
        c.columns.into_iter().map(|(_, w)| w).collect()
    };
    why(&mut f);
    f.send("a/0", "online");
    assert_eq!(why(&mut f), [Why::Changed]);
    f.send("s/0", r#"{"t":1}"#);
    assert_eq!(why(&mut f), [Why::Changed], "the first value");
    f.send("s/0", r#"{"t":2}"#);
    f.send("s/0", r#"{"t":99}"#);
    assert_eq!(why(&mut f), [Why::Value]);
    f.send("s/0", "not json");
    assert_eq!(why(&mut f), [Why::Changed], "a template error");
    f.send("s/0", r#"{"t":3}"#);
    assert_eq!(why(&mut f), [Why::Changed], "the error is over");
    f.at += 61;
    assert_eq!(why(&mut f), [Why::Changed], "stale");
    assert!(why(&mut f).is_empty());
}

/// A fleet's repeated texts are kept once: every entity holds the same unit, class, template and model,
/// a device's entities hold their state topic's copy in the index, and every column's entities its
/// name's.
#[test]
fn a_fleets_repeated_texts_are_kept_once() {
    let mut f = feed("max_entities = 5000\n");
    for i in 0..2000 {
        for field in ["temperature", "humidity"] {
            let cfg = format!(
                r#"{{"stat_t":"z/{i}","val_tpl":"{{{{ value_json.{field} }}}}","unit_of_meas":"%","dev_cla":"{field}","name":"{field}","dev":{{"ids":"d{i}","name":"dev{i}","mdl":"WSDCGQ11LM","mf":"Aqara","sw":"3000-0001"}}}}"#
            );
            let out = f.send(&format!("homeassistant/sensor/d{i}/{field}/config"), &cfg);
            assert_eq!(out.refused, None);
        }
    }
    let slots: Vec<&state::Slot> = f.state.entities.values().map(|s| &**s).collect();
    let first = &slots[0].entity;
    for s in &slots {
        let e = &s.entity;
        assert!(Arc::ptr_eq(
            e.unit.as_ref().unwrap(),
            first.unit.as_ref().unwrap()
        ));
        let (topic, _) = f
            .state
            .by_state
            .get_key_value(&*e.state_topic)
            .expect("indexed");
        assert!(Arc::ptr_eq(topic, &e.state_topic));
        let (place, _) = f
            .state
            .by_place
            .get_key_value(&**s.place.as_ref().unwrap())
            .unwrap();
        assert!(Arc::ptr_eq(place, s.place.as_ref().unwrap()));
        let dev = &f.state.devices[s.device as usize];
        let dev0 = &f.state.devices[slots[0].device as usize];
        assert!(Arc::ptr_eq(
            dev.model.as_ref().unwrap(),
            dev0.model.as_ref().unwrap()
        ));
    }
    // "temperature" and "humidity" (each a name and a class), two templates, "%", one each of model,
    // maker and version, and the binary payloads' defaults "ON" and "OFF".
    assert_eq!(f.state.strings.len(), 10);
    assert_eq!(f.state.by_place.len(), 2000);
    assert_eq!(f.state.by_state.len(), 2000);
}

/// A check in steps (`take_due`, then `column_at` a few at a time, as the session does): a column whose
/// last entity leaves between the two steps is not built, and the next check reports it gone; the
/// others are built as they are then.
#[test]
fn a_column_that_empties_between_the_steps_of_a_check_is_gone_at_the_next() {
    let mut f = feed("max_entities = 100\n");
    for i in 0..3 {
        announce(&mut f, i, &format!("dev{i}"), "");
    }
    let due = f.state.take_due(f.now(), 1000);
    assert_eq!(due.places.len(), 3);
    let (dev1, why) = due
        .places
        .iter()
        .find(|(p, _)| p.0.as_str() == "dev1")
        .cloned()
        .unwrap();
    assert_eq!(why, Why::Changed);
    // Between the steps: dev1's only entity is removed, dev2 gets a value.
    f.send("homeassistant/sensor/n1/v/config", "");
    f.send("s/2", "5");
    assert!(f.state.column_at(&dev1, f.now(), f.wall()).is_none());
    let dev2 = due
        .places
        .iter()
        .find(|(p, _)| p.0.as_str() == "dev2")
        .unwrap();
    let col = f.state.column_at(&dev2.0, f.now(), f.wall()).unwrap();
    assert_eq!(col.entities[0].value.as_deref(), Some("5"));
    let next = f.state.take_due(f.now(), 1000);
    assert_eq!(next.gone, vec![Place::clone(&dev1)]);
    assert!(next.places.iter().all(|(p, _)| **p != *dev1));
}
