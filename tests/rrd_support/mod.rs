//! Helpers for the rrd_* integration tests: a writer filled with synthetic snapshots, the
//! rrdtool CLI (tests only), Xymon CGIs and a private xymond on a free loopback port.
//!
//! Built on `tests/common`: a test file that uses it declares `mod common;` as well.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xymon_mqtt::rrd::{RrdDefs, RrdSample, RrdWriter};

pub const HOST: &str = "broker.example.com";
pub const XYMON_BIN: &str = "/usr/lib/xymon/server/bin";

/// Messages per second (Rcv, Xmt) and octets per second (Rcv, Xmt) in `fill`.
pub const MSG_RATE: (f64, f64) = (10.0, 20.0);
pub const OCT_RATE: (f64, f64) = (1000.0, 2500.0);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A step-aligned start one hour ago, so rates come out exact.
pub fn aligned_start() -> i64 {
    (now() - 3600) / 300 * 300
}

pub fn start_writer(dir: &Path, capacity: usize) -> (RrdWriter, std::thread::JoinHandle<()>) {
    RrdWriter::start(
        dir.to_path_buf(),
        RrdDefs::load_builtin().unwrap(),
        capacity,
    )
    .unwrap()
}

/// A writer into `dir` (queue of 64) that has finished `count` snapshots of both broker RRDs of
/// [`HOST`] from [`aligned_start`] (see [`fill`]); it takes more until dropped.
pub fn filled_writer(dir: &Path, count: i64) -> (RrdWriter, std::thread::JoinHandle<()>) {
    let (w, h) = start_writer(dir, 64);
    fill(&w, HOST, aligned_start(), count);
    wait_processed(&w, 2 * count as u64);
    (w, h)
}

/// Waits until the writer has finished `n` samples in total.
pub fn wait_processed(w: &RrdWriter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.processed() < n {
        assert!(
            Instant::now() < deadline,
            "writer processed {} of {n}",
            w.processed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Submits `count` snapshots 300 s apart from `start` for both broker RRDs of `host`.
pub fn fill(w: &RrdWriter, host: &str, start: i64, count: i64) {
    for i in 0..count {
        let t = start + i * 300;
        let secs = (i * 300) as f64;
        for (rrd, (r, x)) in [
            ("mqtt.broker.message", MSG_RATE),
            ("mqtt.broker.octet", OCT_RATE),
        ] {
            let s = RrdSample {
                host: host.into(),
                rrd: rrd.into(),
                time: t,
                values: vec![5000.0 + r * secs, 7000.0 + x * secs],
            };
            assert!(w.submit(s));
        }
    }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn rrdtool(args: &[&str]) -> String {
    run(Command::new("rrdtool").args(args))
}

/// A child process stopped by SIGTERM to its pid on drop (xymond then frees its IPC), SIGKILL if it
/// does not exit in time.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        crate::common::terminate(&mut self.child);
    }
}

/// A private Xymon layout in `t`: home/etc (graphs.cfg including the repo's graphs.d),
/// hosts.cfg, tmp, logs, rrd, and an env file including the repo's xymonserver.d fragment.
pub struct XymonEnv {
    pub root: PathBuf,
    pub env: PathBuf,
    pub rrd: PathBuf,
    pub port: u16,
}

impl XymonEnv {
    pub fn new(t: &Path) -> XymonEnv {
        for d in [
            "home/etc", "home/web", "tmp", "logs", "rrd", "hist", "histlogs",
        ] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(
            t.join("home/etc/hosts.cfg"),
            format!("127.0.0.1   {HOST}   # noconn\n"),
        )
        .unwrap();
        std::fs::write(
            t.join("home/etc/graphs.cfg"),
            format!("include {}\n", repo().join("graphs.d/mqtt.cfg").display()),
        )
        .unwrap();
        let port = crate::common::free_port();
        let env = t.join("xymon.env");
        let p = |d: &str| t.join(d).display().to_string();
        let mut text = crate::common::xymond_env(t, &t.join("home"), port);
        text.push_str(&format!(
            "XYMONHISTDIR=\"{}\"\nXYMONHISTLOGS=\"{}\"\nXYMONVAR=\"{}\"\n\
             XYMSRV=\"127.0.0.1\"\nXYMSERVERS=\"\"\nMACHINE=\"xymon-test,local\"\n\
             TEST2RRD=\"cpu=la,disk,memory\"\nGRAPHS=\"la,disk,memory\"\n\
             include {}\n",
            p("hist"),
            p("histlogs"),
            p("."),
            repo().join("xymonserver.d/mqtt.cfg").display()
        ));
        std::fs::write(&env, text).unwrap();
        XymonEnv {
            root: t.to_path_buf(),
            env,
            rrd: t.join("rrd"),
            port,
        }
    }

    /// Runs a Xymon CGI with `query`; returns (headers, body bytes).
    pub fn cgi(&self, name: &str, query: &str) -> (String, Vec<u8>) {
        let out = Command::new(format!("{XYMON_BIN}/{name}"))
            .arg(format!("--env={}", self.env.display()))
            .env("REQUEST_METHOD", "GET")
            .env("QUERY_STRING", query)
            .env("SCRIPT_NAME", format!("/xymon-cgi/{name}"))
            .current_dir(&self.root)
            .output()
            .expect("run cgi");
        let body = out.stdout;
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| i + 2)
            .unwrap_or(0);
        let headers = String::from_utf8_lossy(&body[..split]).into_owned();
        (headers, body[split..].to_vec())
    }

    /// Starts xymond on 127.0.0.1:`port` (`--listen=127.0.0.1` + XYMONDPORT, see §6).
    pub fn start_xymond(&self) -> Proc {
        let t = &self.root;
        let child = crate::common::xymond_command(t, &self.env, &t.join("home/etc/hosts.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xymond");
        let proc = Proc { child };
        crate::common::wait_until(Duration::from_secs(15), "xymond to start", || {
            self.xymon(&["ping"])
                .map(|o| o.contains("xymond"))
                .unwrap_or(false)
        });
        proc
    }

    /// Starts `xymond_channel --channel=<ch> ... xymond_rrd --rrddir=<rrd> --no-cache`.
    pub fn start_xymond_rrd(&self, channel: &str) -> Proc {
        let child = Command::new(format!("{XYMON_BIN}/xymond_channel"))
            .arg(format!("--channel={channel}"))
            .arg(format!("--env={}", self.env.display()))
            .arg(format!(
                "--log={}",
                self.root.join(format!("logs/rrd-{channel}.log")).display()
            ))
            .arg(format!("{XYMON_BIN}/xymond_rrd"))
            .arg(format!("--rrddir={}", self.rrd.display()))
            .arg("--no-cache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xymond_channel");
        Proc { child }
    }

    /// All log files, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.root.join("logs")).unwrap() {
            let p = e.unwrap().path();
            out += &format!(
                "== {}\n{}\n",
                p.display(),
                std::fs::read_to_string(&p).unwrap_or_default()
            );
        }
        out
    }

    /// `xymon 127.0.0.1:<port> <msg>`; None if it failed.
    pub fn xymon(&self, msg: &[&str]) -> Option<String> {
        let out = Command::new(format!("{XYMON_BIN}/xymon"))
            .arg(format!("127.0.0.1:{}", self.port))
            .args(msg)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
