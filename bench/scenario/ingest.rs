//! Scenario 1, ingest: messages per second the bridge takes off the broker and fully handles (stored,
//! matched, collected, every round closed), under a flood of QoS 0 messages over the 1,000 flood topics.
//!
//! Baseline: `mosquitto_sub -t '#' >/dev/null` on the same broker with the same publisher; a bare
//! rumqttc loop that only counts is shown as a reference (the floor of any rumqttc consumer). The three
//! consumers alternate, medians reported. Target: the bridge at >= 0.9x mosquitto_sub, with no broker
//! drops. Also reported: the bridge's CPU per message against the bare loop's.
//!
//! The measurement ([`measure_ingest`], [`ingest_bridge`]) serves scenarios 6 (ingest during the RRD
//! storm) and 8 (the exporter under the same flood) too, and with the sensor fleet's flood
//! ([`Flood::Fleet`]) scenario 9, against `mosquitto_sub` and the bare loop in the same way; scenario 10
//! floods the same fleet with longer payloads ([`Flood::Discovery`]).

use super::setup::{flood_host, median_by, push_test, runtime, Env, FLOOD_TOPICS_PER_TEST};
use crate::api_setup::{flood_topics, FLOOD_TOPICS};
use crate::common::bridge::RunningBridge;
use crate::common::free_port;
use crate::fleet;
use crate::flood::Publisher;
use crate::probe;
use crate::row::{Outcome, Row};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xymon_mqtt::metrics::{Metrics, ReasonLabel};

/// The bridge config of the ingest scenarios: every flood topic is in a continuous test (10 per test), so
/// every message is stored, matched and collected, and every 10 messages complete a round and build a
/// status. Statuses go to `xymon`, a closed port: delivery is scenario 2, here the outbox keeps the latest
/// per test.
fn ingest_config(env: &Env, xymon: &str) -> String {
    let mut s = env.bridge_config(xymon);
    for (t, chunk) in flood_topics().chunks(FLOOD_TOPICS_PER_TEST).enumerate() {
        push_test(&mut s, &flood_host(t), "flood", "1s", chunk);
    }
    s
}

/// One consumer's ingest run.
#[derive(Debug, Clone)]
pub struct IngestRun {
    pub received: u64,
    pub secs: f64,
    pub rate: f64,
    pub dropped: u64,
    /// CPU time of the consumer's runtime threads per message (in-process consumers only), in ns.
    pub cpu_ns_per_msg: f64,
    /// How long the publisher took to hand everything to the kernel (shown in the JSON details).
    pub publish_secs: f64,
}

/// What the publisher thread runs: publishes, returns the time it took to hand everything to the kernel.
type PublishFn = Box<dyn FnOnce(&mut Publisher) -> std::io::Result<Duration> + Send>;

/// What the publisher floods, and what the baselines subscribe to for it.
#[derive(Debug, Clone, Copy)]
pub enum Flood {
    /// Scenario 1's: 32-byte values over the 1,000 flood topics (`bench/devNNNN/value`).
    Values,
    /// Scenario 9's: the sensor fleet of `devices` devices (`bench/fleet.rs`), then one message of the
    /// sentinel device.
    Fleet { devices: usize },
    /// Scenario 10's: the same fleet with the longer payloads of `bench/discovery.rs`, then the sentinel.
    Discovery { devices: usize },
}

impl Flood {
    /// The subscription of `mosquitto_sub` and of the bare loop.
    pub fn filter(self) -> &'static str {
        match self {
            Flood::Values => "#",
            Flood::Fleet { .. } | Flood::Discovery { .. } => fleet::FILTER,
        }
    }

    /// What the publisher thread runs to publish `n` messages (prepared here, before the clock starts);
    /// it returns the time it took to hand them to the kernel.
    fn publisher(self, n: usize) -> PublishFn {
        match self {
            Flood::Values => {
                let topics = flood_topics();
                Box::new(move |p| p.flood(&topics, n))
            }
            Flood::Fleet { devices } => fleet_publisher(n, devices, fleet::Payload::new),
            Flood::Discovery { devices } => fleet_publisher(n, devices, crate::discovery::payload),
        }
    }
}

/// The fleet's flood of `n` messages over `devices` devices with the payloads `payload` makes, then one
/// message of the sentinel device (device 0's payload).
fn fleet_publisher(n: usize, devices: usize, payload: fn(usize) -> fleet::Payload) -> PublishFn {
    let topics: Vec<String> = (0..devices).map(fleet::topic).collect();
    let payloads: Vec<fleet::Payload> = (0..devices).map(payload).collect();
    let mut sentinel = Vec::new();
    crate::flood::encode_publish(
        &mut sentinel,
        &fleet::topic_of(fleet::SENTINEL),
        &payload(0).bytes,
    );
    Box::new(move |p| {
        let took = p.flood_with(
            &topics,
            n,
            |d| payloads[d].bytes.clone(),
            |d, cycle, bytes| payloads[d].patch(bytes, d, cycle),
        )?;
        p.write(&sentinel)?;
        Ok(took)
    })
}

