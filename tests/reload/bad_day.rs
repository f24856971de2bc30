//! Reloads on a bad day, with the real binary: several in a row, one during a broker outage, one while
//! brokers are frozen (SIGSTOP), and one that moves the bridge to another xymond while the old one is
//! down. Part of tests/reload.rs.

use crate::common::free_port;
use crate::common::{signal, wait_until, Mosquitto, Xymond};
use crate::{config, round_delivered, start, stop, stored, subscribed, topics_test, WAIT};

/// Several reloads in a row, then one while the broker is down: each is applied, the bridge reconnects
/// when the broker is back, and delivers.
#[test]
fn several_reloads_in_a_row_and_one_during_a_broker_outage() {
    let xymond = Xymond::start(&["greenhouse", "other", "periodic"]);
    let mut mqtt = Mosquitto::start();
    let web = free_port();
    // A periodic test too: its ticks follow it through every reload.
    let periodic = "[[test]]\nhost = \"periodic\"\ntest = \"env\"\nbroker = \"local\"\nmode = \"periodic\"\ninterval = \"2s\"\nwindow = \"1s\"\ntopics = [\"p\"]\n";
    let base = config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &(topics_test("greenhouse", "local") + periodic),
    );
    let with_other =
        base.clone() + &topics_test("other", "local").replace("[\"a\", \"b\"]", "[\"o\"]");
    let daemon = start(&base);
    wait_until(WAIT, "subscribed", || subscribed(web, 1));
    mqtt.publish("a", "held", false);
    stored(web, "a", "held");
    for i in 0..6 {
        daemon.reload(if i % 2 == 0 { &with_other } else { &base });
    }
    assert_eq!(daemon.log().matches("configuration reloaded").count(), 6);
    // The test the odd reloads drop takes its topic's subscription with it.
    wait_until(WAIT, "o unsubscribed", || {
        mqtt.log_text()
            .contains("Received UNSUBSCRIBE from xymon-mqtt-local-")
    });
    mqtt.publish("b", "held", false);
    xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("a = held") && s.body.contains("b = held")
    });

    mqtt.stop();
    daemon.wait_log("disconnected from MQTT broker");
    daemon.reload(&with_other);
    mqtt.start_again();
    wait_until(WAIT, "subscribed again", || subscribed(web, 1));
    round_delivered(&xymond, &mqtt, "greenhouse", "after-outage");
    mqtt.publish("o", "1", false);
    xymond.wait_for_status("other.env", WAIT, |s| s.body.contains("o = 1"));
    mqtt.publish("p", "after-reloads", true);
    xymond.wait_for_status("periodic.env", WAIT, |s| {
        s.body.contains("p = after-reloads")
    });
    stop(daemon);
}

/// A changed `[xymon] server` applies, and a status pending for a xymond that is down is kept across the
/// reload and delivered to the new one.
#[test]
fn a_new_xymon_server_gets_the_pending_statuses() {
    let mut old = Xymond::start(&["greenhouse"]);
    let new = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let toml = config(
        &old,
        web,
        &[("local", &mqtt)],
        &topics_test("greenhouse", "local"),
    );
    let daemon = start(&toml);
    wait_until(WAIT, "subscribed", || subscribed(web, 1));
    round_delivered(&old, &mqtt, "greenhouse", "1");

    old.stop();
    mqtt.publish("a", "pending", false);
    mqtt.publish("b", "pending", false);
    daemon.wait_log("cannot deliver to xymond");
    daemon.reload(&toml.replace(&old.addr(), &new.addr()));
    new.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("a = pending") && s.body.contains("b = pending")
    });
    round_delivered(&new, &mqtt, "greenhouse", "2");
    stop(daemon);
}

/// A reload while brokers are frozen (SIGSTOP): it does not wait for them. The frozen broker it removes
/// is dropped; the frozen one it keeps gets the new subscription, which takes effect once it is
/// continued (SIGCONT).
#[test]
fn a_reload_while_brokers_are_frozen() {
    let xymond = Xymond::start(&["ha", "hb", "ha2"]);
    let (ma, mb) = (Mosquitto::start(), Mosquitto::start());
    let web = free_port();
    let toml = config(
        &xymond,
        web,
        &[("a", &ma), ("b", &mb)],
        &(topics_test("ha", "a") + &topics_test("hb", "b")),
    );
    let daemon = start(&toml);
    wait_until(WAIT, "subscribed", || subscribed(web, 2));
    round_delivered(&xymond, &ma, "ha", "1");
    ma.publish("a", "held", false);
    stored(web, "a?broker=a", "held");

    let (pa, pb) = (ma.pid().unwrap(), mb.pid().unwrap());
    signal(pa, libc::SIGSTOP).unwrap();
    signal(pb, libc::SIGSTOP).unwrap();
    let extra = "[[test]]\nhost = \"ha2\"\ntest = \"env\"\nbroker = \"a\"\nwindow = \"1h\"\ntopics = [\"x\"]\n";
    daemon.reload(&config(
        &xymond,
        web,
        &[("a", &ma)],
        &(topics_test("ha", "a") + extra),
    ));
    assert!(daemon
        .log()
        .contains("brokers: 0 added, 1 removed (b), 0 changed, 1 kept"));
    signal(pa, libc::SIGCONT).unwrap();
    signal(pb, libc::SIGCONT).unwrap();

    ma.publish("b", "held", false);
    xymond.wait_for_status("ha.env", WAIT, |s| {
        s.body.contains("a = held") && s.body.contains("b = held")
    });
    ma.publish("x", "1", false);
    xymond.wait_for_status("ha2.env", WAIT, |s| s.body.contains("x = 1"));
    stop(daemon);
}
