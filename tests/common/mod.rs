//! The shared integration-test harness, one file per component. A test file uses it with `mod common;`.
//!
//! * `processes.rs`: free loopback ports, bounded waiting, running client tools, stopping by PID.
//! * `mosquitto.rs`: a private mosquitto broker ([`Mosquitto`]), with TLS, password or
//!   dynamic-security listeners when asked; `certs.rs`: certificates for its TLS listeners, made with
//!   `openssl` at test time.
//! * `xymond.rs`: a private xymond ([`Xymond`]); `xymond_setup.rs`: its env file, command line and
//!   private SysV IPC keys; `xymond_status.rs`: parsing its replies ([`StatusLog`], ghost list).
//! * `bridge.rs`: the bridge in-process on its own tokio runtime; `binary.rs`: the real binary as a
//!   child process with its HTTP endpoints, and a QoS 1 publisher for floods of topics.
//! * `daemon.rs`: the real binary as a child process for signal and pipe tests ([`daemon::Daemon`]):
//!   signals, its stderr as a pipe the test reads or breaks, closed standard descriptors.
//! * `rrd.rs`: an RRD writer filled with synthetic snapshots, and the rrdtool CLI.
//! * `xymon_cgi.rs`: a private Xymon layout for its CGIs, xymond and xymond_rrd.
//! * `web.rs`: HTTP to the web server and WebDriver to chromedriver.
//!
//! Every server runs on a free loopback port with its own private temporary state
//! directory, is started in the foreground as a child of the test process, and is
//! stopped by PID (SIGTERM, then SIGKILL after [`processes::STOP_TIMEOUT`]) by `stop()` or, at
//! the latest, by `Drop`, so a failing test leaves no process behind. The harness's
//! calls block (the bridge's tokio runtime lives in a thread of its own), so they work
//! from plain `#[test]`s and from `#[tokio::test]`s alike; call them outside hot async
//! paths (or via `spawn_blocking`).
//!
//! Clients are the real command-line tools: `mosquitto_pub`/`mosquitto_sub` for
//! MQTT and the Xymon `xymon` CLI for everything sent to or read from xymond.
//! The Debian packages `mosquitto`, `mosquitto-clients`, `xymon`, `rrdtool`,
//! `chromium` and `chromium-driver` must be installed (`packaging/install-deps.sh`).

// Compiled into every test binary (and the benchmark harness); not each one uses every helper.
#![allow(dead_code)]

pub mod binary;
pub mod bridge;
pub mod certs;
pub mod daemon;
pub mod mosquitto;
pub mod processes;
pub mod rrd;
pub mod web;
pub mod xymon_cgi;
pub mod xymond;
pub mod xymond_setup;
pub mod xymond_status;

// The names the test files (and bench/main.rs) use most, at `common::NAME`; no binary uses them all.
#[allow(unused_imports)]
pub use mosquitto::Mosquitto;
#[allow(unused_imports)]
pub use processes::{free_port, port_is_open, signal, wait_until};
#[allow(unused_imports)]
pub use xymond::Xymond;
#[allow(unused_imports)]
pub use xymond_setup::ipc_keys_in_use;
#[allow(unused_imports)]
pub use xymond_status::{commafy_host_test, nldecode, StatusLog};
