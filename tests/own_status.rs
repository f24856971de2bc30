//! The bridge's own column (`HOST.xymon-mqtt`) and the ghost report, end to end: a real mosquitto, a
//! real xymond with Debian's default `--ghosts=log`, the bridge in-process (and once the real binary),
//! read back with `xymondlog`, `/metrics` and the dashboard. Intervals are seconds, so each test is quick;
//! every wait is for a state, never for a time.

mod common;

use common::bridge::{config, RunningBridge};
use common::{free_port, Mosquitto, StatusLog, Xymond};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// The host of the bridge's own column in these tests (it is in hosts.cfg).
const OWN: &str = "bridge-host";
const OWN_COLUMN: &str = "bridge-host.xymon-mqtt";

const GREENHOUSE: &str = r#"
[[test]]
host = "greenhouse"
test = "env"
broker = "local"
window = "1500ms"
topics = ["sensors/greenhouse/temperature", "sensors/greenhouse/humidity"]
"#;

/// `[self_status]` for host `OWN`, with `interval`, a 2 s grace and a ghost check every second; `[web]`
/// on `web` (0: off).
fn own(interval: &str, web: u16) -> String {
    let web = if web == 0 {
        "[web]\nenabled = false\n".to_string()
    } else {
        format!("[web]\nlisten = \"127.0.0.1:{web}\"\n")
    };
    format!(
        "[self_status]\nhost = \"{OWN}\"\ninterval = \"{interval}\"\ndisconnect_grace = \"2s\"\nghost_interval = \"1s\"\n\n{web}\n"
    )
}

/// Starts the bridge: `own` before the harness config (which turns `[self_status]` off: replaced here).
fn start(xymond: &Xymond, mqtt: &Mosquitto, own: &str, tests: &str) -> RunningBridge {
    let toml =
        config(xymond, &[("local", mqtt)], tests).replace("[self_status]\nenabled = false\n", own);
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    bridge
}

fn wait_own(xymond: &Xymond, what: impl Fn(&StatusLog) -> bool) -> StatusLog {
    xymond.wait_for_status(OWN_COLUMN, WAIT, what)
}

/// The `&red`/`&yellow` lines of a status: the reasons for its colour.
fn reasons(s: &StatusLog) -> Vec<&str> {
    s.body
        .lines()
        .filter(|l| l.starts_with("&red") || l.starts_with("&yellow"))
        .collect()
}

/// All is well: the column reaches xymond green, with the broker, the deliveries, the store and who the
/// bridge is; `/metrics` counts no ghost.
#[test]
fn own_column_reaches_xymond_green_with_the_broker_lines() {
    let xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let bridge = start(&xymond, &mqtt, &own("1s", web), GREENHOUSE);
    mqtt.publish("sensors/greenhouse/temperature", "21.5", false);
    mqtt.publish("sensors/greenhouse/humidity", "40", false);
    xymond.wait_for_status("greenhouse.env", WAIT, |s| s.color == "green");
    // A status built after greenhouse.env was delivered, and after a ghost check.
    let s = wait_own(&xymond, |s| {
        s.body.contains("statuses sent: ")
            && !s.body.contains("statuses sent: 0,")
            && s.body.contains("(asked ")
    });
    assert_eq!(s.color, "green", "{}", s.body);
    assert!(reasons(&s).is_empty(), "{}", s.body);
    assert!(
        s.line1().contains("xymon-mqtt: all is well"),
        "{}",
        s.line1()
    );
    for fact in [
        &format!("local {}: connected since ", mqtt.url()) as &str,
        "; messages: ",
        &format!("Delivery to xymond at {}", xymond.addr()),
        "failed deliveries: 0",
        "ghost hosts (xymond drops them): 0",
        "RRD files failing: 0",
        "Topic store: ",
        &format!("xymon-mqtt {}, up ", env!("CARGO_PKG_VERSION")),
        "config test.toml",
    ] {
        assert!(s.body.contains(fact), "{fact:?} missing from:\n{}", s.body);
    }
    assert_eq!(s.sender, "127.0.0.1");
    let metrics = common::web::get(web, "/metrics").text();
    assert!(metrics.contains("xymon_mqtt_ghost_hosts 0\n"), "{metrics}");
    assert!(xymond.ghostlist().is_empty(), "{:?}", xymond.ghostlist());
    bridge.stop();
}

