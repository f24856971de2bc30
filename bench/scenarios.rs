//! The eight scenarios of issue 6. Each returns its details (JSON) and appends its rows to the table.

use crate::api_setup::{flood_topics, FLOOD_TOPICS};
use crate::common::bridge::RunningBridge;
use crate::common::{free_port, Mosquitto, Xymond};
use crate::flood::{encode_publish, Publisher};
use crate::probe::{self, Tap};
use crate::relay::Relay;
use crate::{Row, Sizes};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xymon_mqtt::metrics::{Metrics, ReasonLabel};

/// Topics of the ingest flood, and how the ingest config groups them into tests.
const FLOOD_TOPICS_PER_TEST: usize = 10;
/// Hosts of the delivery scenario (all in the private hosts.cfg).
const DELIVERY_HOSTS: usize = 1_000;
/// Hosts (one continuous test each, 3 topics) of the latency scenario.
const LATENCY_HOSTS: usize = 20;
const MEMORY_TOPICS_PER_TEST: usize = 100;

pub struct Env {
    pub sizes: Sizes,
    pub mosq: Mosquitto,
    pub xymond: Xymond,
    pub tmp: tempfile::TempDir,
    /// The release `xymon-mqtt` binary (scenarios 4 and 7 measure it as its own process).
    pub bin: PathBuf,
}

fn flood_host(t: usize) -> String {
    format!("b{t:03}")
}
fn delivery_host(i: usize) -> String {
    format!("d{i:04}")
}
fn latency_host(i: usize) -> String {
    format!("l{i:02}")
}
fn memory_host(t: usize) -> String {
    format!("m{t:04}")
}

impl Env {
    pub fn start(sizes: Sizes, bin: PathBuf) -> Env {
        let mut mosq = Mosquitto::start();
        // The harness broker logs every packet (log_type all), which would make the broker the bottleneck
        // of every figure. Same port, same directory, Debian's default logging instead.
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\npersistence false\n\
             log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n{user}",
            port = mosq.port(),
            log = mosq.dir().join("mosquitto.log").display(),
            user = if is_root() { "user root\n" } else { "" },
        );
        std::fs::write(mosq.dir().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
        mosq.start_again();

        let mut hosts: Vec<String> = Vec::new();
        hosts.extend((0..FLOOD_TOPICS / FLOOD_TOPICS_PER_TEST).map(flood_host));
        hosts.extend((0..DELIVERY_HOSTS).map(delivery_host));
        hosts.extend((0..LATENCY_HOSTS).map(latency_host));
        let max_mem = sizes.memory_topics.iter().max().copied().unwrap_or(0);
        hosts.extend((0..max_mem.div_ceil(MEMORY_TOPICS_PER_TEST)).map(memory_host));
        hosts.push("idle".into());
        let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let xymond = Xymond::start(&refs);
        let tmp = tempfile::Builder::new()
            .prefix("xymon-mqtt-bench-")
            .tempdir_in(std::env::var_os("BENCH_TMP").unwrap_or_else(|| "target".into()))
            .expect("bench temp dir");
        Env {
            sizes,
            mosq,
            xymond,
            tmp,
            bin,
        }
    }

