//! Measuring instruments: /proc readings of a process, mosquitto's `$SYS` counters, and the tap on
//! xymond's status channel (`xymond_channel --channel=status bench tap`).

use std::fs;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Resident set size of `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:") * 1024
}

/// The anonymous part of the RSS in bytes (RssAnon): the process's own memory, without the pages of its
/// program file and shared libraries.
pub fn rss_anon_bytes(pid: u32) -> u64 {
    status_kb(pid, "RssAnon:") * 1024
}

/// The process's own memory in bytes: RssAnon plus the resident pages of its program file. Leaves out the
/// shared libraries, whose pages other processes map too (on a Xymon server, librrd and its graphics
/// libraries are mapped by xymond_rrd and showgraph.cgi as well).
pub fn own_bytes(pid: u32) -> u64 {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let exe = exe.to_string_lossy();
    let exe = exe.trim_end_matches(" (deleted)");
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let kb = |v: &str| {
        v.split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut in_exe = false;
    // Resident pages of the program file's mappings that are still the file's (its relocated data, copied
    // on write, is anonymous and already in RssAnon).
    let mut exe_kb: u64 = 0;
    let mut exe_anon_kb: u64 = 0;
    for line in smaps.lines() {
        if let Some(v) = line.strip_prefix("Rss:") {
            if in_exe {
                exe_kb += kb(v);
            }
        } else if let Some(v) = line.strip_prefix("Anonymous:") {
            if in_exe {
                exe_anon_kb += kb(v);
            }
        } else if let Some(path) = mapping_path(line) {
            in_exe = !exe.is_empty() && path.trim_end_matches(" (deleted)") == exe;
        }
    }
    exe_kb.saturating_sub(exe_anon_kb) * 1024 + rss_anon_bytes(pid)
}

/// The path of a smaps mapping header ("start-end perms offset dev inode [path]"), "" for a mapping
/// without one; `None` for the other lines ("Key:   value kB"). The path may contain spaces.
fn mapping_path(line: &str) -> Option<&str> {
    let first = line.split(' ').next()?;
    if first.ends_with(':') || !first.contains('-') {
        return None;
    }
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start().split_once(' ').map_or("", |(_, r)| r);
    }
    Some(rest.trim())
}

fn status_kb(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid` (all threads), in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// (busy, total) clock ticks of all CPUs since boot, from the first line of /proc/stat.
pub fn machine_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are fields 4 and 5.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Context switches (voluntary + involuntary) summed over every thread of `pid`: each one is a wake-up.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// One `$SYS` value from the broker (they are retained, so `-C 1` returns at once).
pub fn sys_value(port: u16, topic: &str) -> Option<u64> {
    let out = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-C",
            "1",
            "-W",
            "5",
        ])
        .args(["-t", topic])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A `$SYS` value once it has held still over one publication (every second here): right after a client
/// has left, the last publication may still count its subscriptions.
pub fn settled_sys_value(port: u16, topic: &str) -> Option<u64> {
    let mut last = sys_value(port, topic)?;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1100));
        let now = sys_value(port, topic)?;
        if now == last {
            break;
        }
        last = now;
    }
    Some(last)
}

/// The broker's subscription count with nothing arriving or leaving: the lowest of three readings a
/// publication apart. Each reading is a short-lived `mosquitto_sub` whose own subscription is counted
/// when a publication happens while it is connected, so a single reading can be one too high; a base
/// one too high would make a wait for the next subscription wait in vain.
pub fn quiet_subscriptions(port: u16) -> u64 {
    let mut low = settled_sys_value(port, SUBSCRIPTIONS).unwrap_or(0);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        low = low.min(sys_value(port, SUBSCRIPTIONS).unwrap_or(low));
    }
    low
}

pub const DROPPED: &str = "$SYS/broker/publish/messages/dropped";
const VERSION: &str = "$SYS/broker/version";