/// A misspelled host in a rule (`sensro-{host}`): xymond drops its statuses under `--ghosts=log`; the
/// bridge names the host, its test and the rule in its yellow column, in `/metrics` and on the
/// dashboard.
#[test]
fn misspelled_rule_host_is_reported_by_name() {
    let xymond = Xymond::start(&[OWN, "sensor-kitchen"]);
    let mqtt = Mosquitto::start();
    let web = free_port();
    let rule = r#"
[[test]]
broker = "local"
topic = "sensors/{host}/env"
host = "sensro-{host}"
test = "env"
  [[test.value]]
  name = "temperature"
"#;
    let bridge = start(&xymond, &mqtt, &own("1s", web), rule);
    mqtt.publish("sensors/kitchen/env", "21.5", false);
    let s = wait_own(&xymond, |s| s.color == "yellow");
    assert_eq!(
        reasons(&s)
            .iter()
            .filter(|l| l.contains("sensro-kitchen"))
            .count(),
        1,
        "{}",
        s.body
    );
    assert!(
        s.body.contains(
            "&yellow Host sensro-kitchen is not in xymond's hosts.cfg: xymond drops its statuses"
        ),
        "{}",
        s.body
    );
    assert!(s.body.contains("\n    tests: env\n"), "{}", s.body);
    assert!(
        s.body.contains(
            "\n    made by test[0]: the rule on topic sensors/{host}/env, host sensro-{host}\n"
        ),
        "{}",
        s.body
    );
    assert!(
        s.body.contains("\n    add sensro-kitchen to hosts.cfg"),
        "{}",
        s.body
    );
    assert!(s.line1().contains("1 ghost host"), "{}", s.line1());
    // xymond itself lists the ghost, and has no status for it.
    assert!(xymond
        .ghostlist()
        .iter()
        .any(|g| g.hostname == "sensro-kitchen"));
    assert_eq!(xymond.xymondlog("sensro-kitchen.env"), None);

    let metrics = common::web::get(web, "/metrics").text();
    assert!(metrics.contains("xymon_mqtt_ghost_hosts 1\n"), "{metrics}");
    assert!(
        metrics.contains("xymon_mqtt_ghost_host{host=\"sensro-kitchen\"} 1\n"),
        "{metrics}"
    );
    let page = common::web::get(web, "/").text();
    assert!(page.contains("id=\"ghosts\""), "{page}");
    assert!(
        page.contains("<code class=\"ghost-host\">sensro-kitchen</code>: tests env; made by test[0]: the rule on topic sensors/{host}/env, host sensro-{host}"),
        "{page}"
    );
    bridge.stop();
}

/// A killed broker: within the grace nothing changes; past it the column turns red and says since
/// when; the broker back, green again.
#[test]
fn killed_broker_turns_the_column_red_after_the_grace() {
    let xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mut mqtt = Mosquitto::start();
    let bridge = start(&xymond, &mqtt, &own("1s", 0), GREENHOUSE);
    wait_own(&xymond, |s| s.color == "green");
    mqtt.kill();
    let s = wait_own(&xymond, |s| s.color == "red");
    let r = reasons(&s);
    assert_eq!(r.len(), 1, "{}", s.body);
    assert!(
        r[0].starts_with(&format!(
            "&red Broker local ({}) disconnected for ",
            mqtt.url()
        )) && r[0].contains("(grace 2s)"),
        "{}",
        s.body
    );
    assert!(s.line1().contains("broker local down"), "{}", s.line1());
    assert!(
        s.body
            .contains(&format!("local {}: disconnected since ", mqtt.url())),
        "{}",
        s.body
    );
    mqtt.start_again();
    bridge.wait_subscribed(0);
    wait_own(&xymond, |s| s.color == "green");
    bridge.stop();
}

