//! Reload (SIGHUP, `systemctl reload xymon-mqtt`) with the real binary, real mosquitto brokers and a real
//! xymond: an invalid config is refused with file, line and key and the running one stays; a valid one
//! is applied without a restart. Brokers come and go while an unchanged one keeps its session and a
//! changed one reconnects; a rule whose config did not change keeps its hit count and its staleness
//! clock, a changed one starts fresh; the store's values stay; web settings apply; a new xymond gets the
//! statuses pending for the old one; a round open across the reload is sent once, complete; several
//! reloads in a row, one during a broker outage and one while brokers are frozen leave a working bridge
//! that still stops cleanly.

#[path = "reload/bad_day.rs"]
mod bad_day;
mod common;
#[path = "reload/discovery.rs"]
mod discovery;
#[path = "reload/own_column.rs"]
mod own_column;

use common::daemon::{Daemon, Stderr, WAIT};
use common::web::get;
use common::{free_port, port_is_open, wait_until, Mosquitto, Xymond};
use std::path::Path;
use std::process::Stdio;

const BIN: &str = env!("CARGO_BIN_EXE_xymon-mqtt");

/// `[xymon]` to `xymond`, `[web]` on `web`, one `[[broker]]` per (name, broker), then `tests`.
pub(crate) fn config(
    xymond: &Xymond,
    web: u16,
    brokers: &[(&str, &Mosquitto)],
    tests: &str,
) -> String {
    let mut c = format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}/rrd\"\n[web]\nlisten = \"127.0.0.1:{web}\"\n",
        xymond.addr(),
        xymond.dir().display()
    );
    for (name, mqtt) in brokers {
        c.push_str(&format!(
            "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\n",
            mqtt.url()
        ));
    }
    c.push_str(tests);
    c
}

/// A `topics` test `host.env` on `broker` of topics `a` and `b`, its round open for an hour.
pub(crate) fn topics_test(host: &str, broker: &str) -> String {
    format!(
        "[[test]]\nhost = \"{host}\"\ntest = \"env\"\nbroker = \"{broker}\"\nwindow = \"1h\"\ntopics = [\"a\", \"b\"]\n"
    )
}

/// SIGTERM: the bridge stops cleanly (exit 0) after its reloads.
pub(crate) fn stop(mut daemon: Daemon) {
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", daemon.log());
    assert!(daemon.log().contains("stopped"));
}

pub(crate) fn start(toml: &str) -> Daemon {
    let daemon = Daemon::start(Path::new(BIN), toml, Stderr::Read, Stdio::null());
    daemon.wait_log("bridge running");
    daemon
}

/// Publishes `a` and `b` with `value` on `mqtt` and waits for xymond to hold `host.env` with both.
pub(crate) fn round_delivered(xymond: &Xymond, mqtt: &Mosquitto, host: &str, value: &str) {
    mqtt.publish("a", value, false);
    mqtt.publish("b", value, false);
    let want = [format!("&green a = {value}"), format!("&green b = {value}")];
    xymond.wait_for_status(&format!("{host}.env"), WAIT, |s| {
        want.iter().all(|w| s.body.contains(w.as_str()))
    });
}

/// Waits until the API shows `payload` on `topic`: ingest has stored it and handed it to the collector.
pub(crate) fn stored(web: u16, topic: &str, payload: &str) {
    wait_until(WAIT, &format!("{topic} = {payload} in the API"), || {
        let r = get(web, &format!("/api/v1/topics/{topic}"));
        r.status == 200 && r.json()["payload"] == payload
    });
}

pub(crate) fn subscribed(web: u16, brokers: usize) -> bool {
    let b = get(web, "/api/v1/brokers").json();
    b.as_array()
        .is_some_and(|a| a.len() == brokers && a.iter().all(|b| b["subscribed"] == true))
}

