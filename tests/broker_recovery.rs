//! A broker on a bad day, end to end with a real mosquitto and a real xymond: frozen (SIGSTOP) for
//! longer than the reconnect backoff cap and then continued, and refusing subscriptions in its SUBACK
//! (mosquitto's dynamic-security plugin). Over MQTT 5 and 3.1.1.

mod common;

use common::bridge::{logs, xymon_section, RunningBridge};
use common::mosquitto::Setup;
use common::{free_port, signal, wait_until, Mosquitto, Xymond};
use std::time::{Duration, Instant};

/// Generous: these are polling bounds, not timing assertions.
const WAIT: Duration = Duration::from_secs(30);

/// How long the broker stays frozen: past the 20 s backoff cap of the config below, so that a bridge
/// that backed off while it was frozen would be waiting out up to 20 s when it is continued.
const FROZEN: Duration = Duration::from_secs(72);

/// The bound on recovery after SIGCONT. Reconnecting at once, the bridge's pending attempt is answered
/// as soon as the broker runs again; backing off, it would wait for its next attempt (up to the 20 s
/// cap), so this bound is what the test is about, and is well below the cap.
const RECOVERY: Duration = Duration::from_secs(8);

/// Frozen for longer than the backoff cap and continued: the bridge notices the stall by its
/// keep-alive, keeps one attempt pending while the broker is frozen, and is connected and subscribed
/// again within seconds of SIGCONT; data flows again.
#[test]
fn frozen_broker_is_back_within_seconds_whatever_the_backoff_cap() {
    let mut mqtt = Mosquitto::start();
    let xymond = Xymond::start(&["stall5", "stall311"]);
    let mut toml = xymon_section(&xymond);
    for (name, protocol) in [("stall5", "5"), ("stall311", "3.1.1")] {
        toml += &format!(
            "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\nprotocol = \"{protocol}\"\nkeep_alive = \"5s\"\nreconnect_max = \"20s\"\n\n\
             [[test]]\nhost = \"{name}\"\ntest = \"env\"\nbroker = \"{name}\"\ntopics = [\"stall/t\"]\n\n",
            mqtt.url()
        );
    }
    let bridge = RunningBridge::start(&toml);
    bridge.wait_subscribed(0);
    bridge.wait_subscribed(1);
    mqtt.publish("stall/t", "before", false);
    for host in ["stall5", "stall311"] {
        xymond.wait_for_status(&format!("{host}.env"), WAIT, |s| {
            s.body.contains("stall/t = before")
        });
    }

    let pid = mqtt.pid().expect("running");
    signal(pid, libc::SIGSTOP).expect("SIGSTOP");
    let frozen_at = Instant::now();
    let store = &bridge.shared.store;
    wait_until(WAIT, "the keep-alive to notice the stall", || {
        store.brokers().iter().all(|b| !b.connected)
    });
    std::thread::sleep(FROZEN.saturating_sub(frozen_at.elapsed()));
    signal(pid, libc::SIGCONT).expect("SIGCONT");
    wait_until(
        RECOVERY,
        "connected and subscribed again soon after SIGCONT",
        || store.brokers().iter().all(|b| b.connected && b.subscribed),
    );
    assert!(mqtt.is_running());
    mqtt.publish("stall/t", "after", false);
    for host in ["stall5", "stall311"] {
        let s = xymond.wait_for_status(&format!("{host}.env"), WAIT, |s| {
            s.body.contains("stall/t = after")
        });
        assert_eq!(s.color, "green", "{}", s.body);
    }
    bridge.stop();
}

/// mosquitto's dynamic-security plugin: anonymous clients may not subscribe to `secret/#`.
const DYNSEC: &str = r#"{
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": true, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anonymous", "roles": [{"rolename": "no-secrets"}]}],
  "roles": [{"rolename": "no-secrets", "acls": [{"acltype": "subscribePattern", "topic": "secret/#", "priority": 0, "allow": false}]}],
  "anonymousGroup": "anonymous"
}"#;

