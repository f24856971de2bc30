//! A private Xymon server layout for running Xymon's own programs against the repository's
//! xymonserver.d and graphs.d fragments: the CGIs (svcstatus.cgi, showgraph.cgi) run as a web server
//! would, xymond, and xymond_rrd on a channel. Used by rrd_graph, rrd_xymon and rules_explain.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::processes::{free_port, wait_until, Proc};
use super::rrd::{repo, HOST};
use super::xymond_setup::{xymond_command, xymond_env};

/// Debian's directory of the Xymon server programs and CGIs.
pub const XYMON_BIN: &str = "/usr/lib/xymon/server/bin";

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
        let port = free_port();
        let env = t.join("xymon.env");
        let p = |d: &str| t.join(d).display().to_string();
        let mut text = xymond_env(t, &t.join("home"), port);
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

    /// Starts xymond on 127.0.0.1:`port`: `--listen=127.0.0.1` plus XYMONDPORT, because
    /// `--listen=IP:PORT` binds 0.0.0.0 in 4.3.30 (docs/xymon-protocol.md, 'Running a private
    /// xymond').
    pub fn start_xymond(&self) -> Proc {
        let t = &self.root;
        let child = xymond_command(t, &self.env, &t.join("home/etc/hosts.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xymond");
        let proc = Proc { child };
        wait_until(Duration::from_secs(15), "xymond to start", || {
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
