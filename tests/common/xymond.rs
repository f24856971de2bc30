//! A private xymond for the end-to-end tests ([`Xymond`]): started in the foreground on a free loopback
//! port with its own XYMONHOME, hosts.cfg, logs and checkpoint (see `xymond_setup.rs`), stopped by PID,
//! and queried with the real `xymon` CLI. Used by the bridge, rule, RRD, web and CLI tests and by
//! tests/harness.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::processes::{
    check_output, count_lines_with, free_port, lock, read_lossy, run_cmd, tail, terminate,
    wait_ready, CLIENT_TIMEOUT, POLL_INTERVAL, START_ATTEMPTS,
};
use super::xymond_setup::{
    ipc_keys_in_use, private_xymon_home, xymond_command, xymond_env, USED_IPC_KEYS, XYMOND_BIN,
};
use super::xymond_status::{commafy_host_test, Ghost, StatusLog};

/// xymond's log line once its listener and channels are set up.
const XYMOND_READY: &str = "Setup complete";

/// Candidate paths of the `xymon` CLI (the server one is a symlink to the client one).
const XYMON_CLI_CANDIDATES: &[&str] = &[
    "/usr/lib/xymon/client/bin/xymon",
    "/usr/lib/xymon/server/bin/xymon",
];

/// The `xymon` CLI to use.
fn xymon_cli() -> &'static str {
    XYMON_CLI_CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or("xymon")
}

/// A private xymond on `127.0.0.1:port()`, with its own XYMONHOME, hosts.cfg,
/// logs and checkpoint in a temporary directory. Ghost handling is the Debian
/// default (`log`): statuses for hosts missing from hosts.cfg are dropped and
/// listed by [`Xymond::ghostlist`]. `127.0.0.1` may send `drop`/`rename`, as on
/// Debian.
pub struct Xymond {
    /// The running xymond, `None` after `stop()`.
    child: Option<Child>,
    port: u16,
    /// The XYMONHOME in use (its inode determines the IPC keys).
    home: PathBuf,
    /// The SysV IPC keys this instance's XYMONHOME maps to.
    ipc_keys: Vec<i32>,
    /// Holds home/, logs/, tmp/, rrd/, xymond.env and the console output.
    dir: TempDir,
}

impl Xymond {
    /// Starts xymond with a hosts.cfg that lists each of `hosts` (as
    /// `127.0.0.N NAME # noconn`) and returns once it logged `Setup complete` and
    /// `xymon 127.0.0.1:PORT ping` answers `xymond <version>`. Panics (with the log) if it does not start.
    pub fn start(hosts: &[&str]) -> Xymond {
        let dir = tempfile::Builder::new()
            .prefix("xymon-mqtt-xymond-")
            .tempdir()
            .expect("create xymond temp dir");
        let d = dir.path();
        for sub in ["logs", "tmp", "rrd"] {
            fs::create_dir_all(d.join(sub)).expect("create xymond dir");
        }
        let (home, ipc_keys) = private_xymon_home(d);
        fs::create_dir_all(home.join("etc")).expect("create XYMONHOME/etc");
        let mut hosts_cfg = String::new();
        for (i, host) in hosts.iter().enumerate() {
            // 127.0.0.1 .. 127.0.0.254, then wrap: the IP does not matter for noconn.
            hosts_cfg.push_str(&format!("127.0.0.{}\t{host}\t# noconn\n", i % 254 + 1));
        }
        fs::write(home.join("etc/hosts.cfg"), hosts_cfg).expect("write hosts.cfg");

        let mut xymond = Xymond {
            child: None,
            port: 0,
            home,
            ipc_keys,
            dir,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            xymond.port = free_port();
            xymond.write_env();
            match xymond.spawn(false) {
                Ok(()) => return xymond,
                Err(e) => last_error = e,
            }
        }
        panic!("xymond did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as the bridge's xymond address and the `xymon` CLI's recipient.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// xymond's PID, `None` when it is not running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The private directory (home/etc/hosts.cfg, logs/, tmp/, rrd/, xymond.env).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SysV IPC keys of this instance (`ftok(XYMONHOME, channel)`).
    pub fn ipc_keys(&self) -> &[i32] {
        &self.ipc_keys
    }

    /// Returns true if the xymond process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Stops xymond gracefully (SIGTERM by PID) and waits for it to exit; it
    /// writes its checkpoint on the way out. Removes its IPC objects if it could
    /// not (crash or SIGKILL). Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
            self.remove_leftover_ipc();
        }
    }

    /// Starts xymond again on the same port, restoring its state from the
    /// checkpoint written at `stop()` (stops it first if it is still running).
    /// Panics if it does not come up.
    pub fn start_again(&mut self) {
        self.stop();
        if let Err(e) = self.spawn(true) {
            panic!("xymond did not start again on port {}: {e}", self.port);
        }
    }

    /// The contents of xymond.log (plus its console output).
    pub fn log_text(&self) -> String {
        let mut text = read_lossy(&self.dir.path().join("console.log"));
        text.push_str(&read_lossy(&self.dir.path().join("logs/xymond.log")));
        text
    }

