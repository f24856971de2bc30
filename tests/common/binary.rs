//! The real `xymon-mqtt` binary as a child process, with a config of its own, for the tests that need
//! the binary itself (signals, resident memory, the whole process on a bad day): started on a free web
//! port, read through its API, `/healthz` and `/metrics`, stopped with SIGTERM (or killed on drop).
//! Also a QoS 1 publisher for floods of many topics (`publish_all`, `flood`), which `mosquitto_pub`
//! would need a process per topic for. Used by tests/faults_e2e.rs.

use super::web::get;
use super::{free_port, port_is_open, signal, wait_until, Mosquitto, Xymond};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Polling bound for anything the bridge does.
const WAIT: Duration = Duration::from_secs(60);

/// The binary, running with a config of its own; killed on drop if the test did not stop it.
pub struct Bin {
    child: Child,
    pub web: u16,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Bin {
    /// Starts the binary: `[xymon]` to `xymond`, `[web]` on a free port with `web_extra`, the brokers
    /// (name, broker, more keys of its table), then `rest` (limits, tests).
    pub fn start(
        bin: &str,
        xymond: &Xymond,
        brokers: &[(&str, &Mosquitto, &str)],
        web_extra: &str,
        rest: &str,
    ) -> Bin {
        let dir = tempfile::tempdir().unwrap();
        let web = free_port();
        let mut config = format!(
            "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}/rrd\"\n\n[web]\nlisten = \"127.0.0.1:{web}\"\n{web_extra}\n",
            xymond.addr(),
            xymond.dir().display(),
        );
        for (name, mqtt, extra) in brokers {
            config.push_str(&format!(
                "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\n{extra}\n",
                mqtt.url()
            ));
        }
        config.push_str(rest);
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in
                std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok)
            {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let bin = Bin {
            child,
            web,
            log,
            _dir: dir,
        };
        wait_until(WAIT, "the bridge subscribed and /healthz 200", || {
            port_is_open(bin.web) && bin.subscribed() && bin.health().0 == 200
        });
        bin
    }

    /// Every broker's subscriptions are acknowledged on its current connection.
    pub fn subscribed(&self) -> bool {
        let brokers = get(self.web, "/api/v1/brokers").json();
        brokers
            .as_array()
            .is_some_and(|a| a.iter().all(|b| b["subscribed"] == true))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (status code, reasons) of `/healthz`.
    pub fn health(&self) -> (u16, Vec<String>) {
        let r = get(self.web, "/healthz");
        let reasons = r.json()["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        (r.status, reasons)
    }

    pub fn store(&self) -> serde_json::Value {
        get(self.web, "/api/v1/store").json()
    }

    pub fn metrics(&self) -> String {
        get(self.web, "/metrics").text()
    }

    /// VmRSS from /proc, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// SIGTERM, then the exit code.
    pub fn stop(mut self) -> Option<i32> {
        signal(self.pid(), libc::SIGTERM).unwrap();
        let mut code = None;
        wait_until(WAIT, "the bridge to exit", || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.flatten()
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes every (topic, payload) at QoS 1 through the real broker and returns once the broker has
/// acknowledged them all.
pub fn publish_all(mqtt: &Mosquitto, messages: Vec<(String, Vec<u8>)>) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let mut options = MqttOptions::new(format!("faults-{}", free_port()), "127.0.0.1", mqtt.port());
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(options, 64);
    let n = messages.len();
    let publisher = std::thread::spawn(move || {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked += 1;
                if acked == n {
                    break;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing: {e}"),
        }
    }
    let client = publisher.join().unwrap();
    let _ = client.disconnect();
}

/// The bridge's `xymon_mqtt_mqtt_messages_total` (all brokers).
pub fn messages_received(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("xymon_mqtt_mqtt_messages_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Publishes `messages` in waves of 250 that the broker's queue for the bridge (`max_queued_messages`,
/// 1000) takes whole, each once the bridge has received the one before, then waits for the store to
/// settle.
pub fn flood(bin: &Bin, mqtt: &Mosquitto, messages: Vec<(String, Vec<u8>)>) {
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        let wave: Vec<_> = messages.by_ref().take(250).collect();
        let (before, n) = (messages_received(&bin.metrics()), wave.len() as u64);
        publish_all(mqtt, wave);
        wait_until(WAIT, "the bridge to receive the wave", || {
            messages_received(&bin.metrics()) >= before + n
        });
    }
    settle(bin);
}

/// Waits until the store's figures stop changing.
pub fn settle(bin: &Bin) {
    let mut last = bin.store();
    wait_until(WAIT, "the store to settle", || {
        std::thread::sleep(Duration::from_millis(500));
        let now = bin.store();
        let same = now == last;
        last = now;
        same
    });
}
