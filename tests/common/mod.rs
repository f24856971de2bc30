//! Integration-test harness: real `mosquitto` and real `xymond` processes for the
//! end-to-end tests in `tests/`.
//!
//! Every server runs on a free loopback port with its own private temporary state
//! directory, is started in the foreground as a child of the test process, and is
//! stopped by PID (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) by `stop()` or, at
//! the latest, by `Drop`, so a failing test leaves no process behind. Only `std` is
//! used (no tokio), so the harness works from plain `#[test]`s and from
//! `#[tokio::test]`s alike; its calls block, so call them outside hot async paths
//! (or via `spawn_blocking`).
//!
//! Clients are the real command-line tools: `mosquitto_pub`/`mosquitto_sub` for
//! MQTT and the Xymon `xymon` CLI for everything sent to or read from xymond.
//!
//! Use it from a test file as `mod common;`. The Debian packages `mosquitto`,
//! `mosquitto-clients` and `xymon` must be installed (`packaging/install-deps.sh`).
//!
//! xymond traps handled here (see `xymon-server.md` §6):
//! * `--listen=IP:PORT` binds 0.0.0.0 in 4.3.30, so we pass `--listen=127.0.0.1`
//!   and set the port with `XYMONDPORT` in the env file.
//! * SysV IPC keys come from `ftok(XYMONHOME, channel)`, so every instance gets
//!   its own XYMONHOME, and we check that its keys are not in use by any other
//!   xymond (for example a production one) before starting.
//! * `--restart=` segfaults unless `MACHINEDOTS` is set, so it always is.

// A shared test module is compiled into every test binary; not each one uses every helper.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to become ready after it is spawned.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Upper bound for one run of a client tool (`mosquitto_pub`, `xymon`, ...).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many fresh ports `start()` tries when a server dies during start-up
/// (another process may grab a port between [`free_port`] and the server's bind).
const START_ATTEMPTS: usize = 3;

/// Interval between two polls in [`wait_until`] and the readiness loops.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Ports handed out by [`free_port`] in this test process, never handed out twice.
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// SysV IPC keys of the xymond instances started by this test process.
static USED_IPC_KEYS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Locks a mutex even if a panicking test poisoned it (the sets stay consistent).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and
/// release it). A port is never returned twice in one test process, so parallel
/// tests do not race each other for it.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if lock(&USED_PORTS).insert(port) {
            return port;
        }
    }
}