    fn port(&self) -> u16 {
        self.mosq.port()
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

fn median(mut v: Vec<f64>) -> f64 {
    probe::quantile(&mut v, 0.5)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 1: ingest
// ---------------------------------------------------------------------------------------------------------

/// The bridge config of the ingest scenarios: every flood topic is in a continuous test (10 per test), so
/// every message is stored, matched and collected, and every 10 messages complete a round and build a
/// status. Statuses go to a closed port: delivery is scenario 2, here the outbox keeps the latest per test.
fn ingest_config(env: &Env, xymon: &str) -> String {
    let topics = flood_topics();
    let mut s = format!(
        "[xymon]\nserver = \"{xymon}\"\nrrd_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:{}\"\n\
         [[broker]]\nname = \"b\"\nurl = \"{}\"\n",
        env.tmp.path().display(),
        free_port(),
        env.mosq.url()
    );
    for (t, chunk) in topics.chunks(FLOOD_TOPICS_PER_TEST).enumerate() {
        let list: Vec<String> = chunk.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = write!(
            s,
            "[[test]]\nhost = \"{}\"\ntest = \"flood\"\nbroker = \"b\"\nmode = \"continuous\"\n\
             window = \"1s\"\ntopics = [{}]\n",
            flood_host(t),
            list.join(", ")
        );
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
    #[allow(dead_code)]
    pub publish_secs: f64,
}

/// How long a consumer that reports its progress may make none once the publisher is done.
const STALL: Duration = Duration::from_secs(3);

/// Floods `n` messages and polls `progress` (messages the consumer has fully handled, finished?) until the
/// consumer has everything or has made no progress for `stall` after the publisher finished.
fn measure_ingest(
    env: &Env,
    n: usize,
    stall: Duration,
    mut progress: impl FnMut() -> (u64, bool),
) -> IngestRun {
    let port = env.port();
    let dropped_before = probe::sys_value(port, probe::DROPPED).unwrap_or(0);
    let cpu_before = probe::threads_cpu_ns("tokio-rt-worker");
    let topics = flood_topics();
    let t0 = Instant::now();
    let publisher = std::thread::spawn(move || {
        let mut p = Publisher::connect(port, "bench-flood").expect("publisher connect");
        let took = p.flood(&topics, n).expect("flood");
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
    let dropped = probe::sys_value(port, probe::DROPPED)
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

fn ingest_mosquitto_sub(env: &Env, n: usize) -> IngestRun {
    // A run that could not be timed (mosquitto_sub never got all n, see below) says nothing about its
    // speed; try again, at most twice.
    for _ in 0..3 {
        let run = ingest_mosquitto_sub_once(env, n);
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
    ingest_mosquitto_sub_once(env, n)
}

fn ingest_mosquitto_sub_once(env: &Env, n: usize) -> IngestRun {
    let subscriptions = probe::sys_value(env.port(), probe::SUBSCRIPTIONS).unwrap_or(0);
    let mut child: Child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &env.port().to_string()])
        .args(["-t", "#", "-C", &n.to_string()])
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
    // working through the backlog the broker queued for it long after the publisher is done. (With a
    // 3 s limit, slow runs were cut off and retried, which kept only its fast runs.)
    let mut run = measure_ingest(env, n, Duration::from_secs(60), || match child.try_wait() {
        Ok(Some(status)) => {
            if !status.success() {
                eprintln!("[bench]   mosquitto_sub exited with {status}");
            }
            (n as u64, true)
        }
        _ => (0, false),
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
fn ingest_rumqttc(env: &Env, n: usize) -> IngestRun {
    let count = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (c, s, st, port) = (count.clone(), subscribed.clone(), stop.clone(), env.port());
    rt.spawn(async move {
        let opts = rumqttc::MqttOptions::new("bench-rumqttc", "127.0.0.1", port);
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 10);
        let _ = client.subscribe("bench/#", rumqttc::QoS::AtMostOnce).await;
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
    let run = measure_ingest(env, n, STALL, || {
        let got = count.load(Ordering::Relaxed);
        (got, got >= n as u64)
    });
    stop.cancel();
    rt.shutdown_timeout(Duration::from_secs(2));
    run
}

/// The bridge in-process: done when every message is counted and every round it completes is closed.
fn ingest_bridge(env: &Env, n: usize) -> (IngestRun, Value) {
    let bridge = RunningBridge::start(&ingest_config(env, &format!("127.0.0.1:{}", closed_port())));
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
    let run = measure_ingest(env, n, STALL, || {
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

pub fn ingest(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    let n = env.sizes.ingest_msgs;
    let (mut sub, mut bare, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut extra = Value::Null;
    for rep in 0..env.sizes.ingest_reps {
        eprintln!(
            "[bench]   ingest rep {}: mosquitto_sub, rumqttc, bridge",
            rep + 1
        );
        sub.push(ingest_mosquitto_sub(env, n));
        bare.push(ingest_rumqttc(env, n));
        let (r, e) = ingest_bridge(env, n);
        ours.push(r);
        extra = e;
    }
    let rate = |v: &[IngestRun]| median(v.iter().map(|r| r.rate).collect());
    let (sub_rate, bare_rate, our_rate) = (rate(&sub), rate(&bare), rate(&ours));
    let cpu = |v: &[IngestRun]| median(v.iter().map(|r| r.cpu_ns_per_msg).collect());
    let (bare_cpu, our_cpu) = (cpu(&bare), cpu(&ours));
    let our_dropped: u64 = ours.iter().map(|r| r.dropped).sum();
    let our_received_all = ours.iter().all(|r| r.received >= n as u64);
    rows.push(Row {
        scenario: 1,
        metric: "ingest msg/s, bridge (store+match+collect)".into(),
        value: our_rate,
        unit: "msg/s",
        baseline: Some(("mosquitto_sub -t '#' >/dev/null".into(), sub_rate)),
        target: ">= 0.9x".into(),
        met: Some(our_rate >= 0.9 * sub_rate),
    });
    rows.push(Row {
        scenario: 1,
        metric: "ingest msg/s, bare rumqttc loop (reference)".into(),
        value: bare_rate,
        unit: "msg/s",
        baseline: Some(("mosquitto_sub -t '#' >/dev/null".into(), sub_rate)),
        target: String::new(),
        met: None,
    });
    rows.push(Row {
        scenario: 1,
        metric: "bridge CPU per message (runtime threads)".into(),
        value: our_cpu,
        unit: "ns",
        baseline: Some(("bare rumqttc loop".into(), bare_cpu)),
        target: String::new(),
        met: None,
    });
    rows.push(Row {
        scenario: 1,
        metric: "broker drops for the bridge (all reps)".into(),
        value: our_dropped as f64,
        unit: "msgs",
        baseline: None,
        target: "0".into(),
        met: Some(our_dropped == 0 && our_received_all),
    });
    let dbg = |v: &[IngestRun]| v.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>();
    (
        json!({
            "messages_per_run": n, "topics": FLOOD_TOPICS, "tests": FLOOD_TOPICS / FLOOD_TOPICS_PER_TEST,
            "mosquitto_sub": dbg(&sub), "rumqttc": dbg(&bare), "bridge": dbg(&ours), "bridge_last": extra,
        }),
        Some(our_rate),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 2: status delivery into xymond
// ---------------------------------------------------------------------------------------------------------

fn delivery_status(i: usize, seq: u64) -> xymon_mqtt::xymon::Status {
    use xymon_mqtt::config::{HostName, TestName};
    xymon_mqtt::xymon::Status {
        host: HostName::try_from(delivery_host(i)).expect("host"),
        test: TestName::try_from("bench".to_string()).expect("test"),
        colour: xymon_mqtt::xymon::Colour::Green,
        lifetime: Duration::from_secs(1800),
        summary: format!("2026-01-01 00:00:00 bench: all 3 topics received bseq-{seq}"),
        body: "\n&green sensors/bench/temperature = 21.5\n&green sensors/bench/humidity = 40\n\
               &green sensors/bench/pressure = 1013\n\nRound opened 2026-01-01 00:00:00, complete after 3 ms (window 500 ms); broker b\n"
            .into(),
    }
}

/// Statuses xymond posted on its status channel for delivery hosts within [from, to].
fn accepted(tap: &Tap, from: u128, to: u128) -> usize {
    tap.read()
        .iter()
        .filter(|t| t.host.starts_with('d') && t.at_ns >= from && t.at_ns <= to)
        .count()
}

/// Our outbox + sender, kept saturated for `secs`; `combo_max` 1 is the one-connection-per-status sender.
fn delivery_ours(env: &Env, tap: &Tap, combo_max: usize, secs: f64) -> (f64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outbox = Arc::new(xymon_mqtt::xymon::Outbox::new());
    let metrics = Arc::new(Metrics::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let sender = rt.spawn(xymon_mqtt::xymon::run(
        xymon_mqtt::xymon::SenderConfig {
            addr: env.xymond.addr(),
            timeout: Duration::from_secs(10),
            combo_max,
            drain_deadline: Duration::from_millis(100),
        },
        outbox.clone(),
        metrics.clone(),
        cancel.clone(),
    ));
    let from = probe::now_ns();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut seq = 0;
    while Instant::now() < deadline {
        if outbox.pending() < DELIVERY_HOSTS / 2 {
            seq += 1;
            for i in 0..DELIVERY_HOSTS {
                outbox.put(delivery_status(i, seq));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let to = probe::now_ns();
    cancel.cancel();
    let _ = rt.block_on(sender);
    std::thread::sleep(Duration::from_millis(300));
    let n = accepted(tap, from, to);
    (n as f64 / secs, metrics.statuses_sent.get())
}

/// xymond's own `xymon` client, one process and one connection per status.
fn delivery_cli(env: &Env, tap: &Tap, secs: f64) -> f64 {
    let cli = [
        "/usr/lib/xymon/client/bin/xymon",
        "/usr/lib/xymon/server/bin/xymon",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or("xymon");
    let from = probe::now_ns();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut i = 0;
    while Instant::now() < deadline {
        let msg = delivery_status(i % DELIVERY_HOSTS, i as u64).to_wire();
        let _ = Command::new(cli)
            .env_clear()
            .args([&env.xymond.addr(), &msg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        i += 1;
    }
    let to = probe::now_ns();
    std::thread::sleep(Duration::from_millis(300));
    accepted(tap, from, to) as f64 / secs
}

pub fn delivery(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    let secs = env.sizes.delivery_secs;
    let tap = Tap::start(env.xymond.dir(), &env.tmp.path().join("tap-delivery.txt"));
    // xymond's CPU share during each run (utime+stime ticks of its process over the run): shows whether
    // xymond or the connections are the limit.
    let xymond_pid = env.xymond.pid().unwrap_or(0);
    // The machine's busy share too: on 2 CPUs shared by the sender, xymond and its channel readers, a
    // machine at 100 % is the limit whatever xymond's own share.
    let xymond_cpu = |run: &mut dyn FnMut()| -> (f64, f64) {
        let (t0, c0, m0) = (
            Instant::now(),
            probe::cpu_ticks(xymond_pid),
            probe::machine_ticks(),
        );
        run();
        let ticks = probe::cpu_ticks(xymond_pid).saturating_sub(c0);
        let m1 = probe::machine_ticks();
        let busy = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64 * 100.0;
        // Ticks are 1/100 s, so ticks per second is percent of one CPU.
        (ticks as f64 / t0.elapsed().as_secs_f64(), busy)
    };
    let mut cli = 0.0;
    let (cli_cpu, cli_busy) = xymond_cpu(&mut || cli = delivery_cli(env, &tap, secs));
    let (mut single, mut single_sent) = (0.0, 0);
    let (single_cpu, single_busy) =
        xymond_cpu(&mut || (single, single_sent) = delivery_ours(env, &tap, 1, secs));
    let (mut combo, mut combo_sent) = (0.0, 0);
    let (combo_cpu, combo_busy) =
        xymond_cpu(&mut || (combo, combo_sent) = delivery_ours(env, &tap, 100, secs));
    rows.push(Row {
        scenario: 2,
        metric: "statuses/s accepted by xymond, combo<=100".into(),
        value: combo,
        unit: "st/s",
        baseline: Some(("1 conn/status (Rust, same sender)".into(), single)),
        target: ">= 5x".into(),
        met: Some(combo >= 5.0 * single),
    });
    rows.push(Row {
        scenario: 2,
        metric: "statuses/s accepted by xymond, combo<=100".into(),
        value: combo,
        unit: "st/s",
        baseline: Some(("`xymon` CLI in a loop".into(), cli)),
        target: ">= 5x".into(),
        met: Some(combo >= 5.0 * cli),
    });
    for (what, cpu, busy, rate) in [
        ("combo<=100", combo_cpu, combo_busy, combo),
        ("1 conn/status (Rust)", single_cpu, single_busy, single),
        ("`xymon` CLI loop", cli_cpu, cli_busy, cli),
    ] {
        rows.push(Row {
            scenario: 2,
            metric: format!("xymond CPU during the {what} run (% of one CPU)"),
            value: cpu,
            unit: "%",
            baseline: None,
            target: String::new(),
            met: None,
        });
        rows.push(Row {
            scenario: 2,
            metric: format!("machine busy during the {what} run (all CPUs)"),
            value: busy,
            unit: "%",
            baseline: None,
            target: String::new(),
            met: None,
        });
        rows.push(Row {
            scenario: 2,
            metric: format!("xymond CPU per accepted status, {what}"),
            value: if rate > 0.0 {
                cpu / 100.0 / rate * 1e6
            } else {
                0.0
            },
            unit: "us",
            baseline: None,
            target: String::new(),
            met: None,
        });
    }
    (
        json!({"hosts": DELIVERY_HOSTS, "seconds": secs, "combo_per_s": combo, "combo_sent": combo_sent,
               "single_per_s": single, "single_sent": single_sent, "cli_per_s": cli,
               "xymond_cpu_percent": {"combo": combo_cpu, "single": single_cpu, "cli": cli_cpu},
               "machine_busy_percent": {"combo": combo_busy, "single": single_busy, "cli": cli_busy},
               "counted_by": "xymond_channel --channel=status tap"}),
        None,
    )
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 3: latency publish -> xymond
// ---------------------------------------------------------------------------------------------------------

fn latency_config(env: &Env) -> String {
    let mut s = format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:{}\"\n\
         [[broker]]\nname = \"b\"\nurl = \"{}\"\n",
        env.xymond.addr(),
        env.tmp.path().display(),
        free_port(),
        env.mosq.url()
    );
    for h in 0..LATENCY_HOSTS {
        let host = latency_host(h);
        let _ = write!(
            s,
            "[[test]]\nhost = \"{host}\"\ntest = \"lat\"\nbroker = \"b\"\nmode = \"continuous\"\n\
             window = \"1s\"\ntopics = [\"lat/{host}/a\", \"lat/{host}/b\", \"lat/{host}/c\"]\n"
        );
    }
    s
}

/// Publishes rounds of the 3 topics `{prefix}/{host}/{a,b,c}` at `rate` per second (at least
/// `latency_min_rounds`) and returns (rounds measured, latencies in ms of those the tap saw), from the
/// write of a round's last topic to xymond posting the status that carries its marker.
fn timed_rounds(env: &Env, tap: &Tap, rate: u32, prefix: &str, seq: &mut u64) -> (usize, Vec<f64>) {
    let mut p = Publisher::connect(env.port(), "bench-latency").expect("connect");
    let mut sent: Vec<(String, String, u128)> = Vec::new();
    let start = Instant::now();
    let rounds =
        ((env.sizes.latency_secs * rate as f64).ceil() as u64).max(env.sizes.latency_min_rounds);
    let mut buf = Vec::with_capacity(256);
    for i in 0..rounds {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        *seq += 1;
        let host = latency_host((*seq as usize) % LATENCY_HOSTS);
        let marker = format!("bseq-{seq}");
        buf.clear();
        for t in ["a", "b", "c"] {
            encode_publish(&mut buf, &format!("{prefix}/{host}/{t}"), marker.as_bytes());
        }
        p.write(&buf).expect("publish");
        sent.push((host, marker, probe::now_ns()));
    }
    p.sync().expect("sync");
    p.disconnect();
    std::thread::sleep(Duration::from_millis(500));
    let seen: std::collections::HashMap<(String, String), u128> = tap
        .read()
        .into_iter()
        .map(|t| ((t.host, t.marker), t.at_ns))
        .collect();
    // The first 5 % are warm-up (connection set-up, first allocation of every round).
    let skip = sent.len() / 20;
    let lat_ms = sent[skip..]
        .iter()
        .filter_map(|(h, m, at)| {
            let got = seen.get(&(h.clone(), m.clone()))?;
            Some(got.saturating_sub(*at) as f64 / 1e6)
        })
        .collect();
    (sent.len() - skip, lat_ms)
}

pub fn latency(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    let tap = Tap::start(env.xymond.dir(), &env.tmp.path().join("tap-latency.txt"));
    let bridge = RunningBridge::start(&latency_config(env));
    bridge.wait_subscribed(0);
    // The floor: a blocking relay with no work (bench/relay.rs), on its own topics, so that it and the
    // bridge never see each other's rounds; each sits idle while the other is measured.
    let relay = Relay::start(env.port(), env.xymond.addr(), "latr", "relay").expect("relay");
    let mut details = serde_json::Map::new();
    let mut seq: u64 = 0;
    for (rate, p99_target_ms) in [(20u32, 1.0), (200, f64::NAN), (2000, 5.0)] {
        let (measured, mut lat_ms) = timed_rounds(env, &tap, rate, "lat", &mut seq);
        let (floor_measured, mut floor_ms) = timed_rounds(env, &tap, rate, "latr", &mut seq);
        assert!(
            !floor_ms.is_empty(),
            "scenario 3: the relay delivered none of its {floor_measured} rounds at {rate}/s"
        );
        let delivered = lat_ms.len();
        let p50 = probe::quantile(&mut lat_ms, 0.5);
        let p99 = probe::quantile(&mut lat_ms, 0.99);
        let max = probe::quantile(&mut lat_ms, 1.0);
        let floor_p50 = probe::quantile(&mut floor_ms, 0.5);
        let floor_p99 = probe::quantile(&mut floor_ms, 0.99);
        let target = if p99_target_ms.is_nan() {
            String::new()
        } else {
            format!("p99 <= {p99_target_ms} ms")
        };
        let floor = |q: &str, v: f64| Some((format!("{q} of a blocking relay doing no work"), v));
        rows.push(Row {
            scenario: 3,
            metric: format!("latency p50 at {rate} rounds/s"),
            value: p50,
            unit: "ms",
            baseline: floor("p50", floor_p50),
            target: String::new(),
            met: None,
        });
        rows.push(Row {
            scenario: 3,
            metric: format!("latency p99 at {rate} rounds/s"),
            value: p99,
            unit: "ms",
            baseline: floor("p99", floor_p99),
            target,
            met: (!p99_target_ms.is_nan()).then_some(p99 <= p99_target_ms),
        });
        details.insert(
            format!("{rate}_per_s"),
            json!({"rounds": measured, "delivered": delivered, "p50_ms": p50, "p99_ms": p99, "max_ms": max,
                   "note": "rounds not delivered were superseded in the outbox by a newer round of the same host.test",
                   "relay": {"rounds": floor_measured, "delivered": floor_ms.len(), "p50_ms": floor_p50,
                             "p99_ms": floor_p99, "max_ms": probe::quantile(&mut floor_ms, 1.0)}}),
        );
    }
    drop(relay);
    bridge.stop();
    (Value::Object(details), None)
}

// ---------------------------------------------------------------------------------------------------------
// Scenarios 4 and 7: memory and idle, on the real binary as its own process
// ---------------------------------------------------------------------------------------------------------

/// Starts `xymon-mqtt --config FILE` with `topics` distinct topics in continuous tests (100 per test), or a
/// single one-topic test for 0.
fn spawn_bridge_process(env: &Env, topics: usize, name: &str) -> (Child, Vec<String>) {
    let mut s = format!(
        "[xymon]\nserver = \"{}\"\nrrd_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:{}\"\n\
         [[broker]]\nname = \"b\"\nurl = \"{}\"\n",
        env.xymond.addr(),
        env.tmp.path().display(),
        free_port(),
        env.mosq.url()
    );
    let all: Vec<String> = (0..topics.max(1))
        .map(|i| {
            format!(
                "mem/t{:04}/v{:03}",
                i / MEMORY_TOPICS_PER_TEST,
                i % MEMORY_TOPICS_PER_TEST
            )
        })
        .collect();
    for (t, chunk) in all.chunks(MEMORY_TOPICS_PER_TEST).enumerate() {
        let list: Vec<String> = chunk.iter().map(|c| format!("\"{c}\"")).collect();
        let host = if topics == 0 {
            "idle".to_string()
        } else {
            memory_host(t)
        };
        let _ = write!(
            s,
            "[[test]]\nhost = \"{host}\"\ntest = \"mem\"\nbroker = \"b\"\nmode = \"continuous\"\n\
             window = \"2s\"\ntopics = [{}]\n",
            list.join(", ")
        );
    }
    let path = env.tmp.path().join(format!("{name}.toml"));
    std::fs::write(&path, s).expect("write config");
    let log = std::fs::File::create(env.tmp.path().join(format!("{name}.log"))).expect("log");
    let child = Command::new(&env.bin)
        .arg("--config")
        .arg(&path)
        // The SubAck debug line ("subscribed") tells when the subscriptions are in place.
        .env("RUST_LOG", "warn,xymon_mqtt::mqtt=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", env.bin.display()));
    (child, all)
}

/// Waits until the bridge process `name` has logged its SubAck.
fn wait_subscribed_log(env: &Env, name: &str, timeout: Duration) -> bool {
    let path = env.tmp.path().join(format!("{name}.log"));
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(" subscribed")
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn stop_child(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..500 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the process has used no CPU for `quiet`, at most `max`.
fn wait_quiet(pid: u32, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last = probe::cpu_ticks(pid);
    let mut since = Instant::now();
    while start.elapsed() < max {
        std::thread::sleep(Duration::from_millis(100));
        let now = probe::cpu_ticks(pid);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

/// VmRSS, RssAnon and the process's own memory (RssAnon plus its program file's pages) of `pid`, in MB,
/// as rows of scenario 4 (`what`: "idle" or "at N live topics"); VmRSS is what the target is about.
fn memory_rows(rows: &mut Vec<Row>, pid: u32, what: &str, target_mb: Option<f64>) -> Value {
    let rss = probe::rss_bytes(pid) as f64 / 1e6;
    let anon = probe::rss_anon_bytes(pid) as f64 / 1e6;
    let own = probe::own_bytes(pid) as f64 / 1e6;
    rows.push(Row {
        scenario: 4,
        metric: format!("RSS {what}"),
        value: rss,
        unit: "MB",
        baseline: None,
        target: target_mb.map(|t| format!("<= {t} MB")).unwrap_or_default(),
        met: target_mb.map(|t| rss <= t),
    });
    for (label, value) in [
        ("anonymous (RssAnon)", anon),
        ("own: RssAnon + program file", own),
    ] {
        rows.push(Row {
            scenario: 4,
            metric: format!("  of which {label}, {what}"),
            value,
            unit: "MB",
            baseline: None,
            target: String::new(),
            met: None,
        });
    }
    json!({"rss_mb": rss, "rss_anon_mb": anon, "own_mb": own})
}

pub fn memory(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    let (child, _) = spawn_bridge_process(env, 0, "idle");
    let pid = child.id();
    wait_subscribed_log(env, "idle", Duration::from_secs(30));
    wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(10));
    let mut idle = memory_rows(rows, pid, "idle", Some(10.0));
    stop_child(child);
    idle["topics"] = json!(0);
    let mut points = vec![idle];
    let mut prev: Option<(usize, f64)> = None;
    for &k in env.sizes.memory_topics {
        let (child, topics) = spawn_bridge_process(env, k, &format!("mem{k}"));
        let pid = child.id();
        let ok = wait_subscribed_log(env, &format!("mem{k}"), Duration::from_secs(60));
        let mut p = Publisher::connect(env.port(), "bench-memory").expect("connect");
        p.flood(&topics, topics.len()).expect("flood");
        p.sync().expect("sync");
        p.disconnect();
        wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(30));
        let target = (k == 100_000).then_some(40.0);
        let mut point = memory_rows(rows, pid, &format!("at {k} live topics"), target);
        stop_child(child);
        let rss = point["rss_mb"].as_f64().unwrap_or(0.0);
        let per_topic = prev.map(|(pk, pr)| (rss - pr) * 1e6 / (k - pk) as f64);
        point["topics"] = json!(k);
        point["subscribed"] = json!(ok);
        point["bytes_per_topic_since_previous"] = json!(per_topic);
        points.push(point);
        prev = Some((k, rss));
    }
    (
        json!({"points": points, "payload_bytes": 32, "topics_per_test": MEMORY_TOPICS_PER_TEST}),
        None,
    )
}

pub fn idle(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    let (child, _) = spawn_bridge_process(env, 0, "idle7");
    let pid = child.id();
    wait_subscribed_log(env, "idle7", Duration::from_secs(30));
    wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(10));
    let (cpu0, cs0, t0) = (
        probe::cpu_ticks(pid),
        probe::context_switches(pid),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(env.sizes.idle_secs));
    let (cpu1, cs1, secs) = (
        probe::cpu_ticks(pid),
        probe::context_switches(pid),
        t0.elapsed().as_secs_f64(),
    );
    stop_child(child);
    let wakeups = (cs1 - cs0) as f64;
    let cpu_pct = (cpu1 - cpu0) as f64 / 100.0 / secs * 100.0;
    rows.push(Row {
        scenario: 7,
        metric: format!("idle wake-ups over {secs:.0} s (ctx switches)"),
        value: wakeups,
        unit: "",
        baseline: None,
        target: "0".into(),
        met: Some(wakeups == 0.0),
    });
    rows.push(Row {
        scenario: 7,
        metric: format!("idle CPU over {secs:.0} s"),
        value: cpu_pct,
        unit: "%",
        baseline: None,
        target: "~0".into(),
        met: Some(cpu1 == cpu0),
    });
    (
        json!({"seconds": secs, "context_switches": cs1 - cs0, "cpu_ticks": cpu1 - cpu0}),
        None,
    )
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 5: API under wrk
// ---------------------------------------------------------------------------------------------------------

pub fn api(env: &Env, rows: &mut Vec<Row>, _: Option<f64>) -> (Value, Option<f64>) {
    use axum::routing::get;
    use axum::Router;

    // The real web layer (router, middleware and all) over a store filled with the flood's topics.
    let (p_ours, p_trivial) = (free_port(), free_port());
    let (options, shared) = crate::api_setup::web_over_flood_store(p_ours, &env.mosq.url());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cancel = tokio_util::sync::CancellationToken::new();
    let web_cancel = cancel.clone();
    rt.spawn(async move {
        if let Ok(h) = xymon_mqtt::web::serve(options, shared, web_cancel).await {
            let _ = h.await;
        }
    });
    let trivial = Router::new().route("/", get(|| async { "ok" }));
    rt.spawn(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", p_trivial))
            .await
            .expect("bind");
        axum::serve(l, trivial).await.expect("serve");
    });
    std::thread::sleep(Duration::from_millis(200));
    let wrk = |url: String| -> f64 {
        let out = Command::new("wrk")
            .args(["-t2", "-c100", &format!("-d{}s", env.sizes.api_secs), &url])
            .output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let url_ours = format!("http://127.0.0.1:{p_ours}/api/v1/topics/bench/dev0042/value");
    let url_trivial = format!("http://127.0.0.1:{p_trivial}/");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Alternated, 4 runs each: single wrk runs of either side move by ±20 % on a shared 2-CPU machine.
    for _ in 0..if env.sizes.smoke { 1 } else { 4 } {
        b.push(wrk(url_trivial.clone()));
        a.push(wrk(url_ours.clone()));
    }
    cancel.cancel();
    rt.shutdown_timeout(Duration::from_secs(1));
    let (ours_rps, trivial_rps) = (median(a.clone()), median(b.clone()));
    rows.push(Row {
        scenario: 5,
        metric: "GET /api/v1/topics/{t} req/s (web layer)".into(),
        value: ours_rps,
        unit: "req/s",
        baseline: Some(("trivial axum handler".into(), trivial_rps)),
        target: ">= 0.7x".into(),
        met: Some(ours_rps >= 0.7 * trivial_rps),
    });
    let instructions = api_instructions(env);
    if let Some((ours, trivial)) = instructions {
        rows.push(Row {
            scenario: 5,
            metric: "same, server instructions per request (callgrind)".into(),
            value: ours as f64,
            unit: "instr",
            baseline: Some(("trivial axum handler".into(), trivial as f64)),
            target: String::new(),
            met: None,
        });
    }
    (
        json!({"wrk": "-t2 -c100", "ours": a, "trivial": b,
               "instructions_per_request": instructions.map(|(o, t)| json!({"ours": o, "trivial": t})),
               "note": "the bridge's own web router (xymon_mqtt::web) over a store of the flood topics"}),
        None,
    )
}

/// Scenario 5 in instructions (`api_setup::instructions_per_request`, the code `bench/api-profile` runs):
/// repeatable to within a few hundred instructions, where req/s on a shared machine is not. `None` when
/// valgrind or the `api_profile` example is missing (`./run-bench` provides both), or a run failed.
fn api_instructions(env: &Env) -> Option<(u64, u64)> {
    let driver = std::env::current_exe().ok()?.with_file_name("api_profile");
    if !driver.exists() || Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "[bench] scenario 5: no valgrind or api_profile example; instruction counts skipped"
        );
        return None;
    }
    let n = if env.sizes.smoke { 200 } else { 2000 };
    crate::api_setup::instructions_per_request(&driver, env.tmp.path(), n)
        .map_err(|e| eprintln!("[bench] scenario 5: {e}"))
        .ok()
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 6: RRD storm during ingest
// ---------------------------------------------------------------------------------------------------------

pub fn rrd(env: &Env, rows: &mut Vec<Row>, ingest_rate: Option<f64>) -> (Value, Option<f64>) {
    // Scenario 1's rate is only recorded in the details: the baseline is calm ingest measured here.
    use xymon_mqtt::rrd::{RrdDefs, RrdSample, RrdWriter};
    let files = env.sizes.rrd_files;
    let dir = env.tmp.path().join("rrd");
    std::fs::create_dir_all(&dir).expect("rrd dir");
    let (writer, handle) =
        RrdWriter::start(dir, RrdDefs::load_builtin().expect("defs"), 4096).expect("writer");
    let host = |i: usize| format!("r{i:05}");
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
        - 30 * 86_400;
    // Create every file first (not timed as updates).
    let create_start = Instant::now();
    for i in 0..files {
        let s = RrdSample {
            host: host(i),
            rrd: "value".into(),
            time: t0,
            values: vec![i as f64],
        };
        while !writer.submit(s.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    while writer.processed() < files as u64 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let create_secs = create_start.elapsed().as_secs_f64();
    let created = writer.written();
    // The storm: every file, one second later each pass, as fast as the writer takes them; it runs while
    // the ingest flood of scenario 1 goes through the bridge.
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let storm = {
        let (writer, stop, paused) = (writer.clone(), stop.clone(), paused.clone());
        std::thread::spawn(move || {
            // The feeder stands in for the collector, which submits a handful of samples per round: its
            // own CPU is harness overhead, so it runs at the lowest priority like the writer thread.
            // SAFETY: plain syscalls on this thread's own id.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
            }
            let mut pass = 0;
            while !stop.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                pass += 1;
                for i in 0..files {
                    let s = RrdSample {
                        host: host(i),
                        rrd: "value".into(),
                        time: t0 + pass,
                        values: vec![(i as i64 + pass) as f64],
                    };
                    while !writer.submit(s.clone()) {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // Storm and calm runs alternate (the feeder pauses for the calm ones), medians reported: on a shared
    // 2-core machine the run-to-run noise is larger than the effect we look for.
    let n = env.sizes.ingest_msgs;
    let reps = if env.sizes.smoke { 1 } else { 3 };
    let (mut during, mut calm, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        paused.store(false, Ordering::Relaxed);
        let w0 = (writer.written(), Instant::now());
        during.push(ingest_bridge(env, n).0);
        rates.push((writer.written() - w0.0) as f64 / w0.1.elapsed().as_secs_f64());
        paused.store(true, Ordering::Relaxed);
        calm.push(ingest_bridge(env, n).0);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = storm.join();
    let failed = writer.failed();
    drop(writer);
    let _ = handle.join();
    let updates = median(rates.clone());
    let during_rate = median(during.iter().map(|r| r.rate).collect());
    let baseline = median(calm.iter().map(|r| r.rate).collect());
    let during_dropped: u64 = during.iter().map(|r| r.dropped).sum();
    rows.push(Row {
        scenario: 6,
        metric: format!("RRD updates/s across {files} files"),
        value: updates,
        unit: "upd/s",
        baseline: None,
        target: String::new(),
        met: Some(failed == 0),
    });
    rows.push(Row {
        scenario: 6,
        metric: "ingest msg/s during the RRD storm".into(),
        value: during_rate,
        unit: "msg/s",
        baseline: Some(("bridge ingest without storm".into(), baseline)),
        target: ">= 0.9x".into(),
        met: Some(during_rate >= 0.9 * baseline && during_dropped == 0),
    });
    (
        json!({"files": files, "created": created, "create_secs": create_secs, "updates_per_s": updates,
               "failed": failed, "updates_per_s_runs": rates, "ingest_during": format!("{during:?}"), "ingest_calm": format!("{calm:?}"),
               "scenario1_rate": ingest_rate}),
        None,
    )
}

// ---------------------------------------------------------------------------------------------------------
// Scenario 8: the same flood through prometheus-mqtt-exporter
// ---------------------------------------------------------------------------------------------------------

/// How often scenario 8 reads the exporter's counter.
const EXPORTER_POLL: Duration = Duration::from_millis(50);

pub fn peer(env: &Env, rows: &mut Vec<Row>, ingest_rate: Option<f64>) -> (Value, Option<f64>) {
    let Some(exporter) = [
        "/usr/bin/prometheus-mqtt-exporter",
        "/usr/bin/mqtt2prometheus",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        eprintln!("[bench]   prometheus-mqtt-exporter not installed; skipped");
        return (
            json!({"skipped": "prometheus-mqtt-exporter not installed"}),
            None,
        );
    };
    let n = env.sizes.ingest_msgs;
    let port = free_port();
    let cfg = env.tmp.path().join("mqtt2prometheus.yaml");
    std::fs::write(
        &cfg,
        format!(
            "mqtt:\n  server: tcp://127.0.0.1:{}\n  topic_path: bench/+/value\n  device_id_regex: \"bench/(?P<deviceid>.*)/value\"\n  qos: 0\n\
             cache:\n  timeout: 24h\n\
             metrics:\n  - prom_name: value\n    mqtt_name: value\n    help: bench value\n    type: gauge\n",
            env.port()
        ),
    )
    .expect("write exporter config");
    // $SYS lags by up to a second: let the counts of earlier scenarios settle first.
    std::thread::sleep(Duration::from_millis(1500));
    let base_subs = probe::sys_value(env.port(), probe::SUBSCRIPTIONS).unwrap_or(0);
    let log = std::fs::File::create(env.tmp.path().join("exporter.log")).expect("log");
    let child = Command::new(exporter)
        .arg(format!("-config={}", cfg.display()))
        .arg("-listen-address=127.0.0.1")
        .arg(format!("-listen-port={port}"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("run exporter");
    probe::wait_subscriptions(env.port(), base_subs + 1, Duration::from_secs(10));
    // In-process (not `curl`): starting a process every few milliseconds would take CPU from the exporter
    // on the 2-CPU machine it measures.
    let received = || -> u64 {
        crate::web_support::get(port, "/metrics")
            .text()
            .lines()
            .filter(|l| l.starts_with("received_messages"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let before = received();
    // The counter is read over HTTP, at most every EXPORTER_POLL: the reads cost the exporter CPU too, and
    // the end time is then known to within EXPORTER_POLL (0.5 % of a 10 s run).
    let mut last_poll: Option<(Instant, u64)> = None;
    let run = measure_ingest(env, n, STALL, || {
        let got = match last_poll {
            Some((at, got)) if at.elapsed() < EXPORTER_POLL => got,
            _ => {
                let got = received().saturating_sub(before);
                last_poll = Some((Instant::now(), got));
                got
            }
        };
        (got, got >= n as u64)
    });
    stop_child(child);
    let ours = ingest_rate.unwrap_or(0.0);
    rows.push(Row {
        scenario: 8,
        metric: "ingest msg/s, prometheus-mqtt-exporter".into(),
        value: run.rate,
        unit: "msg/s",
        baseline: None,
        target: String::new(),
        met: None,
    });
    rows.push(Row {
        scenario: 8,
        metric: "ingest msg/s, bridge (scenario 1)".into(),
        value: ours,
        unit: "msg/s",
        baseline: Some(("prometheus-mqtt-exporter".into(), run.rate)),
        target: ">= 2x".into(),
        met: Some(ours >= 2.0 * run.rate),
    });
    (json!({"exporter": format!("{run:?}")}), None)
}