/// xymond down: deliveries fail, and the column's red status waits in the outbox; xymond back, that red
/// status is what xymond gets (the next one is an hour away, so nothing replaces it here).
#[test]
fn xymond_down_then_up_the_red_column_arrives() {
    let mut xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mqtt = Mosquitto::start();
    let bridge = start(&xymond, &mqtt, &own("1h", 0), GREENHOUSE);
    mqtt.publish("sensors/greenhouse/temperature", "21.5", false);
    mqtt.publish("sensors/greenhouse/humidity", "40", false);
    xymond.wait_for_status("greenhouse.env", WAIT, |s| s.color == "green");
    assert_eq!(
        xymond.xymondlog(OWN_COLUMN),
        None,
        "no own status within the hour"
    );

    xymond.stop();
    mqtt.publish("sensors/greenhouse/temperature", "22", false);
    mqtt.publish("sensors/greenhouse/humidity", "41", false);
    common::wait_until(WAIT, "the own column red and waiting", || {
        bridge
            .shared
            .outbox
            .tests()
            .iter()
            .any(|t| t.host == OWN && t.colour.as_str() == "red" && t.delivered_at.is_none())
    });
    xymond.start_again();
    let s = wait_own(&xymond, |_| true);
    assert_eq!(s.color, "red", "{}", s.body);
    let r = reasons(&s);
    assert_eq!(r.len(), 1, "{}", s.body);
    assert!(
        r[0].starts_with(&format!(
            "&red Deliveries to xymond at {} fail since ",
            xymond.addr()
        )),
        "{}",
        s.body
    );
    assert!(r[0].contains("cannot connect to xymond"), "{}", s.body);
    assert!(
        s.line1().contains("deliveries to xymond fail"),
        "{}",
        s.line1()
    );
    // The greenhouse status of the outage arrived too.
    xymond.wait_for_status("greenhouse.env", WAIT, |s| s.body.contains("= 22"));
    bridge.stop();
}

/// `limits.store_bytes` (1 MiB) filled by 40 KiB payloads: the store evicts to stay within it and the
/// column turns yellow over 90 %.
#[test]
fn full_store_budget_turns_it_yellow() {
    let xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mqtt = Mosquitto::start();
    let tests = r#"
[limits]
store_bytes = 1048576

[[test]]
broker = "local"
topic = "fill/{n}"
host = "greenhouse"
test = "fill"
  [[test.value]]
  name = "v"
"#;
    let bridge = start(&xymond, &mqtt, &own("1s", 0), tests);
    let payload = vec![b'x'; 40 << 10];
    for i in 0..40 {
        mqtt.publish_bytes(&format!("fill/{i}"), &payload, false);
    }
    let s = wait_own(&xymond, |s| s.color == "yellow");
    let r = reasons(&s);
    assert!(
        r.iter()
            .any(|l| l.starts_with("&yellow The topic store holds ")
                && l.contains("limits.store_bytes")),
        "{}",
        s.body
    );
    assert!(s.line1().contains("store nearly full"), "{}", s.line1());
    let usage = bridge.shared.store.usage();
    assert!(usage.bytes * 10 > usage.budget * 9, "{usage:?}");
    bridge.stop();
}

/// An RRD file that cannot be written (its host directory is a plain file): the column turns yellow and
/// names the file and the error.
#[test]
fn rrd_failure_turns_it_yellow() {
    let xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mqtt = Mosquitto::start();
    std::fs::write(xymond.dir().join("rrd/greenhouse"), "not a directory").unwrap();
    let tests = r#"
[[test]]
broker = "local"
topic = "sensors/{host}/temp"
host = "{host}"
test = "temp"
  [[test.value]]
  name = "celsius"
  rrd = true
"#;
    let bridge = start(&xymond, &mqtt, &own("1s", 0), tests);
    mqtt.publish("sensors/greenhouse/temp", "21.5", false);
    let s = wait_own(&xymond, |s| s.color == "yellow");
    let r = reasons(&s);
    assert!(
        r.iter()
            .any(|l| l.starts_with("&yellow RRD file greenhouse/temp.celsius.rrd fails: ")),
        "{}",
        s.body
    );
    assert!(s.line1().contains("RRD files fail"), "{}", s.line1());
    assert!(s.body.contains("RRD files failing: 1"), "{}", s.body);
    bridge.stop();
}