/// The broker refuses some filters in its SUBACK: each refusal is logged at warn, counted per broker
/// and filter in /metrics, listed in /api/v1/brokers, the broker does not count as subscribed, and
/// every test that reads a refused filter says so in its status: continuous and periodic topics tests
/// (MQTT 5 with the reason code, 3.1.1 without one) and a rule with fixed names.
#[test]
fn refused_subscriptions_are_warned_counted_listed_and_in_statuses() {
    let mqtt = Mosquitto::start_with(Setup {
        dynsec: Some(DYNSEC.into()),
        ..Setup::default()
    });
    let xymond = Xymond::start(&["dyn5", "dyn311", "vault", "dynp"]);
    let web = free_port();
    let mut toml = format!(
        "[web]\nlisten = \"127.0.0.1:{web}\"\n\n{}",
        xymon_section(&xymond)
    );
    for (name, protocol) in [("d5", "5"), ("d311", "3.1.1")] {
        toml += &format!(
            "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\nprotocol = \"{protocol}\"\n\n",
            mqtt.url()
        );
    }
    toml += r#"
[[test]]
host = "dyn5"
test = "env"
broker = "d5"
topics = ["secret/a", "open/b"]

[[test]]
host = "dyn311"
test = "env"
broker = "d311"
topics = ["secret/a", "open/b"]

[[test]]
host = "dynp"
test = "env"
broker = "d5"
mode = "periodic"
interval = "3s"
window = "700ms"
topics = ["secret/p", "open/p"]

[[test]]
host = "vault"
test = "temp"
broker = "d5"
topic = "secret/{room}/temp"
  [[test.value]]
  name = "t"
"#;
    logs();
    mqtt.publish("open/p", "5", true);
    let bridge = RunningBridge::start(&toml);

    let refused5 = "The broker refuses the subscription to secret/a: not authorized (0x87)";
    let s = xymond.wait_for_status("dyn5.env", WAIT, |s| s.body.contains(refused5));
    assert_eq!(s.color, "yellow", "{}", s.body);
    let s = xymond.wait_for_status("dyn311.env", WAIT, |s| {
        s.body.contains(
            "The broker refuses the subscription to secret/a: refused (MQTT 3.1.1 gives no reason)",
        )
    });
    assert_eq!(s.color, "yellow", "{}", s.body);
    let s = xymond.wait_for_status("vault.temp", WAIT, |s| {
        s.body
            .contains("The broker refuses the subscription to secret/+/temp: not authorized")
    });
    assert_eq!(s.color, "yellow", "{}", s.body);
    let s = xymond.wait_for_status("dynp.env", WAIT, |s| {
        s.body
            .contains("The broker refuses the subscription to secret/p: not authorized")
    });
    assert!(
        s.body.contains("&green open/p = 5 (retained)"),
        "{}",
        s.body
    );

    // The granted topic of a refused test still flows, and its round says what is missing and why.
    mqtt.publish("open/b", "1", false);
    let s = xymond.wait_for_status("dyn5.env", WAIT, |s| s.body.contains("open/b = 1"));
    assert!(
        s.body.contains("Missing topic: secret/a") && s.body.contains(refused5),
        "{}",
        s.body
    );

    let brokers = common::web::get(web, "/api/v1/brokers").json();
    let refused: Vec<(String, String)> = brokers[0]["refused"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["filter"].as_str().unwrap().into(),
                r["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    for filter in ["secret/+/temp", "secret/a", "secret/p"] {
        assert!(
            refused
                .iter()
                .any(|(f, r)| f == filter && r.contains("not authorized")),
            "{filter} in {refused:?}"
        );
    }
    assert_eq!(brokers[0]["subscribed"], false, "{brokers}");
    assert_eq!(brokers[1]["refused"][0]["filter"], "secret/a", "{brokers}");

    let metrics = common::web::get(web, "/metrics").text();
    for series in [
        r#"xymon_mqtt_subscribe_refused_total{broker="d5",filter="secret/a"}"#,
        r#"xymon_mqtt_subscribe_refused_total{broker="d311",filter="secret/a"}"#,
        r#"xymon_mqtt_subscribe_refused_total{broker="d5",filter="secret/+/temp"}"#,
        r#"xymon_mqtt_subscribe_refused_total{broker="d5",filter="secret/p"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    let log = logs();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("the broker refused a subscription")
            && l.contains("broker=d311")
            && l.contains("filter=secret/a")),
        "{log}"
    );
    bridge.stop();
}