/// How long a consumer that reports its progress may make none once the publisher is done.
pub const STALL: Duration = Duration::from_secs(3);

/// Floods `n` messages and polls `progress` (messages the consumer has fully handled, finished?) until the
/// consumer has everything or has made no progress for `stall` after the publisher finished.
pub fn measure_ingest(
    env: &Env,
    flood: Flood,
    n: usize,
    stall: Duration,
    mut progress: impl FnMut() -> (u64, bool),
) -> IngestRun {
    let port = env.port();
    let dropped_before = probe::dropped(port).unwrap_or(0);
    let cpu_before = probe::threads_cpu_ns("tokio-rt-worker");
    let publish = flood.publisher(n);
    let t0 = Instant::now();
    let publisher = std::thread::spawn(move || {
        let mut p = Publisher::connect(port, "bench-flood").expect("publisher connect");
        let took = publish(&mut p).expect("flood");
        p.sync().expect("sync");
        p.disconnect();
        took
    });
    let mut last = (0u64, Instant::now());
    let mut t_end;
    let received = loop {
        std::thread::sleep(Duration::from_millis(1));
        let (got, done) = progress();
        t_end = Instant::now();
        if done {
            break got;
        }
        if got != last.0 {
            last = (got, t_end);
        } else if publisher.is_finished() && last.1.elapsed() > stall {
            t_end = last.1;
            break got;
        }
    };
    let cpu = probe::threads_cpu_ns("tokio-rt-worker").saturating_sub(cpu_before);
    let publish_secs = publisher.join().expect("publisher").as_secs_f64();
    // $SYS is published every second.
    std::thread::sleep(Duration::from_millis(2100));
    let dropped = probe::dropped(port)
        .unwrap_or(0)
        .saturating_sub(dropped_before);
    let secs = (t_end - t0).as_secs_f64();
    IngestRun {
        received,
        secs,
        rate: received as f64 / secs,
        dropped,
        cpu_ns_per_msg: cpu as f64 / received.max(1) as f64,
        publish_secs,
    }
}

pub fn ingest_mosquitto_sub(env: &Env, flood: Flood, n: usize) -> IngestRun {
    // A run that could not be timed (mosquitto_sub never got all n, see below) says nothing about its
    // speed; try again, at most twice.
    for _ in 0..3 {
        let run = ingest_mosquitto_sub_once(env, flood, n);
        if run.secs >= run.publish_secs * 0.5 {
            return run;
        }
        if run.dropped > 0 {
            // It never exits then (-C counts what arrives), and its time cannot be known: a run with
            // broker drops means the machine was too busy for the C client itself.
            eprintln!(
                "[bench]   mosquitto_sub fell behind: the broker dropped {} messages for it (is the machine busy?); again",
                run.dropped
            );
        } else {
            eprintln!("[bench]   mosquitto_sub ended early ({run:?}); again");
        }
    }
    ingest_mosquitto_sub_once(env, flood, n)
}

fn ingest_mosquitto_sub_once(env: &Env, flood: Flood, n: usize) -> IngestRun {
    // Settled: the consumer measured just before may have left a moment ago, and a count that still
    // holds its subscription would make the wait below run out instead of seeing this one's.
    let subscriptions = probe::quiet_subscriptions(env.port());
    let mut child: Child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &env.port().to_string()])
        .args(["-t", flood.filter(), "-C", &n.to_string()])
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(env.tmp.path().join("mosquitto_sub.err"))
                .map_or(Stdio::null(), Stdio::from),
        )
        .spawn()
        .expect("run mosquitto_sub");
    // Flood only once it is subscribed: a message published before that never reaches it, so it would
    // never count to n (and the broker would not count a drop either).
    std::thread::sleep(Duration::from_millis(300));
    probe::wait_subscriptions(env.port(), subscriptions + 1, Duration::from_secs(10));
    // mosquitto_sub reports nothing until it exits, so "no progress" cannot be seen: it may still be
    // working through the backlog the broker queued for it long after the publisher is done. A limit of
    // a few seconds would cut its slow runs off and retry them, keeping only its fast runs.
    let mut run = measure_ingest(env, flood, n, Duration::from_secs(60), || {
        match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    eprintln!("[bench]   mosquitto_sub exited with {status}");
                }
                (n as u64, true)
            }
            _ => (0, false),
        }
    });
    if child.try_wait().ok().flatten().is_none() {
        // It never got all n: what it got is what the broker did not drop.
        let _ = child.kill();
        let _ = child.wait();
        run.received = (n as u64).saturating_sub(run.dropped);
        run.rate = run.received as f64 / run.secs;
    }
    run
}

