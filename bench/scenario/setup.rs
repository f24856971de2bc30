//! What the scenarios share: the broker and xymond of the run ([`Env`]), the hosts each scenario reports
//! on (all in xymond's private hosts.cfg), the pieces of a bridge config, and a few small helpers.

use crate::api_setup::FLOOD_TOPICS;
use crate::common::{free_port, Mosquitto, Xymond};
use crate::probe;
use crate::Sizes;
use std::fmt::Write as _;
use std::path::PathBuf;

/// How the ingest config groups the flood's topics into tests (scenarios 1, 6).
pub const FLOOD_TOPICS_PER_TEST: usize = 10;
/// Hosts of the delivery scenario (2).
pub const DELIVERY_HOSTS: usize = 1_000;
/// Hosts (one continuous test each, 3 topics) of the latency scenario (3).
pub const LATENCY_HOSTS: usize = 20;
/// Topics per test of the bridge run as its own process (scenarios 4, 7).
pub const MEMORY_TOPICS_PER_TEST: usize = 100;

pub fn flood_host(t: usize) -> String {
    format!("b{t:03}")
}
pub fn delivery_host(i: usize) -> String {
    format!("d{i:04}")
}
pub fn latency_host(i: usize) -> String {
    format!("l{i:02}")
}
pub fn memory_host(t: usize) -> String {
    format!("m{t:04}")
}
/// The host of the one-topic bridge process (scenarios 4 and 7).
pub const IDLE_HOST: &str = "idle";

pub struct Env {
    pub sizes: Sizes,
    pub mosq: Mosquitto,
    pub xymond: Xymond,
    pub tmp: tempfile::TempDir,
    /// The release `xymon-mqtt` binary (scenarios 4 and 7 measure it as its own process).
    pub bin: PathBuf,
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
        hosts.push(IDLE_HOST.into());
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

    pub fn port(&self) -> u16 {
        self.mosq.port()
    }

    /// The start of a bridge config: statuses to `xymon`, RRD files in the run's directory, the web
    /// server on a free port, and the run's broker as broker "b". Tests follow ([`push_test`]).
    pub fn bridge_config(&self, xymon: &str) -> String {
        format!(
            "[xymon]\nserver = \"{xymon}\"\nrrd_dir = \"{}\"\n[web]\nlisten = \"127.0.0.1:{}\"\n\
             [[broker]]\nname = \"b\"\nurl = \"{}\"\n",
            self.tmp.path().display(),
            free_port(),
            self.mosq.url()
        )
    }
}

/// Appends a continuous test of broker "b" over `topics` to a bridge config.
pub fn push_test(config: &mut String, host: &str, test: &str, window: &str, topics: &[String]) {
    let list: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    let _ = write!(
        config,
        "[[test]]\nhost = \"{host}\"\ntest = \"{test}\"\nbroker = \"b\"\nmode = \"continuous\"\n\
         window = \"{window}\"\ntopics = [{}]\n",
        list.join(", ")
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

/// The multi-thread tokio runtime (2 workers) the harness runs its in-process servers and clients on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn median(mut v: Vec<f64>) -> f64 {
    probe::quantile(&mut v, 0.5)
}

/// The median of one figure over several runs.
pub fn median_by<T>(runs: &[T], figure: impl Fn(&T) -> f64) -> f64 {
    median(runs.iter().map(figure).collect())
}

/// The first of `paths` that exists.
pub fn first_existing<'a>(paths: &[&'a str]) -> Option<&'a str> {
    paths
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
}
