//! Reload with Home Assistant discovery, with the real binary, mosquitto and xymond: a reload that leaves
//! the `[[discovery]]` blocks as they were does not touch their sessions; one that changes a block
//! restarts them, and the device comes back from its retained announcement in the new block's shape.
//! Part of tests/reload.rs.

use crate::common::{free_port, Mosquitto, Xymond};
use crate::{config, start, stop, topics_test, WAIT};

/// An ESPHome-style sensor (abbreviated keys), its state retained as ESPHome publishes it.
fn announce(mqtt: &Mosquitto) {
    mqtt.publish(
        "homeassistant/sensor/greenhouse/air_temperature/config",
        r#"{"dev_cla":"temperature","unit_of_meas":"°C","name":"Air Temperature","stat_t":"greenhouse/sensor/air_temperature/state","uniq_id":"ESPsensorair_temperature","dev":{"ids":"a4cf12b7c3d9","name":"greenhouse","mdl":"esp32dev"}}"#,
        true,
    );
    mqtt.publish("greenhouse/sensor/air_temperature/state", "21.5", true);
}

#[test]
fn discovery_sessions_restart_only_when_their_block_changes() {
    let xymond = Xymond::start(&["greenhouse", "other"]);
    let mqtt = Mosquitto::start();
    announce(&mqtt);
    let web = free_port();
    let block = "[[discovery]]\nbroker = \"local\"\n";
    let base = config(&xymond, web, &[("local", &mqtt)], block);
    let daemon = start(&base);
    xymond.wait_for_status("greenhouse.sensors", WAIT, |s| {
        s.body.contains("Air Temperature [temperature] = 21.5 °C")
    });

    // A reload that adds a test and leaves the block alone: the discovery session runs on.
    let other = topics_test("other", "local");
    daemon.reload(&(base.clone() + &other));
    assert!(
        daemon.log().contains("configuration reloaded"),
        "{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("discovery restarted"),
        "an unchanged block keeps its session:\n{}",
        daemon.log()
    );

    // Another column: the session restarts and finds the device again, in the new column.
    let renamed = config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &format!("{block}column = \"climate\"\n{other}"),
    );
    daemon.reload(&renamed);
    assert!(
        daemon.log().contains("Home Assistant discovery restarted"),
        "{}",
        daemon.log()
    );
    xymond.wait_for_status("greenhouse.climate", WAIT, |s| {
        s.body.contains("Air Temperature [temperature] = 21.5 °C")
    });
    stop(daemon);
}
