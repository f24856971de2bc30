//! Runs the bridge in-process for end-to-end tests: a background thread with its own tokio runtime, so
//! tests stay plain `#[test]`s next to the blocking harness calls. Used by bridge_e2e, rules_e2e,
//! rules_explain, rrd_bridge and web_e2e (and the benchmark harness).

use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use xymon_mqtt::bridge::{Bridge, Shared};
use xymon_mqtt::config::Config;
use xymon_mqtt::plan::Plan;

use super::{Mosquitto, Xymond};

/// How long a stopped bridge may take to return from `run` (its drain deadline is 5 s).
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A bridge config: `[xymon]` sending to `xymond` (rrd_dir its rrd/), one `[[broker]]` per
/// `(name, broker)`, then `tests`.
pub fn config(xymond: &Xymond, brokers: &[(&str, &Mosquitto)], tests: &str) -> String {
    let mut c = xymon_section(xymond);
    for (name, m) in brokers {
        c.push_str(&format!(
            "[[broker]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            m.url()
        ));
    }
    c.push_str(tests);
    c
}

/// The `[xymon]` table sending to `xymond` (rrd_dir its rrd/), and `[self_status]` off: the bridge's own
/// column (its host is this machine, a ghost in the test's xymond) is tested on its own, in tests/own_status.rs.
pub fn xymon_section(xymond: &Xymond) -> String {
    format!(
        "[self_status]\nenabled = false\n\n[xymon]\nserver = \"{}\"\nrrd_dir = \"{}/rrd\"\n\n",
        xymond.addr(),
        xymond.dir().display()
    )
}

/// The log lines of every bridge this test process ran since the first call (the tests of one binary
/// share it: look for a broker name of your own). Installs the capturing subscriber on the first call.
pub fn logs() -> String {
    static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();
    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LINES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,xymon_mqtt=info"))
            .with_writer(|| Sink)
            .with_ansi(false)
            .try_init();
    });
    String::from_utf8_lossy(&LINES.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

pub struct RunningBridge {
    pub shared: Shared,
    cancel: CancellationToken,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningBridge {
    /// Parses `toml` (panicking with the config error) and starts the bridge.
    pub fn start(toml: &str) -> RunningBridge {
        let plan = Config::from_str_named(toml, Path::new("test.toml"))
            .and_then(|c| Plan::compile(&c))
            .unwrap_or_else(|e| panic!("{e}"));
        let bridge = Bridge::new(plan);
        let shared = bridge.shared.clone();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(bridge.run(stop))
        });
        RunningBridge {
            shared,
            cancel,
            thread: Some(thread),
        }
    }

    /// Starts the bridge on `tests` with `xymond` and the one broker `local` (see [`config`]), and
    /// waits until it has subscribed there.
    pub fn start_subscribed(xymond: &Xymond, local: &Mosquitto, tests: &str) -> RunningBridge {
        let bridge = RunningBridge::start(&config(xymond, &[("local", local)], tests));
        bridge.wait_subscribed(0);
        bridge
    }

    /// Waits until broker `id` has acknowledged the permanent subscriptions (so a publish cannot be missed).
    pub fn wait_subscribed(&self, id: usize) {
        super::wait_until(Duration::from_secs(30), "bridge subscribed", || {
            self.shared.store.brokers()[id].subscribed
        });
    }

    /// Waits until broker `id` is connected.
    pub fn wait_connected(&self, id: usize) {
        super::wait_until(Duration::from_secs(30), "bridge connected", || {
            self.shared.store.brokers()[id].connected
        });
    }

    /// Cancels the bridge and waits for `run` to return; panics if it does not within `STOP_DEADLINE`.
    pub fn stop(mut self) -> Duration {
        let started = Instant::now();
        self.cancel.cancel();
        let thread = self.thread.take().expect("running");
        super::wait_until(STOP_DEADLINE, "bridge run() to return", || {
            thread.is_finished()
        });
        thread
            .join()
            .expect("bridge thread panicked")
            .expect("bridge run() failed");
        started.elapsed()
    }
}

impl Drop for RunningBridge {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
