//! The real `xymon-mqtt` binary on a bad day, against a real mosquitto and a real xymond: a flood of
//! distinct topics with large payloads (the memory budget), a frozen and a killed broker and a stopped
//! xymond (outages that show in xymond and in `/healthz`), event streams that take every connection, and
//! publishers that try to write columns that are not theirs.
//!
//! Each test starts its own servers on free loopback ports and the binary as a child process with its own
//! config (stopped by pid on drop). Waits are polling bounds, never timing assertions; memory bounds are
//! asserted with a clear margin.

mod common;

use common::binary::{flood, Bin};
use common::web::get;
use common::{wait_until, Mosquitto, Xymond};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xymon-mqtt");

/// Polling bound for anything the bridge does.
const WAIT: Duration = Duration::from_secs(60);

const MIB: u64 = 1 << 20;

/// A flood of distinct topics with 64 KiB payloads, 12 times the budget, through a real mosquitto into the
/// real binary: the store holds at most `limits.store_bytes`, evicting the least recently updated topics;
/// RSS stays within the budget plus the idle footprint plus a margin, and falls when the store lets go of
/// the payloads. Topics no rule takes keep no payload.
#[test]
fn the_store_stays_within_its_budget_under_a_flood_of_large_topics() {
    let hosts: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let xymond = Xymond::start(&host_refs);
    let mqtt = Mosquitto::start();
    let budget = 16 * MIB;
    let rules = format!(
        "[limits]\nstore_bytes = {budget}\nmax_payload_bytes = 65536\n\n\
         [[test]]\nbroker = \"local\"\ntopic = \"big/{{a}}/{{b}}\"\nhost = \"h{{a}}\"\ntest = \"big\"\nqos = 1\n  [[test.value]]\n  name = \"v\"\n\n\
         [[test]]\nbroker = \"local\"\ntopic = \"refused/{{h}}\"\nhost = \"{{h}}\"\ntest = \"x\"\nqos = 1\nmax_instances = 1\n  [[test.value]]\n  name = \"v\"\n"
    );
    let bin = Bin::start(BIN, &xymond, &[("local", &mqtt, "")], "", &rules);
    // The footprint before any topic: the process as started, connected and subscribed.
    std::thread::sleep(Duration::from_secs(1));
    let idle = bin.rss();

    // 3,000 topics of 64 KiB (188 MiB through the broker); RSS sampled all along.
    let peak = Arc::new(Mutex::new(0u64));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), bin.pid());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let kb: u64 = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .unwrap_or(0);
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(kb * 1024);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let big = (0..3000)
        .map(|n| (format!("big/{}/{n}", n % 10), vec![b'x'; 65536]))
        .collect();
    flood(&bin, &mqtt, big);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let store = bin.store();
    let held = store["bytes"].as_u64().unwrap();
    let after_flood = bin.rss();
    let peak = *peak.lock().unwrap();
    eprintln!(
        "idle {} MiB; after 3,000 × 64 KiB: RSS {} MiB (peak {} MiB), store {} MiB of {} MiB, {} evicted",
        idle / MIB,
        after_flood / MIB,
        peak / MIB,
        held / MIB,
        budget / MIB,
        store["evicted_topics"]
    );
    assert!(held <= budget, "{store}");
    assert!(store["evicted_topics"].as_u64().unwrap() >= 2000, "{store}");
    // Without the budget the store alone would hold 3,000 × 64 KiB = 188 MiB. Besides the store: the
    // rule's own state of its 3,000 topics (512 characters of each payload, bounded by its max_topics)
    // and ten statuses of up to 200 KiB, about 10 MiB in all (measured below, once the store is empty).
    let margin = 16 * MIB;
    assert!(
        after_flood <= idle + budget + margin,
        "RSS {after_flood} > idle {idle} + budget {budget} + margin {margin}"
    );
    // The newest topics are kept, the oldest evicted.
    assert_eq!(get(bin.web, "/api/v1/topics/big/9/2999").status, 200);
    assert_eq!(get(bin.web, "/api/v1/topics/big/0/0").status, 404);

    // The same topics again with one-byte payloads: the store lets go of 16 MiB, and so does the process.
    let mut kept: Vec<String> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            bin.web,
            &format!("/api/v1/topics?filter=big/%23&limit=1000{cursor}"),
        )
        .json();
        kept.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["topic"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(kept.len() >= 200, "{} topics kept", kept.len());
    flood(
        &bin,
        &mqtt,
        kept.into_iter().map(|t| (t, b"1".to_vec())).collect(),
    );
    let store = bin.store();
    let after_shrink = bin.rss();
    eprintln!(
        "after the payloads shrank: RSS {} MiB, store {} KiB",
        after_shrink / MIB,
        store["bytes"].as_u64().unwrap() / 1024
    );
    assert!(store["bytes"].as_u64().unwrap() < 2 * MIB, "{store}");
    assert!(
        after_shrink + budget / 2 <= after_flood,
        "RSS did not fall: {after_flood} -> {after_shrink}"
    );

    // 1,000 topics the rule refuses (max_instances = 1): counted, their payloads not kept.
    let refused = (0..1000)
        .map(|i| (format!("refused/r{i}"), vec![b'y'; 65536]))
        .collect();
    flood(&bin, &mqtt, refused);
    let store = bin.store();
    assert_eq!(store["refused_topics"].as_u64().unwrap(), 999, "{store}");
    assert!(store["bytes"].as_u64().unwrap() < 2 * MIB, "{store}");
    assert_eq!(get(bin.web, "/api/v1/topics/refused/r5").status, 404);
    let metrics = bin.metrics();
    for line in [
        "xymon_mqtt_store_budget_bytes 16777216",
        "xymon_mqtt_rule_refused_total{rule=\"refused/{h}\",reason=\"rule_max_instances\"} 999",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(
        metrics.contains("xymon_mqtt_store_evicted_topics_total "),
        "{metrics}"
    );
    let overview = get(bin.web, "/").text();
    assert!(overview.contains("evicted"), "{overview}");
    assert_eq!(bin.stop(), Some(0));
}

/// A continuous test and a rule instance of a broker that freezes (SIGSTOP, longer than the keep-alive),
/// and of another that dies (SIGKILL), go to the outage colour in xymond, naming the broker, while the
/// other broker's stay green, and back to green after the reconnect; `/healthz` is 503 naming the broker
/// meanwhile, and names xymond while xymond refuses. (Each status changes colour at most three times:
/// xymond locks a status that flaps more often at its worst colour.)
#[test]
fn outages_show_in_xymond_and_in_healthz() {
    let mut xymond = Xymond::start(&["a", "a1", "b", "b1"]);
    let one = Mosquitto::start();
    let mut two = Mosquitto::start();
    // MQTT 3.1.1: a 2 s keep-alive finds the frozen broker quickly (MQTT 5's client takes 5 s at least).
    let fast = "protocol = \"3.1.1\"\nkeep_alive = \"2s\"\nreconnect_max = \"2s\"\n";
    let tests = "[[test]]\nbroker = \"one\"\nhost = \"a\"\ntest = \"env\"\ntopics = [\"a/t\"]\n\n\
         [[test]]\nbroker = \"one\"\ntopic = \"sensors/{host}/env\"\nhost = \"{host}\"\ntest = \"climate\"\n  [[test.value]]\n  name = \"v\"\n\n\
         [[test]]\nbroker = \"two\"\nhost = \"b\"\ntest = \"env\"\ntopics = [\"b/t\"]\n\n\
         [[test]]\nbroker = \"two\"\ntopic = \"sensors/{host}/air\"\nhost = \"{host}\"\ntest = \"air\"\n  [[test.value]]\n  name = \"v\"\n";
    let bin = Bin::start(
        BIN,
        &xymond,
        &[("one", &one, fast), ("two", &two, fast)],
        "",
        tests,
    );
    let colour = |key: &str, c: &str| xymond.wait_for_status(key, WAIT, |s| s.color == c);
    one.publish("a/t", "21", false);
    one.publish("sensors/a1/env", "7", false);
    two.publish("b/t", "22", false);
    two.publish("sensors/b1/air", "8", false);
    for key in ["a.env", "a1.climate", "b.env", "b1.air"] {
        colour(key, "green");
    }

    // Broker one freezes for longer than its keep-alive.
    common::signal(one.pid().unwrap(), libc::SIGSTOP).unwrap();
    for key in ["a.env", "a1.climate"] {
        let s = colour(key, "clear");
        assert!(
            s.body.contains("MQTT broker one is not connected since"),
            "{key}: {}",
            s.body
        );
    }
    let (code, reasons) = bin.health();
    assert_eq!(code, 503, "{reasons:?}");
    assert!(
        reasons.len() == 1 && reasons[0].starts_with("broker one is not connected"),
        "{reasons:?}"
    );
    for key in ["b.env", "b1.air"] {
        assert_eq!(xymond.xymondlog(key).unwrap().color, "green", "{key}");
    }
    common::signal(one.pid().unwrap(), libc::SIGCONT).unwrap();
    wait_until(WAIT, "/healthz 200 after the reconnect", || {
        bin.health().0 == 200 && bin.subscribed()
    });
    // The rule instance is evaluated at the reconnect; the continuous test at its next round.
    colour("a1.climate", "green");
    one.publish("a/t", "23", false);
    colour("a.env", "green");

    // Broker two dies, and comes back (empty: no retained values survive).
    common::signal(two.pid().unwrap(), libc::SIGKILL).unwrap();
    for key in ["b.env", "b1.air"] {
        let s = colour(key, "clear");
        assert!(
            s.body.contains("MQTT broker two is not connected since"),
            "{}",
            s.body
        );
    }
    let (code, reasons) = bin.health();
    assert!(
        code == 503
            && reasons
                .iter()
                .any(|r| r.starts_with("broker two is not connected")),
        "{reasons:?}"
    );
    two.start_again();
    wait_until(WAIT, "/healthz 200 after the restart", || {
        bin.health().0 == 200 && bin.subscribed()
    });
    colour("b1.air", "green");
    two.publish("b/t", "24", false);
    colour("b.env", "green");

    // xymond stopped: a new status cannot be delivered; /healthz names xymond once it has lasted 5 s.
    xymond.stop();
    one.publish("a/t", "25", false);
    wait_until(WAIT, "/healthz to name xymond", || {
        let (code, reasons) = bin.health();
        code == 503
            && reasons
                .iter()
                .any(|r| r.starts_with("xymond refuses deliveries"))
    });
    xymond.start_again();
    wait_until(WAIT, "/healthz 200 after xymond is back", || {
        bin.health().0 == 200
    });
    xymond.wait_for_status("a.env", WAIT, |s| s.body.contains("a/t = 25"));
    assert_eq!(bin.stop(), Some(0));
}

/// Event streams cannot take the last connections: with `max_connections = 4`, three streams are served,
/// a fourth is refused (503, connection closed), and `/healthz` still answers.
#[test]
fn healthz_answers_whatever_the_event_streams_do() {
    let xymond = Xymond::start(&["gh"]);
    let mqtt = Mosquitto::start();
    let tests =
        "[[test]]\nbroker = \"local\"\nhost = \"gh\"\ntest = \"env\"\ntopics = [\"gh/t\"]\n";
    let bin = Bin::start(
        BIN,
        &xymond,
        &[("local", &mqtt, "")],
        "max_connections = 4\n",
        tests,
    );
    let open_stream = || {
        let mut s = TcpStream::connect(("127.0.0.1", bin.web)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 256];
        let n = s.read(&mut head).unwrap();
        (s, String::from_utf8_lossy(&head[..n]).into_owned())
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        let (s, head) = open_stream();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        streams.push(s);
    }
    let (mut refused, head) = open_stream();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let _ = refused.read_to_end(&mut rest);
    // The refused connection is closed by the server; the fourth slot answers /healthz, again and again.
    for _ in 0..5 {
        assert_eq!(bin.health().0, 200);
    }
    drop(streams);
    assert_eq!(bin.stop(), Some(0));
}

/// A rule whose test comes from a capture cannot write a configured test's column, xymond's own
/// (`info`, `trends`) or the bridge's (`xymon-mqtt`); it writes its own, and the refusals are counted per
/// rule and reason.
#[test]
fn publishers_cannot_write_columns_that_are_not_theirs() {
    let xymond = Xymond::start(&["harness", "h2"]);
    let mqtt = Mosquitto::start();
    let tests = "[[test]]\nbroker = \"local\"\nhost = \"harness\"\ntest = \"mqtt\"\ntopics = [\"harness/load\"]\n\n\
         [[test]]\nbroker = \"local\"\ntopic = \"t/{host}/{t}\"\nhost = \"{host}\"\ntest = \"{t}\"\n  [[test.value]]\n  name = \"v\"\n";
    let bin = Bin::start(BIN, &xymond, &[("local", &mqtt, "")], "", tests);
    mqtt.publish("harness/load", "0.5", false);
    xymond.wait_for_status("harness.mqtt", WAIT, |s| s.color == "green");
    for topic in [
        "t/harness/mqtt",
        "t/harness/info",
        "t/harness/trends",
        "t/harness/xymon-mqtt",
    ] {
        mqtt.publish(topic, "99", false);
    }
    // Published after the others, so once it is in xymond the others have been handled.
    mqtt.publish("t/h2/env", "1", false);
    xymond.wait_for_status("h2.env", WAIT, |s| s.color == "green");
    let s = xymond.xymondlog("harness.mqtt").unwrap();
    assert!(s.body.contains("harness/load = 0.5"), "{}", s.body);
    assert!(!s.body.contains("Rule: topic"), "{}", s.body);
    assert!(xymond.xymondlog("harness.xymon-mqtt").is_none());
    let metrics = bin.metrics();
    for (reason, n) in [("rule_configured_column", 1), ("rule_reserved_column", 3)] {
        let line = format!(
            "xymon_mqtt_rule_refused_total{{rule=\"t/{{host}}/{{t}}\",reason=\"{reason}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(
        bin.log()
            .contains("derived column harness.mqtt belongs to a configured test"),
        "{}",
        bin.log()
    );
    assert_eq!(bin.stop(), Some(0));
}

/// A stage that stops draining its queue makes `/healthz` 503 naming it: here the RRD writer, whose file
/// is a FIFO nobody writes to, so librrd's open blocks; its queue fills with the values of a rule with
/// `rrd = true`. Once the FIFO gives way the writer drains its queue and `/healthz` is 200 again.
#[test]
fn a_stuck_stage_shows_in_healthz() {
    let xymond = Xymond::start(&["h"]);
    let mqtt = Mosquitto::start();
    let host_dir = xymond.dir().join("rrd/h");
    std::fs::create_dir_all(&host_dir).unwrap();
    let fifo = host_dir.join("env.v.rrd");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let tests = "[[test]]\nbroker = \"local\"\ntopic = \"s/{n}\"\nhost = \"h\"\ntest = \"env\"\nqos = 1\n  [[test.value]]\n  name = \"v\"\n  rrd = true\n";
    let bin = Bin::start(BIN, &xymond, &[("local", &mqtt, "")], "", tests);
    // 1,200 live values, more than the writer's queue (1,024) holds behind the blocked one.
    let values = (0..1200)
        .map(|i| (format!("s/{i}"), b"1".to_vec()))
        .collect();
    flood(&bin, &mqtt, values);
    wait_until(WAIT, "/healthz to name the RRD writer", || {
        let (code, reasons) = bin.health();
        code == 503
            && reasons
                .iter()
                .any(|r| r.starts_with("the RRD writer is stuck: its queue is full"))
    });
    // The FIFO gives way: opened for reading and writing (which lets the blocked open through), removed,
    // fed a line that is no RRD, and closed. The writer reports that file and writes a real one.
    let mut end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    std::fs::remove_file(&fifo).unwrap();
    end.write_all(b"not an rrd\n").unwrap();
    drop(end);
    wait_until(WAIT, "/healthz 200 once the writer drains", || {
        bin.health().0 == 200
    });
    wait_until(WAIT, "a real RRD file in the FIFO's place", || {
        fifo.is_file()
    });
    assert_eq!(bin.stop(), Some(0));
}