/// The broker's count of dropped messages (`DROPPED`). mosquitto publishes it only once it changes, so a
/// broker that has never dropped anything has none to give: the version, always there, is read with it,
/// and when only the version comes the count is 0. `None` when the broker does not answer.
pub fn dropped(port: u16) -> Option<u64> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-v", "-C", "2", "-W", "1", "-t", DROPPED, "-t", VERSION])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut live = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix(DROPPED) {
            return v.trim().parse().ok();
        }
        live |= line.starts_with(VERSION);
    }
    live.then_some(0)
}
pub const SUBSCRIPTIONS: &str = "$SYS/broker/subscriptions/count";

/// Waits until the broker's `$SYS` (published every second) shows at least `n` subscriptions.
pub fn wait_subscriptions(port: u16, n: u64, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if sys_value(port, SUBSCRIPTIONS).unwrap_or(0) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// `bench tap`: the command xymond_channel feeds with xymond's status channel. Writes one line per status
/// message as it arrives: `<unix ns> <host> <marker>`, where the marker is the first `bseq-…` word of the
/// message (the payload the bench published) or `-`.
pub fn tap_main(file: &str) {
    let stdin = std::io::stdin();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
    // Not stdout: xymond_channel points its children's stdout at its log file.
    let mut out = BufWriter::with_capacity(1 << 16, fs::File::create(file).expect("tap file"));
    let mut line = Vec::new();
    // (arrival, host, marker) of the message being read.
    let mut current: Option<(u128, String, Option<String>)> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(rest) = text.strip_prefix("@@status#") {
            let host = rest
                .split_once('/')
                .map_or("", |(_, r)| r)
                .split('|')
                .next()
                .unwrap_or("")
                .to_string();
            current = Some((now_ns(), host, None));
        } else if text.starts_with("@@") {
            if let Some((at, host, marker)) = current.take() {
                let _ = writeln!(out, "{at} {host} {}", marker.as_deref().unwrap_or("-"));
            }
            if reader.buffer().is_empty() {
                let _ = out.flush();
            }
        } else if let Some((_, _, marker @ None)) = current.as_mut() {
            if let Some(i) = text.find("bseq-") {
                let word: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                *marker = Some(word);
            }
        }
    }
    let _ = out.flush();
}

/// Stops a process the harness started: SIGTERM, and SIGKILL if it has not exited within `wait`.
pub fn stop(mut child: Child, wait: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running tap: `xymond_channel --channel=status <this binary> tap > file`.
pub struct Tap {
    child: Option<Child>,
    file: std::path::PathBuf,
}

/// One status as the tap saw it.
pub struct Tapped {
    pub at_ns: u128,
    pub host: String,
    pub marker: String,
}

impl Tap {
    pub fn start(xymond_dir: &Path, file: &Path) -> Tap {
        let log = file.with_extension("log");
        let exe = std::env::current_exe().expect("current_exe");
        let child = Command::new("/usr/lib/xymon/server/bin/xymond_channel")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("--channel=status")
            .arg(format!("--env={}", xymond_dir.join("xymond.env").display()))
            .arg(format!("--log={}", log.display()))
            .arg(exe)
            .arg("tap")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run xymond_channel");
        // Let it attach to the channel before anything is sent.
        std::thread::sleep(Duration::from_millis(500));
        Tap {
            child: Some(child),
            file: file.to_path_buf(),
        }
    }

    /// Everything the tap has written so far.
    pub fn read(&self) -> Vec<Tapped> {
        fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some(Tapped {
                    at_ns: f.next()?.parse().ok()?,
                    host: f.next()?.to_string(),
                    marker: f.next()?.to_string(),
                })
            })
            .collect()
    }

    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child, Duration::from_secs(2));
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The q-quantile (0..=1) of `v` (sorted in place); 0 for an empty slice.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i]
}

/// CPU time (ns, from schedstat) of this process's threads named `comm` (e.g. `tokio-rt-worker`, the
/// in-process bridge's runtime threads while no other runtime runs).
pub fn threads_cpu_ns(comm: &str) -> u64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .filter_map(|t| {
            fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