/// Polls `f` until it returns `true`, and panics naming `what` if that does not
/// happen within `timeout`. This is bounded waiting, not a timing assertion: keep
/// timeouts generous (20-30 s) so a slow CI machine does not fail the test.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Returns true if something accepts TCP connections on `127.0.0.1:port`.
pub fn port_is_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Runs `cmd` to completion with optional stdin, capturing stdout and stderr.
/// Panics if it cannot be spawned or does not finish within `timeout`.
fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    // Feed stdin and drain stdout/stderr in threads so no pipe can fill up and block.
    let writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take().expect("piped stdin");
        thread::spawn(move || {
            // A tool that exits early closes its stdin; its exit code tells the story.
            let _ = pipe.write_all(&data);
        })
    });
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Sends signal `sig` (a name such as `TERM`) to `pid` with the shell's `kill`
/// builtin (std has no kill(2) for other signals than SIGKILL).
fn send_signal(pid: u32, sig: &str) {
    // Ignore failures: the process may have exited in the meantime. Because the
    // caller still owns the unreaped `Child`, the PID cannot have been reused.
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -s {sig} {pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops `child`: SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL and wait.
/// Returns the exit status and whether SIGKILL was needed.
pub fn terminate(child: &mut Child) -> (ExitStatus, bool) {
    if let Ok(Some(status)) = child.try_wait() {
        return (status, false);
    }
    send_signal(child.id(), "TERM");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return (status, false);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    // Called from `Drop` too, where a panic during unwinding would abort the whole test binary.
    match child.wait() {
        Ok(status) => (status, true),
        Err(e) => {
            eprintln!("cannot wait for pid {} after SIGKILL: {e}", child.id());
            (ExitStatus::default(), true)
        }
    }
}

/// Reads a file that may not exist (yet) as lossy UTF-8.
fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`, for panic messages.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Returns true when the effective UID of this process is 0.
fn running_as_root() -> bool {
    // std has no geteuid(); /proc/self/status has "Uid: real effective saved fs".
    read_lossy(Path::new("/proc/self/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------

/// A private mosquitto 2.0 broker on `127.0.0.1:port()`, anonymous access, no
/// persistence, `$SYS` every second, logging everything to `mosquitto.log` in its
/// temporary directory.
pub struct Mosquitto {
    /// The running broker, `None` after `stop()`/`kill()`.
    child: Option<Child>,
    port: u16,
    /// Holds `mosquitto.conf`, `mosquitto.log` and the console output.
    dir: TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port and returns once it accepts TCP connections.
    /// Panics (with the broker's log) if it does not start.
    pub fn start() -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("xymon-mqtt-mosquitto-")
            .tempdir()
            .expect("create mosquitto temp dir");
        let mut broker = Mosquitto {
            child: None,
            port: 0,
            dir,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            broker.port = free_port();
            broker.write_config();
            match broker.spawn() {
                Ok(()) => return broker,
                Err(e) => last_error = e,
            }
        }
        panic!("mosquitto did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The broker's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker URL, `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's PID, `None` when it is not running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's private directory (config and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns true if the broker process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Stops the broker gracefully (SIGTERM by PID, then waits for it to exit).
    /// Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// Kills the broker with SIGKILL (a crash, no clean disconnects) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port (after `stop()` or `kill()`;
    /// stops it first if it is still running). Retained messages are gone because
    /// persistence is off. Panics if it does not come up.
    pub fn start_again(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("mosquitto did not start again on port {}: {e}", self.port);
        }
    }

    /// The contents of `mosquitto.log` (plus anything it printed to the console).
    pub fn log_text(&self) -> String {
        let mut text = read_lossy(&self.dir.path().join("console.log"));
        text.push_str(&read_lossy(&self.dir.path().join("mosquitto.log")));
        text
    }

    /// Publishes a UTF-8 payload with `mosquitto_pub -q 1`. Panics if the tool fails.
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = self.pub_cmd(topic, retain);
        if payload.is_empty() {
            cmd.arg("-n");
        } else {
            cmd.args(["-m", payload]);
        }
        let out = run_cmd(&mut cmd, None, CLIENT_TIMEOUT);
        check_output(&cmd, &out);
    }

    /// Publishes arbitrary bytes (read from stdin with `mosquitto_pub -s`).
    /// Panics if the tool fails.
    pub fn publish_bytes(&self, topic: &str, payload: &[u8], retain: bool) {
        let mut cmd = self.pub_cmd(topic, retain);
        let out = if payload.is_empty() {
            cmd.arg("-n");
            run_cmd(&mut cmd, None, CLIENT_TIMEOUT)
        } else {
            cmd.arg("-s");
            run_cmd(&mut cmd, Some(payload), CLIENT_TIMEOUT)
        };
        check_output(&cmd, &out);
    }

    /// Subscribes to `filter` with `mosquitto_sub` and returns up to `count`
    /// `(topic, payload)` pairs received within `timeout` (whole seconds, at
    /// least 1). Returns fewer when the timeout hits first; the caller asserts.
    /// Payloads are decoded as lossy UTF-8 and may span several lines.
    ///
    /// This blocks, so it is meant for retained messages and sanity checks; to
    /// catch live traffic, call it from a thread started before the publisher.
    pub fn subscribe_collect(
        &self,
        filter: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(String, String)> {
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", filter])
            .args(["-C", &count.to_string(), "-W", &secs.to_string()])
            // Hex payload, a tab, then the topic: one line per message whatever the
            // payload holds (newlines) or the topic holds (spaces).
            .args(["-F", "%x\t%t"]);
        let out = run_cmd(&mut cmd, None, timeout + CLIENT_TIMEOUT);
        // 27 is mosquitto_sub's exit code for "-W timeout reached".
        if !out.status.success() && out.status.code() != Some(27) {
            check_output(&cmd, &out);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let (hex, topic) = line.split_once('\t')?;
                Some((topic.to_string(), decode_hex(hex)))
            })
            .collect()
    }

    /// A `mosquitto_pub` command for this broker, without the payload options.
    fn pub_cmd(&self, topic: &str, retain: bool) -> Command {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", topic]);
        if retain {
            cmd.arg("-r");
        }
        cmd
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             sys_interval 1\n\
             persistence false\n\
             log_dest file {log}\n\
             log_type all\n\
             log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
            port = self.port,
            log = d.join("mosquitto.log").display(),
        );
        // Started as root, mosquitto 2.0 drops to the `mosquitto` user, which then
        // cannot write its log file into our 0700 temp dir. Keep the current user.
        if running_as_root() {
            conf.push_str("user root\n");
        }
        fs::write(d.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    /// Spawns the broker and waits until it logged that it runs and its port
    /// accepts connections.
    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        // The log line, not only the open port, proves that it is *our* broker
        // that listens (another test process may have taken the port meanwhile).
        let log = d.join("mosquitto.log");
        let runs_before = count_lines_with(&log, MOSQUITTO_READY);
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("console.log"))
            .expect("open console.log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone console.log"))
            .stderr(console)
            .spawn()
            .map_err(|e| format!("cannot run mosquitto (is it installed?): {e}"))?;
        self.child = Some(child);
        wait_ready(
            self.child.as_mut().expect("child"),
            || count_lines_with(&log, MOSQUITTO_READY) > runs_before && port_is_open(self.port),
            &format!("mosquitto on 127.0.0.1:{}", self.port),
        )
        .map_err(|e| format!("{e}\n--- log ---\n{}", tail(&self.log_text(), 30)))
        .inspect_err(|_| self.stop())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// mosquitto's log line once its listeners are open: `mosquitto version X running`.