/// The ghostlist query against a real xymond: a status for a host hosts.cfg lacks is listed with its
/// sender and time; known hosts are not.
#[test]
fn ghostlist_query_reads_a_real_xymond() {
    let xymond = Xymond::start(&["greenhouse"]);
    xymond.send_raw("status ghost,example,com.env red not in hosts.cfg");
    xymond.send_raw("status greenhouse.env green known");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let query = || {
        rt.block_on(xymon_mqtt::xymon::ghosts::ghostlist(
            &xymond.addr(),
            Duration::from_secs(10),
        ))
        .unwrap()
    };
    common::wait_until(WAIT, "the ghost listed", || {
        query().iter().any(|g| g.host == "ghost.example.com")
    });
    let ghosts = query();
    assert_eq!(ghosts.len(), 1, "{ghosts:?}");
    assert_eq!(ghosts[0].sender, "127.0.0.1");
    let age = std::time::SystemTime::now()
        .duration_since(ghosts[0].seen)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(3600), "seen {age:?} ago");
    // xymond down: an error, not a hang or an empty list.
    let mut xymond = xymond;
    xymond.stop();
    let e = rt
        .block_on(xymon_mqtt::xymon::ghosts::ghostlist(
            &xymond.addr(),
            Duration::from_secs(10),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

/// The real binary: its own column names the config file it was started with and its version, and a
/// misspelled rule host shows in its `/metrics`.
#[test]
fn real_binary_reports_its_column_and_ghosts() {
    let xymond = Xymond::start(&[OWN]);
    let mqtt = Mosquitto::start();
    let rest = format!(
        "[self_status]\nhost = \"{OWN}\"\ninterval = \"1s\"\nghost_interval = \"1s\"\n\n\
         [[test]]\nbroker = \"local\"\ntopic = \"sensors/{{host}}/env\"\nhost = \"sensro-{{host}}\"\ntest = \"env\"\n\
         [[test.value]]\nname = \"temperature\"\n"
    );
    let bin = common::binary::Bin::start(
        env!("CARGO_BIN_EXE_xymon-mqtt"),
        &xymond,
        &[("local", &mqtt, "")],
        "",
        &rest,
    );
    mqtt.publish("sensors/kitchen/env", "21.5", false);
    let s = wait_own(&xymond, |s| s.color == "yellow");
    assert!(
        s.body
            .contains("&yellow Host sensro-kitchen is not in xymond's hosts.cfg"),
        "{}",
        s.body
    );
    assert!(
        s.body
            .contains(&format!("xymon-mqtt {}, up ", env!("CARGO_PKG_VERSION"))),
        "{}",
        s.body
    );
    assert!(s.body.contains("/bridge.toml\n"), "{}", s.body);
    common::wait_until(WAIT, "the ghost in /metrics", || {
        bin.metrics()
            .contains("xymon_mqtt_ghost_host{host=\"sensro-kitchen\"} 1\n")
    });
    assert!(bin.metrics().contains("xymon_mqtt_ghost_hosts 1\n"));
    assert_eq!(bin.stop(), Some(0));
}

/// A frozen broker (SIGSTOP): the keep-alive notices, and past the grace the column is red; thawed
/// (SIGCONT), the bridge reconnects and the column is green again. The broker's process is never
/// killed, so this is the state a hung broker leaves.
#[test]
fn frozen_broker_turns_the_column_red_then_green() {
    let xymond = Xymond::start(&[OWN, "greenhouse"]);
    let mqtt = Mosquitto::start();
    let url_line = format!("url = \"{}\"\n", mqtt.url());
    let toml = config(&xymond, &[("local", &mqtt)], GREENHOUSE)
        .replace("[self_status]\nenabled = false\n", &own("1s", 0))
        .replace(&url_line, &format!("{url_line}keep_alive = \"5s\"\n"));
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    wait_own(&xymond, |s| s.color == "green");
    let pid = mqtt.pid().expect("running");
    common::signal(pid, libc::SIGSTOP).expect("SIGSTOP");
    let s = wait_own(&xymond, |s| s.color == "red");
    assert!(
        reasons(&s)
            .iter()
            .any(|l| l.starts_with("&red Broker local (") && l.contains("disconnected for ")),
        "{}",
        s.body
    );
    common::signal(pid, libc::SIGCONT).expect("SIGCONT");
    bridge.wait_subscribed(0);
    let s = wait_own(&xymond, |s| s.color == "green");
    assert!(
        s.body
            .contains(&format!("local {}: connected since ", mqtt.url())),
        "{}",
        s.body
    );
    bridge.stop();
}