/// `xymon_mqtt_statuses_sent_total` from /metrics.
fn statuses_sent(web: u16) -> u64 {
    get(web, "/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with("xymon_mqtt_statuses_sent_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("statuses_sent in /metrics")
}

/// An invalid config on SIGHUP is logged as `check` prints it (file, line, key) and the bridge runs on
/// with the old one: the same test still delivers, and a value in a test the bad config would add goes
/// nowhere.
#[test]
fn an_invalid_config_is_refused_and_the_running_one_stays() {
    let xymond = Xymond::start(&["greenhouse"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let good = config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &topics_test("greenhouse", "local"),
    );
    let daemon = start(&good);
    wait_until(WAIT, "subscribed", || subscribed(web, 1));
    round_delivered(&xymond, &mqtt, "greenhouse", "1");

    let bad = good.replace("window = \"1h\"", "window = \"forever\"");
    daemon.reload(&bad);
    let log = daemon.log();
    let line = bad
        .lines()
        .position(|l| l.contains("forever"))
        .expect("the bad line")
        + 1;
    let located = format!("{}:{line}:", daemon.config.display());
    let refused = log
        .lines()
        .find(|l| l.contains("configuration not reloaded"))
        .expect("the refusal");
    assert!(refused.contains(&located), "{refused}");
    assert!(refused.contains("key `test[0].window`"), "{refused}");
    assert!(refused.contains("running on with the previous configuration"));
    assert!(!log.contains("configuration reloaded"), "{log}");

    round_delivered(&xymond, &mqtt, "greenhouse", "after-bad-reload");
    assert!(get(web, "/healthz").status == 200);
    stop(daemon);
}

/// A broker added and one removed by a reload: the new one is connected and its test delivers, the
/// removed one's session is closed, and the unchanged one keeps its session (mosquitto logged one
/// connection from it, and the bridge one connect) while its subscriptions follow the new config.
#[test]
fn brokers_added_and_removed_while_an_unchanged_one_keeps_its_session() {
    let xymond = Xymond::start(&["ha", "hb", "hc", "ha2"]);
    let (ma, mb, mc) = (Mosquitto::start(), Mosquitto::start(), Mosquitto::start());
    let web = free_port();
    let before = config(
        &xymond,
        web,
        &[("a", &ma), ("b", &mb)],
        &(topics_test("ha", "a") + &topics_test("hb", "b")),
    );
    let daemon = start(&before);
    wait_until(WAIT, "subscribed", || subscribed(web, 2));
    round_delivered(&xymond, &ma, "ha", "1");
    round_delivered(&xymond, &mb, "hb", "1");

    // c is added, b removed; a stays, and gains a test of other topics (a new subscription).
    let extra = "[[test]]\nhost = \"ha2\"\ntest = \"env\"\nbroker = \"a\"\nwindow = \"1h\"\ntopics = [\"x\"]\n";
    let after = config(
        &xymond,
        web,
        &[("c", &mc), ("a", &ma)],
        &(topics_test("ha", "a") + &topics_test("hc", "c") + extra),
    );
    daemon.reload(&after);
    let log = daemon.log();
    assert!(
        log.contains("configuration reloaded: brokers: 1 added (c), 1 removed (b), 0 changed, 1 kept; tests: 2 added (hc.env, ha2.env), 1 removed (hb.env), 0 changed, 1 kept"),
        "{log}"
    );
    wait_until(WAIT, "a and c subscribed", || subscribed(web, 2));
    let names: Vec<String> = get(web, "/api/v1/brokers")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c", "a"]);

    round_delivered(&xymond, &mc, "hc", "on-c");
    round_delivered(&xymond, &ma, "ha", "2");
    ma.publish("x", "7", false);
    xymond.wait_for_status("ha2.env", WAIT, |s| s.body.contains("&green x = 7"));

    let connects = |mqtt: &Mosquitto, id: &str| {
        mqtt.log_text()
            .lines()
            .filter(|l| l.contains("New client connected") && l.contains(id))
            .count()
    };
    assert_eq!(connects(&ma, "xymon-mqtt-a-"), 1, "{}", ma.log_text());
    // One SUBSCRIBE at the connect, one for the filter the reload added (x), none replaying a and b.
    let subscribes = ma
        .log_text()
        .lines()
        .filter(|l| l.contains("Received SUBSCRIBE from xymon-mqtt-a-"))
        .count();
    assert_eq!(subscribes, 2, "{}", ma.log_text());
    assert_eq!(
        log.matches("connected to MQTT broker broker=a").count(),
        1,
        "{log}"
    );
    wait_until(WAIT, "b's session closed", || {
        ma.log_text().contains("xymon-mqtt-a-")
            && mb
                .log_text()
                .lines()
                .any(|l| l.contains("xymon-mqtt-b-") && l.contains("disconnected"))
    });
    // Nothing more comes from b.
    let hb = xymond.xymondlog("hb.env").unwrap();
    mb.publish("a", "after-removal", false);
    mb.publish("b", "after-removal", false);
    round_delivered(&xymond, &ma, "ha", "3");
    assert_eq!(xymond.xymondlog("hb.env").unwrap().body, hb.body);

    // A changed broker (its keep_alive) is reconnected; its test keeps its state all the same.
    ma.publish("a", "across", false);
    stored(web, "a?broker=a", "across");
    daemon.reload(&after.replace(
        &format!("name = \"a\"\nurl = \"{}\"\n", ma.url()),
        &format!(
            "name = \"a\"\nurl = \"{}\"\nkeep_alive = \"20s\"\n",
            ma.url()
        ),
    ));
    assert!(daemon
        .log()
        .contains("brokers: 0 added, 0 removed, 1 changed (a), 1 kept"));
    wait_until(WAIT, "a connected again", || {
        connects(&ma, "xymon-mqtt-a-") == 2
    });
    wait_until(WAIT, "a and c subscribed", || subscribed(web, 2));
    ma.publish("b", "across", false);
    xymond.wait_for_status("ha.env", WAIT, |s| {
        s.body.contains("&green a = across") && s.body.contains("&green b = across")
    });
    stop(daemon);
}

/// A rule needing 3 hits: 2 samples before the reload, 1 after, and the colour changes: the unchanged
/// rule kept its count. A second rule whose threshold changed starts fresh: the same 2 + 1 leave it
/// green. A third rule's instance, unchanged, goes stale after the reload without any message: its
/// staleness clock survived (with its state lost it would never be sent again).
#[test]
fn unchanged_rules_keep_hits_and_staleness_and_changed_ones_start_fresh() {
    let xymond = Xymond::start(&["gh1", "gh2", "gh3"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let rule = |name: &str, red: &str, expire: &str| {
        format!(
            "[[test]]\nbroker = \"local\"\ntopic = \"{name}/{{host}}\"\nhost = \"{{host}}\"\ntest = \"{name}\"\n{expire}\
             [[test.value]]\nname = \"v\"\nred = \"{red}\"\nhits = 3\n"
        )
    };
    let rules = |changed_red: &str| {
        rule("kept", "> 30", "")
            + &rule("changed", changed_red, "")
            + &rule("stale", "> 30", "expire_after = \"4s\"\n")
    };
    let before = config(&xymond, web, &[("local", &mqtt)], &rules("> 30"));
    let daemon = start(&before);
    wait_until(WAIT, "subscribed", || subscribed(web, 1));
    mqtt.publish("stale/gh3", "1", false);
    for (i, v) in ["35.1", "35.2"].iter().enumerate() {
        mqtt.publish("kept/gh1", v, false);
        mqtt.publish("changed/gh2", v, false);
        stored(web, "kept/gh1", v);
        stored(web, "changed/gh2", v);
        if i == 0 {
            xymond.wait_for_status("gh1.kept", WAIT, |s| s.color == "green");
        }
    }
    xymond.wait_for_status("gh3.stale", WAIT, |s| s.color == "green");

    daemon.reload(&config(&xymond, web, &[("local", &mqtt)], &rules("> 31")));
    let log = daemon.log();
    assert!(
        log.contains("tests: 0 added, 0 removed, 1 changed ({host}.changed), 2 kept"),
        "{log}"
    );

    mqtt.publish("kept/gh1", "35.3", false);
    mqtt.publish("changed/gh2", "35.3", false);
    xymond.wait_for_status("gh1.kept", WAIT, |s| {
        s.color == "red" && s.body.contains("35.3")
    });
    let gh2 = xymond.wait_for_status("gh2.changed", WAIT, |s| s.body.contains("35.3"));
    assert_eq!(
        gh2.color, "green",
        "the changed rule kept its hits: {}",
        gh2.body
    );
    xymond.wait_for_status("gh3.stale", WAIT, |s| s.color == "yellow");
    stop(daemon);
}

/// The store's values survive a reload (the API still shows them, also a topic whose route number
/// changed), a changed web listen address applies (the old port is closed, the new one serves), a
/// round open across the reload is sent once, with the value from before and the one from after, and a
/// token file added by a later reload is required.
#[test]
fn store_values_web_settings_and_an_open_round_survive() {
    let xymond = Xymond::start(&["greenhouse", "first"]);
    let mqtt = Mosquitto::start();
    let (web, web2) = (free_port(), free_port());
    let daemon = start(&config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &topics_test("greenhouse", "local"),
    ));
    wait_until(WAIT, "subscribed", || subscribed(web, 1));
    round_delivered(&xymond, &mqtt, "greenhouse", "1");
    mqtt.publish("a", "half", false);
    stored(web, "a", "half");
    let sent = statuses_sent(web);

    // A test before it: every route of the old one is renumbered.
    let first = "[[test]]\nhost = \"first\"\ntest = \"env\"\nbroker = \"local\"\nwindow = \"1h\"\ntopics = [\"z\"]\n";
    daemon.reload(&config(
        &xymond,
        web2,
        &[("local", &mqtt)],
        &(first.to_string() + &topics_test("greenhouse", "local")),
    ));
    wait_until(WAIT, "the new port", || port_is_open(web2));
    assert!(!port_is_open(web), "the old port still listens");
    let a = get(web2, "/api/v1/topics/a");
    assert_eq!(a.json()["payload"], "half", "the store lost a");
    assert_eq!(get(web2, "/api/v1/topics/b").json()["payload"], "1");

    mqtt.publish("b", "half", false);
    xymond.wait_for_status("greenhouse.env", WAIT, |s| {
        s.body.contains("&green a = half") && s.body.contains("&green b = half")
    });
    wait_until(WAIT, "the status counted", || statuses_sent(web2) > sent);
    // The round closed once: one status, not two (its window is an hour, nothing else sends).
    mqtt.publish("z", "1", false);
    xymond.wait_for_status("first.env", WAIT, |s| s.body.contains("z = 1"));
    assert_eq!(statuses_sent(web2), sent + 2);

    // A token added by a reload is required from then on.
    let token = xymond.dir().join("web.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let web_line = format!("listen = \"127.0.0.1:{web2}\"\n");
    let with_token = config(
        &xymond,
        web2,
        &[("local", &mqtt)],
        &(first.to_string() + &topics_test("greenhouse", "local")),
    )
    .replace(
        &web_line,
        &format!("{web_line}token_file = \"{}\"\n", token.display()),
    );
    daemon.reload(&with_token);
    wait_until(WAIT, "the web server back", || port_is_open(web2));
    assert_eq!(get(web2, "/api/v1/topics/a").status, 401);
    stop(daemon);
}