const MOSQUITTO_READY: &str = " running";

/// xymond's log line once its listener and channels are set up.
const XYMOND_READY: &str = "Setup complete";

/// How many lines of the file at `path` contain `needle` (0 if it does not exist).
fn count_lines_with(path: &Path, needle: &str) -> usize {
    read_lossy(path)
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Polls `ready` until it is true, failing early if `child` exits.
fn wait_ready(
    child: &mut Child,
    mut ready: impl FnMut() -> bool,
    what: &str,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited during start-up ({status})"));
        }
        if ready() {
            return Ok(());
        }
        if start.elapsed() >= START_TIMEOUT {
            return Err(format!("{what} not ready after {START_TIMEOUT:?}"));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Panics with the tool's output unless it exited successfully.
fn check_output(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): stdout={:?} stderr={:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// Decodes lowercase/uppercase hex to lossy UTF-8 (mosquitto_sub's `%x`).
fn decode_hex(hex: &str) -> String {
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------
// Xymond
// ---------------------------------------------------------------------------

/// Debian path of the xymond binary.
const XYMOND_BIN: &str = "/usr/lib/xymon/server/bin/xymond";

/// Candidate paths of the `xymon` CLI (the server one is a symlink to the client one).
const XYMON_CLI_CANDIDATES: &[&str] = &[
    "/usr/lib/xymon/client/bin/xymon",
    "/usr/lib/xymon/server/bin/xymon",
];

/// xymond's channel numbers (`C_STATUS`=1 .. `C_USER`=9, plus the feedback queue
/// 10), the `proj_id`s it passes to ftok(3) for its SysV IPC objects.
const XYMOND_CHANNEL_IDS: std::ops::RangeInclusive<u32> = 1..=10;

/// The `xymon` CLI to use.
fn xymon_cli() -> &'static str {
    XYMON_CLI_CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .unwrap_or("xymon")
}

/// One parsed `xymondlog HOST.TEST` reply: the 15 default header fields of
/// xymond 4.3.30 and the raw status text (see `xymon-server.md` §1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLog {
    /// Host name as spelled in hosts.cfg (with dots).
    pub hostname: String,
    /// Test (column) name.
    pub testname: String,
    /// Current colour word, e.g. `green`.
    pub color: String,
    /// Test flags (from `<!-- [flags:...] -->`), usually empty.
    pub flags: String,
    /// Unix time of the last colour change.
    pub lastchange: i64,
    /// Unix time the status was last received.
    pub logtime: i64,
    /// Unix time after which the status turns purple.
    pub validtime: i64,
    /// Unix time the acknowledgement ends, 0 when none.
    pub acktime: i64,
    /// Unix time the disable ends, 0 when none.
    pub disabletime: i64,
    /// Sender IP address.
    pub sender: String,
    /// Alert cookie, usually empty.
    pub cookie: String,
    /// Acknowledgement text (decoded from xymond's `nlencode`).
    pub ackmsg: String,
    /// Disable text (decoded).
    pub dismsg: String,
    /// `Y`/`N`: whether client data exists for the host.
    pub client: String,
    /// Active modifiers (decoded), e.g. `&red cause\n`.
    pub modifiers: String,
    /// The status text as xymond returns it: starts at the colour word, no
    /// trailing newline added.
    pub body: String,
}

impl StatusLog {
    /// Parses a raw `xymondlog` reply; `None` for the empty reply of an unknown
    /// host or test (or a header that does not have 15 fields).
    pub fn parse(reply: &str) -> Option<StatusLog> {
        let (header, body) = reply.split_once('\n').unwrap_or((reply, ""));
        let f: Vec<&str> = header.split('|').collect();
        if f.len() < 15 {
            return None;
        }
        let num = |s: &str| s.trim().parse::<i64>().unwrap_or(-1);
        Some(StatusLog {
            hostname: f[0].to_string(),
            testname: f[1].to_string(),
            color: f[2].to_string(),
            flags: f[3].to_string(),
            lastchange: num(f[4]),
            logtime: num(f[5]),
            validtime: num(f[6]),
            acktime: num(f[7]),
            disabletime: num(f[8]),
            sender: f[9].to_string(),
            cookie: f[10].to_string(),
            ackmsg: nldecode(f[11]),
            dismsg: nldecode(f[12]),
            client: f[13].to_string(),
            modifiers: nldecode(&f[14..].join("|")),
            body: body.to_string(),
        })
    }

    /// The first line of the body: colour word and summary.
    pub fn line1(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }
}

/// Reverses xymond's `nlencode`: `\n` `\r` `\t` `\p` (pipe) and `\\`.
pub fn nldecode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('p') => out.push('|'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Converts `host.name.test` to xymond's `host,name.test` form (commas in the host,
/// the test after the last dot).
pub fn commafy_host_test(host_test: &str) -> String {
    match host_test.rsplit_once('.') {
        Some((host, test)) => format!("{}.{test}", host.replace('.', ",")),
        None => host_test.to_string(),
    }
}

/// One `ghostlist` entry: a host that sent a status but is not in hosts.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ghost {
    /// Host name as sent.
    pub hostname: String,
    /// Sender IP address.
    pub sender: String,
    /// Unix time of the last report.
    pub last_seen: i64,
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

/// The xymond env file's variables for a private instance: XYMONHOME `home`,
/// hosts.cfg in `home/etc`, logs/, tmp/ and rrd/ under `dir`, listening on `port`
/// (with `--listen=127.0.0.1`, see [`xymond_command`]).
pub fn xymond_env(dir: &Path, home: &Path, port: u16) -> String {
    format!(
        "XYMONHOME=\"{home}\"\n\
         XYMONSERVERLOGS=\"{d}/logs\"\n\
         XYMONTMP=\"{d}/tmp\"\n\
         HOSTSCFG=\"{home}/etc/hosts.cfg\"\n\
         XYMONRRDS=\"{d}/rrd\"\n\
         STATUSLIFETIME=\"30\"\n\
         XYMONDPORT=\"{port}\"\n\
         MACHINEDOTS=\"xymon-test.local\"\n",
        home = home.display(),
        d = dir.display(),
    )
}

/// A foreground xymond command for a private instance in `dir` (pidfile there,
/// log in logs/, checkpoint in tmp/), reading the env file `env` and `hosts_cfg`,
/// listening on 127.0.0.1 only, without the backfeed queue. The caller adds
/// anything else (environment, `--restart`, stdio) and spawns it.
pub fn xymond_command(dir: &Path, env: &Path, hosts_cfg: &Path) -> Command {
    let mut cmd = Command::new(XYMOND_BIN);
    cmd.arg(format!("--env={}", env.display()))
        // Not IP:PORT: that binds 0.0.0.0 in 4.3.30. The port comes from XYMONDPORT.
        .arg("--listen=127.0.0.1")
        .arg(format!("--hosts={}", hosts_cfg.display()))
        .arg(format!("--pidfile={}", dir.join("xymond.pid").display()))
        .arg(format!("--log={}", dir.join("logs/xymond.log").display()))
        .arg(format!(
            "--checkpoint-file={}",
            dir.join("tmp/xymond.chk").display()
        ))
        .arg("--checkpoint-interval=600")
        .arg("--no-bfq");
    cmd
}

/// The SysV IPC key glibc's ftok(3) derives from `path` and `proj_id`.
fn ftok(path: &Path, proj_id: u32) -> i32 {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).expect("stat XYMONHOME");
    let key =
        (meta.ino() & 0xffff) as u32 | ((meta.dev() & 0xff) as u32) << 16 | (proj_id & 0xff) << 24;
    key as i32
}

/// All SysV IPC keys (shared memory, semaphores, message queues) currently in
/// use in this IPC namespace, from /proc/sysvipc.
pub fn ipc_keys_in_use() -> BTreeSet<i32> {
    ["shm", "sem", "msg"]
        .iter()
        .flat_map(|kind| {
            read_lossy(&Path::new("/proc/sysvipc").join(kind))
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
                .map(|k| k as i32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Creates a XYMONHOME under `dir` whose ftok keys collide neither with a running
/// xymond (ours or a production one) nor with another instance in this process,
/// and reserves those keys. Colliding candidates stay on disk so their inode is
/// not handed out again.
fn private_xymon_home(dir: &Path) -> (PathBuf, Vec<i32>) {
    for n in 0..64 {
        let home = dir.join(format!("home{n}"));
        fs::create_dir_all(&home).expect("create XYMONHOME");
        let keys: Vec<i32> = XYMOND_CHANNEL_IDS.map(|id| ftok(&home, id)).collect();
        let in_use = ipc_keys_in_use();
        let mut reserved = lock(&USED_IPC_KEYS);
        if keys
            .iter()
            .all(|k| !in_use.contains(k) && !reserved.contains(k))
        {
            reserved.extend(keys.iter().copied());
            return (home, keys);
        }
    }
    panic!(
        "no XYMONHOME with unused SysV IPC keys found under {}",
        dir.display()
    );
}
pub mod bridge;