    /// Sends one message to xymond with `xymon ADDR @` (the whole of stdin is one
    /// message). Returns what xymond replied, empty for messages without a reply.
    /// Panics if the CLI fails (e.g. connection refused).
    pub fn send_raw(&self, msg: &str) -> String {
        let mut cmd = Command::new(xymon_cli());
        cmd.env_clear().args([&self.addr(), "@"]);
        let out = run_cmd(&mut cmd, Some(msg.as_bytes()), CLIENT_TIMEOUT);
        check_output(&cmd, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends a one-line request (`ping`, `query h,t.x`, ...) and returns the reply.
    /// Panics if the CLI fails.
    pub fn request(&self, msg: &str) -> String {
        let mut cmd = Command::new(xymon_cli());
        cmd.env_clear().args([&self.addr(), msg]);
        let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
        check_output(&cmd, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Reads one status with `xymondlog`. `host_test` is `HOST.TEST`; dots in the
    /// host are fine (`broker.example.com.mqtt`) and are sent as commas. `None`
    /// when xymond has no such status.
    pub fn xymondlog(&self, host_test: &str) -> Option<StatusLog> {
        let reply = self.request(&format!("xymondlog {}", commafy_host_test(host_test)));
        StatusLog::parse(&reply)
    }

    /// Runs `xymondboard FILTER` (filters and `fields=` as in man xymon) and returns
    /// the raw reply. Note the pseudo-columns `info` and `trends`: filter by `test=`.
    pub fn board(&self, filter: &str) -> String {
        self.request(format!("xymondboard {filter}").trim_end())
    }

    /// The current ghost list (hosts that reported but are not in hosts.cfg).
    pub fn ghostlist(&self) -> Vec<Ghost> {
        self.request("ghostlist")
            .lines()
            .filter_map(|line| {
                let mut f = line.split('|');
                Some(Ghost {
                    hostname: f.next()?.to_string(),
                    sender: f.next()?.to_string(),
                    last_seen: f.next()?.trim().parse().ok()?,
                })
            })
            .collect()
    }

    /// Polls `xymondlog host_test` until a status exists and `pred` accepts it,
    /// and returns it. Panics after `timeout` with the last status seen and the
    /// tail of xymond.log.
    pub fn wait_for_status(
        &self,
        host_test: &str,
        timeout: Duration,
        pred: impl Fn(&StatusLog) -> bool,
    ) -> StatusLog {
        let start = Instant::now();
        loop {
            let last = self.xymondlog(host_test);
            match last {
                Some(status) if pred(&status) => return status,
                _ if start.elapsed() >= timeout => panic!(
                    "timed out after {timeout:?} waiting for status {host_test}; last seen: {last:#?}\n\
                     --- xymond.log ---\n{}",
                    tail(&self.log_text(), 30)
                ),
                _ => thread::sleep(POLL_INTERVAL),
            }
        }
    }

    fn write_env(&self) {
        let d = self.dir.path();
        let env = xymond_env(d, &self.home, self.port);
        fs::write(d.join("xymond.env"), env).expect("write xymond.env");
    }

    /// Spawns xymond (restoring the checkpoint if `restore`) and waits for `ping`.
    fn spawn(&mut self, restore: bool) -> Result<(), String> {
        let d = self.dir.path().to_path_buf();
        let checkpoint = d.join("tmp/xymond.chk");
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("console.log"))
            .expect("open console.log");
        let log = d.join("logs/xymond.log");
        let setups_before = count_lines_with(&log, XYMOND_READY);
        let mut cmd = xymond_command(&d, &d.join("xymond.env"), &self.home.join("etc/hosts.cfg"));
        // A clean environment: everything xymond needs is in the env file, and an
        // inherited XYMONHOME or XYMONDPORT must not leak in.
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("--ghosts=log")
            .arg("--admin-senders=127.0.0.1");
        if restore && checkpoint.exists() {
            cmd.arg(format!("--restart={}", checkpoint.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log"))
            .stderr(console)
            .spawn()
            .map_err(|e| format!("cannot run {XYMOND_BIN} (is xymon installed?): {e}"))?;
        self.child = Some(child);
        let addr = self.addr();
        // "Setup complete" in our own log proves that *this* xymond listens (a
        // xymond of another test process could answer ping on a recycled port).
        let ping = || {
            if count_lines_with(&log, XYMOND_READY) <= setups_before {
                return false;
            }
            let mut cmd = Command::new(xymon_cli());
            cmd.env_clear().args([addr.as_str(), "ping"]);
            let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
            out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("xymond ")
        };
        let result = wait_ready(
            self.child.as_mut().expect("child"),
            ping,
            &format!("xymond on {addr}"),
        );
        result
            .map_err(|e| format!("{e}\n--- xymond.log ---\n{}", tail(&self.log_text(), 30)))
            .inspect_err(|_| self.stop())
    }

    /// Removes shared memory segments and semaphore sets that still carry this
    /// instance's keys after xymond exited (it removes them itself on SIGTERM).
    fn remove_leftover_ipc(&self) {
        let in_use = ipc_keys_in_use();
        for key in self.ipc_keys.iter().filter(|k| in_use.contains(k)) {
            let _ = Command::new("ipcrm")
                .args(["-M", &key.to_string(), "-S", &key.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Xymond {
    fn drop(&mut self) {
        self.stop();
        lock(&USED_IPC_KEYS).retain(|k| !self.ipc_keys.contains(k));
    }
}
