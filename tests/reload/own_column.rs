//! Reload and the bridge's own column, with the real binary, mosquitto and xymond: a reload that moves
//! `[self_status]` to another column applies at once, and the column still names the config file.
//! Part of tests/reload.rs.

use crate::common::{free_port, Mosquitto, Xymond};
use crate::{config, start, stop, topics_test, WAIT};

#[test]
fn a_reload_moves_the_own_column() {
    let xymond = Xymond::start(&["bridgehost", "greenhouse"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let own = |column: &str| {
        format!("[self_status]\nhost = \"bridgehost\"\ncolumn = \"{column}\"\ninterval = \"1s\"\n")
    };
    let tests = topics_test("greenhouse", "local");
    let daemon = start(&config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &(own("xymon-mqtt") + &tests),
    ));
    xymond.wait_for_status("bridgehost.xymon-mqtt", WAIT, |s| {
        s.color == "green" && s.body.contains("local")
    });
    daemon.reload(&config(
        &xymond,
        web,
        &[("local", &mqtt)],
        &(own("bridge") + &tests),
    ));
    let s = xymond.wait_for_status("bridgehost.bridge", WAIT, |s| s.color == "green");
    assert!(
        s.body.contains(&daemon.config.display().to_string()),
        "the column names the config file: {}",
        s.body
    );
    stop(daemon);
}