/// A rumqttc event loop that only counts: the floor of any rumqttc-based consumer.
pub fn ingest_rumqttc(env: &Env, flood: Flood, n: usize) -> IngestRun {
    let count = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let rt = runtime();
    let (c, s, st, port) = (count.clone(), subscribed.clone(), stop.clone(), env.port());
    rt.spawn(async move {
        let opts = rumqttc::MqttOptions::new("bench-rumqttc", "127.0.0.1", port);
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 10);
        let filter = match flood {
            Flood::Values => "bench/#",
            Flood::Fleet { .. } | Flood::Discovery { .. } => fleet::FILTER,
        };
        let _ = client.subscribe(filter, rumqttc::QoS::AtMostOnce).await;
        // Pinned once, like the bridge's loop: the floor should not pay a waiter registration per event.
        let cancelled = st.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                _ = &mut cancelled => break,
                ev = el.poll() => match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(_))) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        s.store(true, Ordering::Relaxed)
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });
    crate::common::wait_until(Duration::from_secs(10), "rumqttc subscribed", || {
        subscribed.load(Ordering::Relaxed)
    });
    let run = measure_ingest(env, flood, n, STALL, || {
        let got = count.load(Ordering::Relaxed);
        (got, got >= n as u64)
    });
    stop.cancel();
    rt.shutdown_timeout(Duration::from_secs(2));
    run
}

/// The bridge in-process: done when every message is counted and every round it completes is closed.
pub fn ingest_bridge(env: &Env, n: usize) -> (IngestRun, Value) {
    // Statuses go to a port nothing listens on.
    let bridge = RunningBridge::start(&ingest_config(env, &format!("127.0.0.1:{}", free_port())));
    bridge.wait_subscribed(0);
    let messages = bridge
        .shared
        .metrics
        .messages
        .get_or_create(&Metrics::broker("b"))
        .clone();
    let rounds = bridge
        .shared
        .metrics
        .rounds
        .get_or_create(&ReasonLabel {
            reason: "complete".into(),
        })
        .clone();
    // Every FLOOD_TOPICS_PER_TEST consecutive messages complete one round.
    let rounds_expected = (n / FLOOD_TOPICS_PER_TEST) as u64;
    let run = measure_ingest(env, Flood::Values, n, STALL, || {
        let got = messages.get();
        (got, got >= n as u64 && rounds.get() >= rounds_expected)
    });
    let topics = bridge.shared.store.topic_count();
    bridge.stop();
    (
        run,
        json!({"rounds_complete": rounds.get(), "topics_stored": topics}),
    )
}

pub fn run(env: &Env, _: Option<f64>) -> Outcome {
    let n = env.sizes.ingest_msgs;
    let (mut sub, mut bare, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut extra = Value::Null;
    for rep in 0..env.sizes.ingest_reps {
        eprintln!(
            "[bench]   ingest rep {}: mosquitto_sub, rumqttc, bridge",
            rep + 1
        );
        sub.push(ingest_mosquitto_sub(env, Flood::Values, n));
        bare.push(ingest_rumqttc(env, Flood::Values, n));
        let (r, e) = ingest_bridge(env, n);
        ours.push(r);
        extra = e;
    }
    let rate = |v: &[IngestRun]| median_by(v, |r| r.rate);
    let (sub_rate, bare_rate, our_rate) = (rate(&sub), rate(&bare), rate(&ours));
    let cpu = |v: &[IngestRun]| median_by(v, |r| r.cpu_ns_per_msg);
    let (bare_cpu, our_cpu) = (cpu(&bare), cpu(&ours));
    let our_dropped: u64 = ours.iter().map(|r| r.dropped).sum();
    let our_received_all = ours.iter().all(|r| r.received >= n as u64);
    const SUB: &str = "mosquitto_sub -t '#' >/dev/null";
    let rows = vec![
        Row::new(
            "ingest msg/s, bridge (store+match+collect)",
            our_rate,
            "msg/s",
        )
        .against(SUB, sub_rate)
        .target(">= 0.9x", our_rate >= 0.9 * sub_rate),
        Row::new(
            "ingest msg/s, bare rumqttc loop (reference)",
            bare_rate,
            "msg/s",
        )
        .against(SUB, sub_rate),
        Row::new("bridge CPU per message (runtime threads)", our_cpu, "ns")
            .against("bare rumqttc loop", bare_cpu),
        Row::new(
            "broker drops for the bridge (all reps)",
            our_dropped as f64,
            "msgs",
        )
        .target("0", our_dropped == 0 && our_received_all),
    ];
    let dbg = |v: &[IngestRun]| v.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
    Outcome {
        ingest_rate: Some(our_rate),
        ..Outcome::new(
            rows,
            json!({
                "messages_per_run": n, "topics": FLOOD_TOPICS, "tests": FLOOD_TOPICS / FLOOD_TOPICS_PER_TEST,
                "mosquitto_sub": dbg(&sub), "rumqttc": dbg(&bare), "bridge": dbg(&ours), "bridge_last": extra,
            }),
        )
    }
}
